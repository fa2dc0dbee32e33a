"""The weights in the user's own folders (downloaded checkpoints, model and LoRA folders), each with the
model family it is for, read from the file's header: what `genimg models` lists beside the cache."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from genimg.errors import UsageError


@dataclass(frozen=True)
class LocalFile:
    """A weights file in one of the user's folders (downloaded checkpoints, LoRA folders)."""
    path: str
    kind: str  # "checkpoint" | "lora"
    size_bytes: int
    family: str | None


def local_files() -> list[LocalFile]:
    """The .safetensors files in the configured model, checkpoint and LoRA folders, with what each is for
    (read from the file's header: a checkpoint's key names, a LoRA's metadata and keys)."""
    from genimg import config
    from genimg.adapters import lora_family
    from genimg.models.checkpoint import safetensors_header
    from genimg.models.families import family_from_checkpoint_keys
    from genimg.prompting.inline import lora_dirs

    checkpoints = [*(Path(p).expanduser() for p in config.get("model_dirs")), config.checkpoint_dir()]
    out = []
    for kind, folders in (("checkpoint", checkpoints), ("lora", lora_dirs())):
        for folder in folders:
            for file in sorted(folder.glob("*.safetensors")) if folder.is_dir() else []:
                try:
                    family = (family_from_checkpoint_keys(safetensors_header(file)) if kind == "checkpoint"
                              else lora_family(file))
                except UsageError:
                    family = None  # damaged: listed, so the user can see and remove it
                out.append(LocalFile(str(file), kind, file.stat().st_size, family))
    return out
