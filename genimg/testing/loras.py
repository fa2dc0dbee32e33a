"""Random (non-zero) LoRAs for tiny models, saved in the diffusers or the kohya layout."""

from __future__ import annotations

from pathlib import Path

TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]


def save_random_lora(model_dir: Path, out: Path, rank: int = 4, seed: int = 0, kohya: bool = False) -> Path:
    import torch
    from diffusers import DiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers, convert_state_dict_to_kohya
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    torch.manual_seed(seed)
    pipe = DiffusionPipeline.from_pretrained(model_dir)
    denoiser = getattr(pipe, "unet", None) or pipe.transformer
    denoiser.add_adapter(LoraConfig(r=rank, lora_alpha=rank, target_modules=TARGETS, init_lora_weights="gaussian"))
    with torch.no_grad():
        for name, param in denoiser.named_parameters():
            if "lora_B" in name:  # gaussian init leaves B at zero: make the LoRA do something
                param.normal_(0, 0.5)
    layers = get_peft_model_state_dict(denoiser)
    if kohya:
        from safetensors.torch import save_file

        prefix = "unet" if hasattr(pipe, "unet") else "transformer"
        state = convert_state_dict_to_kohya({f"{prefix}.{k}": v for k, v in layers.items()})
        out.parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in state.items()}, str(out))
        return out
    key = "unet_lora_layers" if hasattr(pipe, "unet") else "transformer_lora_layers"
    type(pipe).save_lora_weights(out, **{key: convert_state_dict_to_diffusers(layers)})
    return out


def save_control_lora(control_model_dir: Path, out: Path, rank: int = 4, seed: int = 0) -> Path:
    """A FLUX.1 Depth/Canny-style LoRA: made on a control-shaped tiny FLUX (whose image input reads the
    control map's latents too), its image input (``x_embedder``) among the adapted layers, so that loading it
    into the base model widens that input as BFL's Depth/Canny LoRAs do. Saved in the diffusers layout."""
    import torch
    from diffusers import FluxPipeline, FluxTransformer2DModel
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    torch.manual_seed(seed)
    transformer = FluxTransformer2DModel.from_pretrained(control_model_dir, subfolder="transformer")
    transformer.add_adapter(LoraConfig(r=rank, lora_alpha=rank, target_modules=["x_embedder", *TARGETS],
                                       init_lora_weights="gaussian"))
    with torch.no_grad():
        for name, param in transformer.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    FluxPipeline.save_lora_weights(out, transformer_lora_layers=get_peft_model_state_dict(transformer))
    return out / "pytorch_lora_weights.safetensors"
