"""SD1.5 and SDXL with their published architectures and random weights, for speed and memory
benchmarks where no checkpoint can be downloaded.

Time and memory per step depend on the shapes, not on the values, so a LoRA step on these costs what
it costs on the real models. The configurations are those of ``runwayml/stable-diffusion-v1-5`` and
``stabilityai/stable-diffusion-xl-base-1.0`` (UNet, VAE, CLIP ViT-L and OpenCLIP bigG text
encoders); the tokenizer is genimg's offline one, whose token ids fit inside the real vocabulary.
"""

from __future__ import annotations

import shutil
from pathlib import Path

CLIP_VOCAB = 49408
# (hidden, layers, heads, intermediate, projection) of the text encoders
CLIP_L = (768, 12, 12, 3072, 768)
OPENCLIP_BIG_G = (1280, 32, 20, 5120, 1280)

SD15_UNET = dict(sample_size=64, cross_attention_dim=768, attention_head_dim=8, layers_per_block=2,
                 block_out_channels=(320, 640, 1280, 1280))
SDXL_UNET = dict(sample_size=128, cross_attention_dim=2048, attention_head_dim=(5, 10, 20), layers_per_block=2,
                 block_out_channels=(320, 640, 1280), transformer_layers_per_block=(1, 2, 10),
                 down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                 up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                 use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=256,
                 projection_class_embeddings_input_dim=2816)


def _text_encoder(sizes, tokenizer, with_projection=False):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    hidden, layers, heads, intermediate, projection = sizes
    config = CLIPTextConfig(vocab_size=CLIP_VOCAB, hidden_size=hidden, num_hidden_layers=layers,
                            num_attention_heads=heads, intermediate_size=intermediate, projection_dim=projection,
                            hidden_act="quick_gelu" if hidden == 768 else "gelu", max_position_embeddings=77,
                            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                            pad_token_id=tokenizer.pad_token_id)
    return (CLIPTextModelWithProjection if with_projection else CLIPTextModel)(config)


def _vae(sample_size: int, **extra):
    from diffusers import AutoencoderKL

    return AutoencoderKL(block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                         up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=2, latent_channels=4,
                         sample_size=sample_size, **extra)


def build(family: str, work: Path):
    """The ``sd`` (SD1.5) or ``sdxl`` pipeline, random weights in fp32."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline, UNet2DConditionModel

    from genimg.testing.tokenizers import clip_tokenizer

    tokenizer = clip_tokenizer(work / "_tok")
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       steps_offset=1, timestep_spacing="leading")
    if family == "sd":
        return StableDiffusionPipeline(
            vae=_vae(512), text_encoder=_text_encoder(CLIP_L, tokenizer), tokenizer=tokenizer,
            unet=UNet2DConditionModel(**SD15_UNET), scheduler=scheduler, safety_checker=None, feature_extractor=None,
            requires_safety_checker=False)
    if family == "sdxl":
        return StableDiffusionXLPipeline(
            vae=_vae(1024, scaling_factor=0.13025, force_upcast=True), text_encoder=_text_encoder(CLIP_L, tokenizer),
            text_encoder_2=_text_encoder(OPENCLIP_BIG_G, tokenizer, with_projection=True), tokenizer=tokenizer,
            tokenizer_2=tokenizer, unet=UNet2DConditionModel(**SDXL_UNET), scheduler=scheduler)
    raise ValueError(f"full-size builds are for sd and sdxl, not {family}")


def save_full_size(family: str, folder: Path) -> Path:
    """Build and save as a diffusers folder in fp16 (half the disk; training loads its own dtype)."""
    import torch
    from diffusers.utils import logging

    if (folder / "model_index.json").is_file():
        return folder
    work = folder.parent / f".{folder.name}-build"
    torch.manual_seed(0)
    pipe = build(family, work)
    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()  # its notice on casting a whole model to fp16 concerns inference, not a file
    try:
        pipe.to(torch.float16).save_pretrained(folder, safe_serialization=True)
    finally:
        logging.set_verbosity(verbosity)
    shutil.rmtree(work, ignore_errors=True)
    return folder
