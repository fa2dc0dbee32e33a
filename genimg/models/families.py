"""Model families (SD1.x/2.x, SDXL, FLUX.1, FLUX.2) and their defaults, read from ``families.toml``.

A family belongs to a model line (FLUX.2 [dev] and [klein] are one line: same transformer, LoRAs and GGUF
files). What a line does its own way is a :class:`~genimg.models.lines.ModelLine` in
``genimg/models/lines/<line>.py``, found by :func:`line_of`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from genimg.datafiles import load_toml
from genimg.errors import UsageError

FAMILY_FILE = Path(__file__).with_name("families.toml")


@dataclass(frozen=True)
class Family:
    name: str
    label: str
    width: int
    height: int
    steps: int
    guidance: float
    scheduler: str
    factor: int
    negative_prompt: bool
    weighted_prompts: bool  # A1111 weights and long prompts (CLIP); FLUX's T5 reads plain text
    pipeline_arguments: tuple[str, ...]
    skipped_components: tuple[str, ...]  # loaded as None and never downloaded (SD's safety checker)
    strength_steps: str  # img2img runs floor or ceil of steps × strength steps (diffusers' own rounding)
    pipeline_prefixes: tuple[str, ...]
    line: str  # the model line: families of one line share denoiser, LoRAs and GGUF files
    latent_channels: int  # what a replacement VAE must produce
    denoiser: tuple[str, str]  # the diffusers class of the UNet or transformer, and its folder
    quantized: tuple[str, ...]  # the components bitsandbytes quantizes in the nf4/int8 presets
    checkpoint_keys: tuple[str, ...]  # tensor names that mark a single file or GGUF of the line
    lora_keys: tuple[str, ...]  # regular expressions for LoRA key names only the line's LoRAs have
    train: dict  # lora-train's defaults: rank, alpha, resolution, lr, targets (the layers a LoRA adapts)
    kohya_version: str  # ss_base_model_version of a kohya export ("": none is written)
    ip_adapter: str  # the IP-Adapter layout it takes: "h94" (SD, SDXL), "xlabs" (FLUX.1), "" (none)
    redux: str = ""  # the FLUX.1 Redux model `--redux` uses when none is named ("": the family has none)
    single_file: bool = True  # diffusers sets the whole pipeline up from one checkpoint file
    reference_images: int = 0  # images an edit takes (the input and --ref); 0: the family does not edit
    cpu_route: str = "openvino"  # what `auto` runs a UNet of the family with on a CPU: "openvino" or "torch"
    sampling: str = "noise"  # what drives it: "noise" (noise/v prediction) or "flow" (flow matching)
    negative_style: str = ""  # the style `--negative-template default` applies ("": none)
    kohya_versions: tuple[str, ...] = ()  # ss_base_model_version prefixes of kohya LoRAs made for the family


def _load() -> dict[str, Family]:
    table = load_toml(FAMILY_FILE)
    return {name: Family(name=name, **{k: tuple(v) if isinstance(v, list) else v for k, v in row.items()})
            for name, row in table.items()}


FAMILIES: dict[str, Family] = _load()


def get_family(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise UsageError(f"unknown model family {name!r}: use one of {', '.join(FAMILIES)}") from None


def family_from_pipeline_class(class_name: str) -> str | None:
    """The family of a ``model_index.json`` ``_class_name``; longest matching prefix wins."""
    best = None
    for fam in FAMILIES.values():
        for prefix in fam.pipeline_prefixes:
            if class_name.startswith(prefix) and (best is None or len(prefix) > best[1]):
                best = (fam.name, len(prefix))
    return best[0] if best else None


def family_from_checkpoint_keys(keys) -> str | None:
    """The family whose marks a single file's (or GGUF's) tensor names carry. Later families are checked
    first: their marks are the more specific (an SDXL file holds SD's keys too)."""
    keys = set(keys)
    for family in reversed(FAMILIES.values()):
        if any(mark in keys for mark in family.checkpoint_keys):
            return family.name
    return None


def family_from_lora_keys(keys) -> str | None:
    """The family (the first of its line) whose LoRAs alone have key names like these; later lines first."""
    import re

    keys = list(keys)
    for family in reversed(FAMILIES.values()):
        if family.lora_keys and any(re.search(mark, key) for key in keys for mark in family.lora_keys):
            return first_of_line(family.line)
    return None


def first_of_line(line: str) -> str:
    return next(f.name for f in FAMILIES.values() if f.line == line)


def same_line(a: str, b: str) -> bool:
    """Whether families ``a`` and ``b`` share weights (LoRAs, GGUF denoisers): FLUX.2 [dev] and [klein] do."""
    return FAMILIES[a].line == FAMILIES[b].line


def line_of(family: str):
    """The :class:`~genimg.models.lines.ModelLine` of the family's line: ``LINE`` of
    ``genimg.models.lines.<line>``, or the plain ModelLine where the line has no module."""
    import importlib
    import importlib.util

    from genimg.models.lines import ModelLine

    name = f"genimg.models.lines.{FAMILIES[family].line.replace('-', '_')}"
    return importlib.import_module(name).LINE if importlib.util.find_spec(name) else ModelLine()
