"""LoRAs on generation pipelines: ``--lora PATH[:WEIGHT]``, repeatable, diffusers or kohya layout.

diffusers' ``load_lora_weights`` reads both layouts (and converts kohya's ``lora_unet_…`` keys); the
pipeline's components are shared between tasks, so which LoRAs are loaded is tracked per model and
changed only when a generation asks for others.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from genimg.errors import UsageError
from genimg.models.checkpoint import PICKLE_SUFFIXES

LORA_FILE = "pytorch_lora_weights.safetensors"
FAMILY_HINT = {"sd": "an SD1.x/2.x model", "sdxl": "an SDXL model", "flux": "a FLUX model"}


@dataclass(frozen=True)
class LoraRef:
    path: str
    weight: float = 1.0

    @property
    def name(self) -> str:
        return Path(self.path).stem if Path(self.path).is_file() else Path(self.path).name


def parse_lora(text: str, allow_pickle: bool = False) -> LoraRef:
    """``PATH`` or ``PATH:WEIGHT``; a folder must hold ``pytorch_lora_weights.safetensors``."""
    path, weight = text, 1.0
    head, sep, tail = text.rpartition(":")
    if sep and head:
        try:
            path, weight = head, float(tail)
        except ValueError:
            path = text  # a ':' inside the path itself
    resolved = Path(path).expanduser()
    if resolved.is_dir():
        if not (resolved / LORA_FILE).is_file():
            raise UsageError(f"LoRA folder {resolved} has no {LORA_FILE}")
    elif not resolved.is_file():
        raise UsageError(f"LoRA {path} does not exist (give a .safetensors file or a folder with {LORA_FILE}, "
                         "optionally with :WEIGHT)")
    elif resolved.suffix.lower() in PICKLE_SUFFIXES and not allow_pickle:
        raise UsageError(f"LoRA {resolved.name} is a pickle file; convert it to .safetensors or pass --allow-pickle")
    return LoraRef(str(resolved.resolve()), weight)


def apply_loras(pipe, loaded, loras: tuple[LoraRef, ...]) -> None:
    """Make ``pipe`` (and every pipeline sharing its components) run with exactly ``loras``."""
    wanted = tuple(lora.path for lora in loras)
    if loaded.lora_paths != wanted:
        if loaded.lora_paths:
            pipe.unload_lora_weights()
        loaded.lora_paths = ()
        for i, lora in enumerate(loras):
            try:
                pipe.load_lora_weights(lora.path, adapter_name=f"lora{i}")
                reason = None
            except (ValueError, KeyError, OSError) as e:
                reason = str(e).splitlines()[0]
            # diffusers only warns when no key matches the model: a LoRA for another family loads nothing.
            present = {name for names in pipe.get_list_adapters().values() for name in names}
            if reason or f"lora{i}" not in present:
                pipe.unload_lora_weights()
                raise UsageError(f"cannot load LoRA {lora.name} into {loaded.ref.name} ({FAMILY_HINT.get(loaded.ref.family)}): "
                                 f"{reason or 'none of its weights match this model'}; is it for another model family?")
        loaded.lora_paths = wanted
    if loras:
        pipe.set_adapters([f"lora{i}" for i in range(len(loras))], adapter_weights=[lora.weight for lora in loras])
