"""A1111's inline LoRAs: ``<lora:NAME:WEIGHT>`` in the prompt, taken out of the text and loaded like
``--lora``. NAME is a LoRA file's name (without ``.safetensors``) or the ``ss_output_name`` its
kohya metadata records, looked up in the LoRA folders: the config's ``lora_dirs`` (or
``$GENIMG_LORA_DIRS``, separated like PATH) and the ``loras/`` folder of genimg's config folder."""

from __future__ import annotations

import re
from pathlib import Path

from genimg.errors import UsageError, did_you_mean

TAG = re.compile(r"<lora:([^:>]+)(?::([^:>]*))?>")


def split_tags(prompt: str) -> tuple[str, list[tuple[str, str]]]:
    """The prompt without its ``<lora:…>`` tags (spaces tidied), and the (name, weight) of each tag."""
    tags = [(m.group(1).strip(), (m.group(2) or "1").strip()) for m in TAG.finditer(prompt)]
    text = re.sub(r"\s{2,}", " ", TAG.sub("", prompt)).strip(" ,") if tags else prompt
    return text, tags


def lora_dirs() -> list[Path]:
    from genimg import config
    from genimg.paths import config_dir

    return [*(Path(p).expanduser() for p in config.get("lora_dirs")), config_dir() / "loras"]


def find(name: str) -> Path:
    """The LoRA file an inline tag names."""
    from genimg.models.checkpoint import safetensors_header

    files = [p for d in lora_dirs() if d.is_dir() for p in sorted(d.rglob("*.safetensors"))]
    for path in files:
        if path.stem == name:
            return path
    for path in files:
        if (safetensors_header(path).get("__metadata__") or {}).get("ss_output_name") == name:
            return path
    where = ", ".join(str(d) for d in lora_dirs())
    raise UsageError(f"<lora:{name}> is in no LoRA folder ({where}){did_you_mean(name, [p.stem for p in files])}; "
                     "put the file there, add its folder (genimg config set lora_dirs DIR), or pass --lora PATH")


def inline_loras(prompt: str) -> list[str]:
    """``PATH:WEIGHT`` of each tag in ``prompt``, as ``--lora`` takes them."""
    out = []
    for name, weight in split_tags(prompt)[1]:
        try:
            float(weight)
        except ValueError:
            raise UsageError(f"<lora:{name}:{weight}>: the weight {weight!r} is not a number") from None
        out.append(f"{find(name)}:{weight}")
    return out
