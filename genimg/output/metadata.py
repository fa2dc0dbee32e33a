"""PNG text metadata: A1111's ``parameters`` chunk, and a ``genimg`` chunk with the exact settings.

``parameters`` follows A1111's layout and key order so its PNG-info tab, civitai and other readers
parse it: the prompt, ``Negative prompt: …`` when there is one, then one line of ``Key: value``
pairs, values quoted like A1111's ``quote()`` does when they hold a comma, colon or newline.
"""

from __future__ import annotations

import json
import re

from genimg import __version__

GENIMG_KEY = "genimg"
PARAMETERS_KEY = "parameters"


def quote(value) -> str:
    text = str(value)
    if "," not in text and "\n" not in text and ":" not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def a1111_parameters(spec, model_name: str, model_hash: str | None, extra: dict | None = None) -> str:
    """The A1111 ``parameters`` text for one image of ``spec`` (a resolved, single-seed spec)."""
    pairs = {
        "Steps": spec.steps,
        "Sampler": spec.scheduler,
        "CFG scale": _number(spec.guidance),
        "Seed": spec.seed,
        "Size": f"{spec.width}x{spec.height}",
        "Model hash": model_hash,
        "Model": model_name,
        **(extra or {}),
        "Version": f"genimg {__version__}",
    }
    lines = [spec.prompt]
    if spec.negative:
        lines.append(f"Negative prompt: {spec.negative}")
    lines.append(", ".join(f"{k}: {quote(v)}" for k, v in pairs.items() if v is not None))
    return "\n".join(lines)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


_PAIR = re.compile(r'\s*([\w ]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')


def parse_parameters(text: str) -> dict:
    """Read A1111 ``parameters`` text back: ``prompt``, ``negative`` and each ``Key: value``."""
    lines = text.strip().split("\n")
    settings_line = lines.pop() if lines and _PAIR.match(lines[-1]) and "Steps:" in lines[-1] else ""
    prompt, negative, in_negative = [], [], False
    for line in lines:
        if line.startswith("Negative prompt:"):
            in_negative = True
            line = line[len("Negative prompt:"):].strip()
        (negative if in_negative else prompt).append(line)
    result = {"prompt": "\n".join(prompt), "negative": "\n".join(negative)}
    for key, value in _PAIR.findall(settings_line):
        value = value.strip()
        result[key.strip()] = json.loads(value) if value.startswith('"') else value
    return result


def _lora_hash(path: str) -> str:
    from pathlib import Path

    from genimg.models.checkpoint import short_hash

    p = Path(path)
    return short_hash(p / "pytorch_lora_weights.safetensors" if p.is_dir() else p)


def genimg_record(image) -> dict:
    """Everything genimg knows about one image, as stored in the ``genimg`` chunk."""
    job = image.job
    return {
        "version": __version__,
        "spec": image.spec.to_dict(),
        "model": {"name": job.ref.name, "kind": job.ref.kind, "location": job.ref.location,
                  "family": job.ref.family, "hash": job.ref.model_hash()},
        "preset": job.preset.settings() | {"name": job.preset.name},
        "seconds": round(image.seconds, 4),
        "denoising_steps": job.denoising_steps,
        **({"source_hash": job.inputs.source_hash} if job.inputs is not None else {}),
    }


def pnginfo(image):
    from PIL.PngImagePlugin import PngInfo

    job = image.job
    info = PngInfo()
    extra = job.inputs.a1111_extra(image.spec) if job.inputs is not None else {}
    if job.loras:
        # A1111 writes LoRAs into the prompt as <lora:name:weight>; "Lora hashes" lets civitai link them.
        extra["Lora hashes"] = ", ".join(f"{lora.name}: {_lora_hash(lora.path)}" for lora in job.loras)
    info.add_text(PARAMETERS_KEY, a1111_parameters(image.spec, job.ref.name, job.ref.model_hash(), extra))
    info.add_text(GENIMG_KEY, json.dumps(genimg_record(image), ensure_ascii=False))
    return info


def read_metadata(path) -> dict:
    """The ``parameters`` text (parsed) and the ``genimg`` record of a PNG; empty where absent."""
    from PIL import Image

    with Image.open(path) as im:
        text = dict(getattr(im, "text", {}) or {})
    out = {}
    if PARAMETERS_KEY in text:
        out["parameters"] = parse_parameters(text[PARAMETERS_KEY])
        out["parameters_text"] = text[PARAMETERS_KEY]
    if GENIMG_KEY in text:
        out["genimg"] = json.loads(text[GENIMG_KEY])
    return out
