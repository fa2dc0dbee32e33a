"""Annotator weights with the real architectures and random values, laid out in the Hugging Face
cache as `hf download` leaves them: what the control preprocessors load, offline."""

from __future__ import annotations

import tempfile
from pathlib import Path

from genimg.testing.tiny_models import install_in_hf_cache

ANNOTATORS = "lllyasviel/Annotators"
DEPTH = "depth-anything/Depth-Anything-V2-Small-hf"


def install_annotators(cache: Path, seed: int = 0) -> None:
    """HED (softedge, scribble) and line art weights, as the pickle state dicts the repository holds."""
    import torch
    from controlnet_aux.hed import ControlNetHED_Apache2
    from controlnet_aux.lineart import Generator

    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory(prefix="annotators-") as made:  # copied into the cache, then gone
        folder = Path(made)
        torch.save(ControlNetHED_Apache2().state_dict(), folder / "ControlNetHED.pth")
        for name in ("sk_model.pth", "sk_model2.pth"):
            torch.save(Generator(3, 1, 3).state_dict(), folder / name)
        install_in_hf_cache(folder, ANNOTATORS, cache)


def install_depth_model(cache: Path, seed: int = 0) -> None:
    """A tiny Depth Anything (DINOv2 backbone) with its image processor, in safetensors."""
    import torch
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config, DPTImageProcessor

    torch.manual_seed(seed)
    backbone = Dinov2Config(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
                            patch_size=14, image_size=56, out_features=["stage1", "stage2", "stage3", "stage4"],
                            reshape_hidden_states=False)
    config = DepthAnythingConfig(backbone_config=backbone, neck_hidden_sizes=[8, 16, 32, 32], fusion_hidden_size=16,
                                 head_hidden_size=8, reassemble_hidden_size=32)
    with tempfile.TemporaryDirectory(prefix="depth-") as made:
        folder = Path(made)
        DepthAnythingForDepthEstimation(config).save_pretrained(folder, safe_serialization=True)
        DPTImageProcessor(size={"height": 56, "width": 56}, keep_aspect_ratio=True, ensure_multiple_of=14,
                          do_pad=False).save_pretrained(folder)
        install_in_hf_cache(folder, DEPTH, cache)


SEGMENTER = "openmmlab/upernet-convnext-small"


def install_segmenter(cache: Path, seed: int = 0) -> None:
    """A tiny UperNet (ConvNeXt backbone, ADE20K's 150 classes) with its image processor, in safetensors."""
    import torch
    from transformers import ConvNextConfig, SegformerImageProcessor, UperNetConfig, UperNetForSemanticSegmentation

    torch.manual_seed(seed)
    backbone = ConvNextConfig(num_channels=3, hidden_sizes=[8, 16, 32, 64], depths=[1, 1, 1, 1],
                              out_features=["stage1", "stage2", "stage3", "stage4"])
    config = UperNetConfig(backbone_config=backbone, hidden_size=16, auxiliary_in_channels=32, num_labels=150)
    with tempfile.TemporaryDirectory(prefix="segmenter-") as made:
        folder = Path(made)
        UperNetForSemanticSegmentation(config).save_pretrained(folder, safe_serialization=True)
        SegformerImageProcessor(size={"height": 64, "width": 64}).save_pretrained(folder)
        install_in_hf_cache(folder, SEGMENTER, cache)
