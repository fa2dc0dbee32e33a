"""Random IP-Adapters for the tiny models, laid out as h94/IP-Adapter lays them out: the adapter's
``image_proj`` and ``ip_adapter`` weights in one safetensors file, the CLIP image encoder in an
``image_encoder/`` folder beside it."""

from __future__ import annotations

from pathlib import Path

TOKENS = 4  # the plain IP-Adapter's image tokens (the "plus" ones use a resampler)


def save_random_ip_adapter(model_dir: Path, out: Path, name: str = "ip-adapter.safetensors", seed: int = 0) -> Path:
    """An IP-Adapter for the diffusers model in ``model_dir`` at ``out/name`` with ``out/image_encoder``;
    returns the weights file. Its numbering follows diffusers' converter: the k-th cross-attention
    layer of the UNet (in ``attn_processors`` order) is ``2k+1``."""
    import torch
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=32, intermediate_size=37, projection_dim=32, num_hidden_layers=2, num_attention_heads=4,
        image_size=32, patch_size=4))
    out.mkdir(parents=True, exist_ok=True)
    encoder.save_pretrained(out / "image_encoder", safe_serialization=True)
    width = encoder.config.projection_dim
    if (Path(model_dir) / "transformer").is_dir():
        save_file(_flux_state(Path(model_dir), width), str(out / name))
        return out / name
    unet = UNet2DConditionModel.from_pretrained(model_dir, subfolder="unet")
    cross = unet.config.cross_attention_dim
    state = {"image_proj.proj.weight": torch.randn(cross * TOKENS, width) * 0.5,
             "image_proj.proj.bias": torch.zeros(cross * TOKENS),
             "image_proj.norm.weight": torch.ones(cross), "image_proj.norm.bias": torch.zeros(cross)}
    key = 1
    for layer in unet.attn_processors:
        if layer.endswith("attn2.processor"):
            module = unet.get_submodule(layer.removesuffix(".processor"))
            hidden = module.to_k.out_features
            state[f"ip_adapter.{key}.to_k_ip.weight"] = torch.randn(hidden, cross) * 0.5
            state[f"ip_adapter.{key}.to_v_ip.weight"] = torch.randn(hidden, cross) * 0.5
            key += 2
    save_file(state, str(out / name))
    return out / name


def _flux_state(model_dir: Path, width: int) -> dict:
    """XLabs' FLUX IP-Adapter layout: an image projection and k/v projections (with biases) for each
    double-stream block of the transformer."""
    import torch
    from diffusers import FluxTransformer2DModel

    config = FluxTransformer2DModel.load_config(model_dir, subfolder="transformer")
    joint, inner = config["joint_attention_dim"], config["num_attention_heads"] * config["attention_head_dim"]
    state = {"ip_adapter_proj_model.proj.weight": torch.randn(joint * TOKENS, width) * 0.5,
             "ip_adapter_proj_model.proj.bias": torch.zeros(joint * TOKENS),
             "ip_adapter_proj_model.norm.weight": torch.ones(joint), "ip_adapter_proj_model.norm.bias": torch.zeros(joint)}
    for block in range(config["num_layers"]):
        for kind in ("k", "v"):
            prefix = f"double_blocks.{block}.processor.ip_adapter_double_stream_{kind}_proj"
            state[f"{prefix}.weight"] = torch.randn(inner, joint) * 0.5
            state[f"{prefix}.bias"] = torch.zeros(inner)
    return state
