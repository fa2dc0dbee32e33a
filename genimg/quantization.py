"""The bitsandbytes quantization of the quantized presets: which components, to what, checked first."""

from __future__ import annotations

from genimg.errors import UsageError
from genimg.models.families import FAMILIES
from genimg.pipeline_setup import torch_dtype
from genimg.presets import Preset



def quantization_config(family: str, preset: Preset, gguf_denoiser: bool = False):
    import importlib.util

    if preset.device.split(":")[0] != "cuda":
        raise UsageError(f"quantize = {preset.quantize} needs a CUDA GPU; use --quantize none on {preset.device}")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise UsageError(f"preset {preset.name} quantizes to {preset.quantize}, which needs bitsandbytes: "
                         "pip install bitsandbytes, or pass --quantize none")
    from diffusers.quantizers import PipelineQuantizationConfig

    # A GGUF denoiser is quantized already: bitsandbytes takes only what is left (FLUX's T5).
    components = [c for c in FAMILIES[family].quantized if not (gguf_denoiser and c == FAMILIES[family].denoiser[1])]
    if not components:
        return None
    if preset.quantize == "nf4":
        backend, qkw = "bitsandbytes_4bit", {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4",
                                            "bnb_4bit_compute_dtype": torch_dtype(preset.dtype)}
    else:
        backend, qkw = "bitsandbytes_8bit", {"load_in_8bit": True}
    return PipelineQuantizationConfig(quant_backend=backend, quant_kwargs=qkw,
                                      components_to_quantize=components)
