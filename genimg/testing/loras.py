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
