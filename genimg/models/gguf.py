"""Quantized denoisers in GGUF files (``flux1-dev-Q4_K_S.gguf`` and the like): what 8–12 GB users
download in place of the full FLUX or SDXL weights. diffusers loads them, dequantizing each layer on
the fly in the preset's dtype; the rest of the pipeline (text encoders, VAE) comes from the model.
"""

from __future__ import annotations

from pathlib import Path

from genimg.errors import UsageError

# Key prefixes of each family's denoiser, in the original (BFL / LDM) and the diffusers layout.
_FLUX_KEYS = ("double_blocks.", "single_blocks.", "transformer_blocks.", "single_transformer_blocks.")
_UNET_KEYS = ("input_blocks.", "down_blocks.", "model.diffusion_model.")
_SDXL_KEYS = ("label_emb.", "add_embedding.", "model.diffusion_model.label_emb.")


def gguf_family(path: Path) -> str | None:
    """The family ("flux2", "flux", "sdxl", "sd") from the tensor names in the file's header (no weights
    read): a line's marks (families.toml), else the denoisers' key prefixes."""
    import gguf

    from genimg.models.families import family_from_checkpoint_keys

    try:
        names = [tensor.name for tensor in gguf.GGUFReader(str(path)).tensors]
    except (OSError, ValueError, KeyError, IndexError) as e:  # a damaged or foreign file: one line
        raise UsageError(f"{path.name} cannot be read as a GGUF file ({(str(e).splitlines() or [type(e).__name__])[0]}); "
                         "download it again") from None
    marked = family_from_checkpoint_keys(names)
    if marked is not None:
        return marked
    if any(name.startswith(_FLUX_KEYS) for name in names):
        return "flux"
    if any(name.startswith(_UNET_KEYS) for name in names):
        return "sdxl" if any(name.startswith(_SDXL_KEYS) for name in names) else "sd"
    return None


def check_denoiser(path: str, ref) -> str:
    """``--denoiser FILE.gguf`` checked against the model it goes into; returns the absolute path."""
    import importlib.util

    file = Path(path).expanduser()
    if not file.is_file():
        raise UsageError(f"--denoiser {path} does not exist")
    if file.suffix.lower() != ".gguf":
        raise UsageError(f"--denoiser takes a .gguf file (quantized UNet or FLUX transformer), not {file.name}")
    if importlib.util.find_spec("gguf") is None:
        raise UsageError("GGUF files need the gguf package: pip install 'genimg[gguf]'")
    if ref.kind == "single_file":
        raise UsageError(f"--denoiser replaces the denoiser of a diffusers model (alias, hub id or folder), not of the "
                         f"single file {Path(ref.location).name}")
    family = gguf_family(file)
    if family is None:
        raise UsageError(f"{file.name} holds no UNet or FLUX transformer weights that genimg recognises")
    from genimg.models.families import same_line

    if not same_line(family, ref.family):
        raise UsageError(f"{file.name} is a {family} denoiser, but {ref.name} is a {ref.family} model; "
                         f"use a GGUF made for {ref.family}")
    return str(file.resolve())


def load_denoiser(ref, dtype):
    """The GGUF denoiser as a diffusers model, its architecture from the model's own config."""
    import diffusers
    from diffusers import GGUFQuantizationConfig

    from genimg.models.families import FAMILIES

    class_name, subfolder = FAMILIES[ref.family].denoiser
    model = getattr(diffusers, class_name).from_single_file(ref.denoiser, config=ref.location, subfolder=subfolder, torch_dtype=dtype,
                                 quantization_config=GGUFQuantizationConfig(compute_dtype=dtype))
    return subfolder, model
