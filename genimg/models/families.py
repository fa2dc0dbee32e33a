"""Model families (SD1.x/2.x, SDXL, FLUX) and their defaults, read from ``families.toml``."""

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
    redux: str = ""  # the FLUX.1 Redux model `--redux` uses when none is named ("": the family has none)


def _load() -> dict[str, Family]:
    table = load_toml(FAMILY_FILE)
    return {
        name: Family(name=name, **{**row, "pipeline_prefixes": tuple(row["pipeline_prefixes"]),
                              "pipeline_arguments": tuple(row["pipeline_arguments"]),
                              "skipped_components": tuple(row["skipped_components"])})
        for name, row in table.items()
    }


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


# Key names in original (non-diffusers) single-file checkpoints that identify the family. Checked in
# order: SDXL checkpoints also hold SD-style UNet keys, so the more specific marks come first.
_CHECKPOINT_MARKS = (
    ("flux", ("double_blocks.0.img_attn.qkv.weight", "model.diffusion_model.double_blocks.0.img_attn.qkv.weight",
              "transformer_blocks.0.attn.add_q_proj.weight")),
    ("sdxl", ("conditioner.embedders.1.model.ln_final.weight", "model.diffusion_model.label_emb.0.0.weight",
              "conditioner.embedders.0.transformer.text_model.embeddings.position_ids")),
    ("sd", ("model.diffusion_model.input_blocks.0.0.weight", "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight")),
)


def family_from_checkpoint_keys(keys) -> str | None:
    keys = set(keys)
    for family, marks in _CHECKPOINT_MARKS:
        if any(mark in keys for mark in marks):
            return family
    return None
