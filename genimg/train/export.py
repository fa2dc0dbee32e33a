"""Saving a trained LoRA: the diffusers layout (``pytorch_lora_weights.safetensors``) that
``pipe.load_lora_weights`` reads, or kohya's ``lora_unet_…``/``lora_te1_…`` keys for A1111 and ComfyUI;
the training settings and base model go into the file's metadata too."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from genimg.adapters import LORA_FILE as WEIGHTS  # one name for the file, read and written
from genimg.files import save_safetensors


def save_lora(pipe, ref, trained, config, out: Path) -> Path:
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import load_file

    from genimg.models.families import FAMILIES

    names = [FAMILIES[ref.family].denoiser[1], "text_encoder", "text_encoder_2"]
    peft_layers = {name: _baked(get_peft_model_state_dict(_unwrap(module)), config)
                   for name, module in zip(names, trained)}
    # diffusers' SD/SDXL examples save their (older) diffusers names; its FLUX.1 and FLUX.2 examples save
    # peft's, which the FLUX loaders read whole (a mix of the two loses the converted layers).
    unet = names[0] == "unet"
    type(pipe).save_lora_weights(out, safe_serialization=True, **{
        f"{name}_lora_layers": convert_state_dict_to_diffusers(layers) if unet else layers
        for name, layers in peft_layers.items()})
    path = out / WEIGHTS
    metadata = {"genimg_config": json.dumps(asdict(config)), "base_model": ref.ref, "base_family": ref.family,
                "lora_rank": str(config.rank), "lora_alpha": str(config.alpha)}
    save_safetensors(path, load_file(str(path)), metadata)
    if config.save_format == "kohya":
        return save_kohya(peft_layers, ref, config, out / f"{out.name}.safetensors", metadata, _unwrap(trained[0]))
    return path


def save_kohya(peft_layers: dict, ref, config, path: Path, metadata: dict, denoiser) -> Path:
    """kohya's layout (``lora_unet_…``, ``lora_te1_…``, ``.alpha`` keys); FLUX in sd-scripts' names."""
    from diffusers.utils import convert_state_dict_to_kohya

    from genimg.models.families import FAMILIES, line_of

    line = line_of(ref.family)
    kohya = line.kohya_state(peft_layers, denoiser)  # a line with kohya names of its own (FLUX.1's sd-scripts')
    if kohya is None:
        peft = {f"{name}.{key}": value for name, layers in peft_layers.items() for key, value in layers.items()}
        # (alpha = rank in kohya's keys: the scale is already baked into the weights)
        kohya = {line.kohya_name(_kohya_name(k)): v for k, v in convert_state_dict_to_kohya(peft).items()}
    version = FAMILIES[ref.family].kohya_version
    return save_safetensors(path, {k: v.contiguous() for k, v in kohya.items()},
                            {**metadata, "ss_network_dim": str(config.rank), "ss_network_alpha": str(config.alpha),
                             "ss_base_model_version": version})


def _kohya_name(key: str) -> str:
    """kohya's text-encoder names: CLIP's modules under ``text_model_`` (transformers 5 drops that
    prefix from its state dicts); the line renames further (SD1.x's single encoder is ``lora_te_``)."""
    for te in ("lora_te1_", "lora_te2_"):
        if key.startswith(te + "encoder_") or key.startswith(te + "final_layer_norm"):
            key = te + "text_model_" + key[len(te):]
    return key


def _baked(state: dict, config) -> dict:
    """LoRA weights with the scale alpha / rank multiplied into the up (B) matrices. Loaders that read
    no alpha (diffusers' layout without adapter metadata) or read alpha = rank then apply exactly
    the update the training used."""
    scale = config.alpha / config.rank
    return {k: (v * scale if "lora_B" in k else v) for k, v in state.items()}


def _unwrap(module):
    return getattr(module, "module", module)
