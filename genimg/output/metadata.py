"""PNG text metadata: A1111's ``parameters`` chunk, and a ``genimg`` chunk with the exact settings.

``parameters`` follows A1111's layout and key order so its PNG-info tab, civitai and other readers
parse it: the prompt, ``Negative prompt: …`` when there is one, then one line of ``Key: value``
pairs, values quoted like A1111's ``quote()`` does when they hold a comma, colon or newline.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

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


_PAIR = re.compile(r'\s*([\w\- ]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')


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

    return short_hash(Path(path))


def genimg_record(image) -> dict:
    """Everything genimg knows about one image, as stored in the ``genimg`` chunk."""
    plan = image.plan
    record = {
        "version": __version__,
        "spec": image.spec.to_dict(),
        "model": {"name": plan.ref.name, "kind": plan.ref.kind, "location": plan.ref.location,
                  "family": plan.ref.family, "hash": plan.ref.model_hash()},
        "preset": plan.preset.settings() | {"name": plan.preset.name},
        "seconds": round(image.seconds, 4),
        "denoising_steps": image.steps,
    }
    if plan.inputs is not None:
        record["source_hash"] = plan.inputs.source_hash
        if plan.inputs.reference_hashes:
            record["reference_hashes"] = list(plan.inputs.reference_hashes)
    if plan.controls:
        record["controls"] = [{"model": c.controlnet.location, "source_hash": c.source_hash} for c in plan.controls]
    if plan.ip_adapters:
        record["ip_adapters"] = [{"weights": a.weights, "source_hash": a.source_hash} for a in plan.ip_adapters]
    if plan.redux:
        record["redux"] = [{"model": r.location, "source_hash": r.source_hash} for r in plan.redux]
    if image.lora_layers:
        record["lora_layers"] = [layers.to_dict() for layers in image.lora_layers]
    return record


def a1111_extra(image) -> dict:
    """The ``Key: value`` pairs a task, its controls and its LoRAs add to A1111's text."""
    plan = image.plan
    extra = plan.inputs.a1111_extra(image.spec.strength) if plan.inputs is not None else {}
    for n, control in enumerate(plan.controls):
        extra[f"ControlNet {n}"] = control.a1111_value(image.spec.resize)
    if image.spec.hires:
        h = image.spec.hires
        extra.update({"Denoising strength": h.strength, "Hires upscale": f"{h.scale:g}",
                      "Hires steps": h.steps or image.spec.steps, "Hires upscaler": h.upscaler})
    if image.spec.variation_strength and image.spec.variation_seed is not None:
        extra.update({"Variation seed": image.spec.variation_seed,
                      "Variation seed strength": _number(image.spec.variation_strength)})
    if image.spec.seed_resize_from:
        extra["Seed resize from"] = image.spec.seed_resize_from
    if image.spec.clip_skip and image.spec.clip_skip > 1:
        extra["Clip skip"] = image.spec.clip_skip
    if image.spec.tiling:
        extra["Tiling"] = "True" if image.spec.tiling == "xy" else image.spec.tiling
    if plan.refiner is not None:
        extra.update({"Refiner": plan.refiner.name, "Refiner switch at": _number(image.spec.refiner_switch)})
    if plan.face_restorer is not None:  # A1111 writes the model's name alone (its visibility is a setting)
        extra["Face restoration"] = plan.face_restorer.name
    if plan.loras:
        # A1111 writes LoRAs into the prompt as <lora:name:weight>; "Lora hashes" lets civitai link them.
        extra["Lora hashes"] = ", ".join(f"{lora.name}: {_lora_hash(lora.path)}" for lora in plan.loras)
    for n, adapter in enumerate(plan.ip_adapters):
        extra[f"IP-Adapter {n}"] = adapter.a1111_value()
    if plan.ref.vae:
        from genimg.models.vaes import vae_name

        extra["VAE"] = vae_name(plan.ref.vae)
    if plan.embeddings:
        extra["TI hashes"] = ", ".join(f"{e.token}: {e.short_hash}" for e in plan.embeddings)
    return extra


CLIENT_NAMED = ("image", "references", "path")  # input images: named as the client named them, left as they are


def names_only(value):
    """``value`` (a record, a spec's dict, a summary) with every path of this machine in it — a model, a LoRA
    (``path:weight`` too), a VAE — replaced by its file or folder name: what a server sends its clients never
    names its paths. The input images keep the names their client gave them."""
    import os

    if isinstance(value, dict):
        return {k: v if k in CLIENT_NAMED else names_only(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(names_only(v) for v in value)
    if isinstance(value, str) and os.path.isabs(value):
        path, weight = (value.rsplit(":", 1) + [""])[:2] if not os.path.exists(value) else (value, "")
        if os.path.exists(path):
            return os.path.basename(path.rstrip(os.sep)) + (f":{weight}" if weight else "")
    return value


def pnginfo(image, served: bool = False):
    """The PNG text chunks of a generated image; ``served`` (made by a server for a client): the paths of
    the server's machine in them named by file name only."""
    from PIL.PngImagePlugin import PngInfo

    plan = image.plan
    info = PngInfo()
    # A1111's text holds the prompt as the model read it (styles applied), so other tools remake the
    # image; genimg's record holds it as written, with the styles, so --from applies them once.
    planned = plan.images[image.index]
    used = image.spec.replace(prompt=planned.text or image.spec.prompt, negative=planned.negative_text or image.spec.negative,
                              styles=(), negative_template=None)
    parameters = a1111_parameters(used, plan.ref.name, plan.ref.model_hash(), a1111_extra(image))
    record = genimg_record(image)
    if served:
        parameters, record = _names_in_text(parameters), names_only(record)
    info.add_text(PARAMETERS_KEY, parameters)
    info.add_text(GENIMG_KEY, json.dumps(record, ensure_ascii=False))
    return info


def _names_in_text(text: str) -> str:
    """A1111's text with each path of this machine in its ``Key: value`` pairs named by its file name."""
    lines = text.split("\n")
    pairs = [(key.strip(), value.strip()) for key, value in _PAIR.findall(lines[-1])]
    if not pairs:
        return text
    shown = [(k, quote(names_only(json.loads(v) if v.startswith('"') else v))) for k, v in pairs]
    return "\n".join([*lines[:-1], ", ".join(f"{k}: {v}" for k, v in shown)])


def postprocess_pnginfo(source, pairs: dict):
    """PNG text for an image made from ``source`` by a postprocessing step (an upscale): the source's
    chunks kept, the step's ``Key: value`` pairs added to A1111's settings line, as A1111's extras tab
    does, and to the genimg record's ``postprocess`` list."""
    from PIL.PngImagePlugin import PngInfo

    try:
        text = read_text_chunks(source)
    except OSError:
        text = {}
    info = PngInfo()
    added = ", ".join(f"{k}: {quote(v)}" for k, v in pairs.items())
    parameters = text.get(PARAMETERS_KEY, "").rstrip("\n")
    info.add_text(PARAMETERS_KEY, f"{parameters}, {added}" if parameters else added)
    if GENIMG_KEY in text:
        try:
            record = json.loads(text[GENIMG_KEY])
            record.setdefault("postprocess", []).append(pairs)
            info.add_text(GENIMG_KEY, json.dumps(record, ensure_ascii=False))
        except ValueError:
            info.add_text(GENIMG_KEY, text[GENIMG_KEY])
    for key, value in text.items():
        if key not in (PARAMETERS_KEY, GENIMG_KEY):
            info.add_text(key, value)
    return info


def read_text_chunks(path) -> dict:
    from PIL import Image

    with Image.open(path) as im:
        return dict(getattr(im, "text", {}) or {})


def read_metadata(path) -> dict:
    """The ``parameters`` text (parsed) and the ``genimg`` record of a PNG; empty where absent."""
    text = read_text_chunks(path)
    out = {}
    if PARAMETERS_KEY in text:
        out["parameters"] = parse_parameters(text[PARAMETERS_KEY])
        out["parameters_text"] = text[PARAMETERS_KEY]
    if GENIMG_KEY in text:
        try:
            out["genimg"] = json.loads(text[GENIMG_KEY])
        except ValueError as e:
            out["genimg_damaged"] = f"its genimg record is damaged ({e})"
    return out


@dataclass(frozen=True)
class PngSettings:
    """What ``--from IMAGE`` read: the spec, where it came from, and the keys it could not map."""

    spec: object  # GenerationSpec
    source: str  # "genimg" (genimg's own record) or "parameters" (A1111's text)
    unmapped: dict
    warnings: tuple[str, ...] = ()  # e.g. a damaged genimg record, read from A1111's text instead
    source_hash: str | None = None  # the recorded input image's hash (genimg records of img2img, inpaint, edit)
    xyz: tuple[str, ...] = ()  # an X/Y/Z plot's grid: its axes as written


# A1111 keys (as A1111, Forge, Fooocus with A1111 metadata and stable-diffusion.cpp write them) -> spec fields.
A1111_KEYS = {"Steps": "steps", "Sampler": "scheduler", "CFG scale": "cfg", "Seed": "seed", "Size": "size",
              "Model": "model", "Denoising strength": "strength", "Hires upscale": "hires",
              "Hires steps": "hires_steps", "Hires upscaler": "hires_upscaler", "Clip skip": "clip_skip",
              "Variation seed": "variation_seed", "Variation seed strength": "variation_strength",
              "Seed resize from": "seed_resize_from", "Tiling": "tiling", "Refiner": "refiner",
              "Refiner switch at": "refiner_switch", "Face restoration": "restore_faces"}


def spec_from_png(path) -> PngSettings:
    """The generation settings of a PNG: genimg's own JSON chunk first, else A1111's ``parameters``."""
    from genimg.errors import UsageError
    from genimg.inputs import load_image
    from genimg.spec import GenerationSpec

    load_image(path, "--from image")  # exists and is an image: one clear line if not
    try:
        text = read_text_chunks(path)
    except OSError as e:
        raise UsageError(f"--from {path}: cannot read its metadata ({e})") from None
    warnings = []
    if GENIMG_KEY in text:
        try:
            record = json.loads(text[GENIMG_KEY])
            return PngSettings(GenerationSpec.from_dict(record["spec"], where=f"--from {path}"), "genimg", {},
                               source_hash=record.get("source_hash"), xyz=tuple(record.get("xyz") or ()))
        except (ValueError, KeyError, TypeError) as e:
            damage = f"--from {path}: its genimg record is damaged ({type(e).__name__}: {str(e)[:80]})"
            if PARAMETERS_KEY not in text:
                raise UsageError(f"{damage} and it holds no A1111 text to read instead; give the settings as flags") from None
            warnings.append(f"{damage}; reading its A1111 text instead, which holds no LoRA files, controls or VAE")
    if PARAMETERS_KEY not in text:
        raise UsageError(f"--from {path}: the image holds no generation settings (no genimg or A1111 metadata)")
    parsed = parse_parameters(text[PARAMETERS_KEY])
    data = {"prompt": parsed.pop("prompt"), "negative": parsed.pop("negative")}
    unmapped = {}
    schedule = parsed.pop("Schedule type", "")
    if "Hires upscale" in parsed and "Denoising strength" in parsed:
        data["hires_strength"] = parsed.pop("Denoising strength")  # with the hires fix it is the second pass's
    for key, value in parsed.items():
        if key in A1111_KEYS:
            data[A1111_KEYS[key]] = value
        else:
            unmapped[key] = value
    if "refiner" in data:  # A1111 names it "name [hash]"
        data["refiner"] = str(data["refiner"]).split(" [")[0]
    if "tiling" in data:  # A1111 writes Tiling: True (both axes); genimg writes x or y for one
        data["tiling"] = {"true": "xy", "false": None}.get(str(data["tiling"]).lower(), data["tiling"])
    if "scheduler" in data:
        data["scheduler"] = sampler_name(data["scheduler"], schedule)
    elif schedule:
        unmapped["Schedule type"] = schedule
    return PngSettings(GenerationSpec.from_dict(data, where=f"--from {path}"), "parameters", unmapped, tuple(warnings))


def sampler_name(sampler: str, schedule: str) -> str:
    """A1111 1.9+ writes ``Sampler: DPM++ 2M, Schedule type: Karras``; genimg's names join them."""
    from genimg.schedulers import schedulers

    names = {name.lower(): name for name in schedulers()}
    if schedule and schedule.lower() not in ("automatic", "uniform", "normal"):
        joined = f"{sampler} {schedule}".lower()
        if joined in names:
            return names[joined]
    return names.get(sampler.lower(), sampler)
