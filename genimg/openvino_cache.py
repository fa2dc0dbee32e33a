"""What the OpenVINO route keeps on disk, listed and freed (``genimg models conversions``): the UNet's
conversions, and its VAE's and text encoders' (``openvino_vae``, ``openvino_text``), each listed as
"MODEL (VAE decoder)", "MODEL (text encoder)" ….

The route converts a UNet once per weights (LoRAs fused in) and input size, and never reuses a conversion
for other weights: another model, LoRA set or size adds files, and nothing else removes them. Per weights
key (a fingerprint of the UNet's values, ``openvino_unet.fingerprint``) the folder holds:

- ``{key}-{kind}-{shapes}.xml`` / ``.bin``: one IR per input shapes (``kind`` "winograd"; "static" for
  the benchmark's plain convolutions), with ``.json`` beside it naming the model it came from;
- ``{key}-weights.safetensors``: the torch UNet's weights, memory-mapped once the graph is compiled;
- ``compiled/{key}/``: OpenVINO's own cache of the compiled graphs.

Files from before the sidecars (``compiled/`` blobs at the top, IRs without ``.json``) are listed under
an unknown model and go with ``all`` or their key.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

KINDS = ("winograd", "static", "winograd.f32", "static.f32")  # the recipe; ".f32": a float32 graph of bf16 weights
UNKNOWN = "(converted by an earlier genimg)"


@dataclass
class Conversion:
    """Everything kept for one UNet's weights."""

    key: str
    model: str
    sizes: list[str] = field(default_factory=list)  # "512x512 batch 2", one per IR
    bytes: int = 0
    last_used: float = 0.0  # seconds since the epoch: the newest IR's time (touched when a process loads it)
    paths: list[Path] = field(default_factory=list)


def ir_name(key: str, winograd: bool, shapes, f32_graph: bool = False) -> str:
    """The IR's file name without suffix, for the weights ``key``, the recipe and the inputs' ``shapes``."""
    kind = ("winograd" if winograd else "static") + (".f32" if f32_graph else "")
    return f"{key}-{kind}-" + "-".join("x".join(map(str, s)) or "1" for s in shapes)


def weights_path(folder: Path, key: str) -> Path:
    return folder / f"{key}-weights.safetensors"


def compiled_folder(folder: Path, key: str) -> Path:
    """OpenVINO's cache of the compiled graphs of one weights key (its blobs are named by OpenVINO's hash,
    so a folder per key is what lets them go with their IRs)."""
    return folder / "compiled" / key


def record(xml: Path, model: str, shapes, scale: int = 8) -> None:
    """The sidecar the listing names the model and image size from (``scale``: the VAE's, pixels per latent)."""
    from genimg.files import atomic_save

    text = json.dumps({"model": model, "size": _size(xml.stem, scale), "shapes": [list(s) for s in shapes]})
    atomic_save(xml.with_suffix(".json"), lambda tmp: tmp.write_text(text), overwrite=True)


def mark_used(xml: Path) -> None:
    """The IR's time is its last use: what the listing orders by, the oldest first to free."""
    try:
        xml.touch()
    except OSError:  # a read-only cache still runs
        pass


def conversions(folder: Path) -> list[Conversion]:
    """What ``folder`` (genimg's ``cache/openvino``) holds, per weights key, the least recently used first."""
    found: dict[str, Conversion] = {}

    def entry(key: str) -> Conversion:
        return found.setdefault(key, Conversion(key, UNKNOWN))

    if not folder.is_dir():
        return []
    for path in folder.iterdir():
        key, _, rest = path.name.partition("-")
        if path.is_dir() or path.name.startswith(".") or not rest:
            continue
        kept, info = entry(key), path.stat()
        kept.paths.append(path)
        kept.bytes += info.st_size
        if path.suffix == ".xml":
            kept.last_used = max(kept.last_used, info.st_mtime)
            try:
                sidecar = json.loads(path.with_suffix(".json").read_text())
                kept.model, size = sidecar["model"], sidecar["size"]
            except (OSError, ValueError, KeyError):
                size = _size(path.stem)  # SD's VAE: 8 pixels a latent
            kept.sizes.append(size)
    compiled = folder / "compiled"
    if compiled.is_dir():
        for path in compiled.iterdir():
            kept = entry(path.name) if path.is_dir() else entry("compiled")  # blobs of before the per-key folders
            kept.paths.append(path)
            kept.bytes += _bytes(path)
    return sorted(found.values(), key=lambda c: (c.last_used, c.key))


def matching(kept: list[Conversion], what: str) -> list[Conversion]:
    """The conversions ``what`` names: "all", a weights key or its start, or the model's name as listed."""
    if what == "all":
        return kept

    def model_of(conversion: Conversion) -> str:  # a part's entry is listed as "MODEL (VAE decoder)"
        return part_of(conversion.model)[0]

    return [c for c in kept if c.key.startswith(what) or model_of(c) == what or Path(model_of(c)).name == what]


# The parts of a model the route converts besides its UNet, as the listing names them: "MODEL (PART)"
PARTS = ("VAE decoder", "VAE encoder", "text encoder", "text encoder 2")


def part_of(listed: str) -> tuple[str, str]:
    """(the model, the part: "UNet" or one of :data:`PARTS`) of a conversion's listed name."""
    for part in PARTS:
        if listed.endswith(f" ({part})"):
            return listed[:-len(part) - 3], part
    return listed, "UNet"


def remove(conversion: Conversion) -> int:
    """Delete a conversion's files; returns the bytes freed."""
    for path in conversion.paths:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return conversion.bytes


def age(seconds_since_epoch: float) -> str:
    if not seconds_since_epoch:
        return "-"
    days = (time.time() - seconds_since_epoch) / 86400
    return "today" if days < 1 else f"{days:.0f} days ago"


def _size(stem: str, scale: int = 8) -> str:
    """"512x512 batch 2" from an IR's name (its first input is the latents, B×4×H/scale×W/scale, or a VAE
    encoder's pixels at scale 1); "77 tokens" for a text encoder's."""
    parts = stem.split("-")
    dims = parts[2].split("x") if len(parts) > 2 and parts[1] in KINDS else []
    if len(dims) == 2 and all(d.isdigit() for d in dims):  # a text encoder's token ids
        return f"{dims[1]} tokens"
    if len(dims) != 4 or not all(d.isdigit() for d in dims):
        return "?"
    batch, _, h, w = map(int, dims)
    return f"{w * scale}x{h * scale} batch {batch}"


def _bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
