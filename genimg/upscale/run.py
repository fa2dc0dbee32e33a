"""``genimg upscale`` as a library call: inputs (files and folders) to upscaled PNGs that keep the
source's generation settings and record the upscale, written atomically, checked before any model loads."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from genimg.errors import UsageError
from genimg.upscale.models import UpscalerRef, resolve_upscaler

DEFAULT_OUTPUT = Path("outputs") / "upscaled"
MIN_SIDE = 8


@dataclass(frozen=True)
class UpscaleSettings:
    scale: float = 4.0
    model: str | None = None  # alias, file, folder or hub id (default: demo-upscaler)
    prompt: str = ""
    negative: str = ""
    noise_level: int = 20
    steps: int = 20
    guidance: float = 7.5
    seed: int = 0
    tile: int | None = None  # None: the preset's tile size; 0: whole image
    tile_overlap: int = 32
    allow_pickle: bool = False
    preset: str | None = None  # None: the user's (config, GENIMG_PRESET), else auto
    # A1111's extras: faces restored after the upscale (see GenerationSpec's fields of the same names)
    restore_faces: str | None = None
    face_strength: float = 1.0
    face_fidelity: float = 0.5

    @classmethod
    def from_dict(cls, data: dict, where: str = "") -> "UpscaleSettings":
        """Settings from a batch row or a request: each value coerced to its field's type (``coerce``, as a
        generation's are), an unknown key refused naming the known ones."""
        import typing

        from genimg.coerce import coerce

        hints = typing.get_type_hints(cls)
        unknown = sorted(set(data) - set(hints))
        if unknown:
            raise UsageError(f"{where}{unknown[0]}: not an upscale setting (known: {', '.join(hints)})")
        return cls(**{k: coerce(f"{where}{k}", v, hints[k]) for k, v in data.items()})

    def check(self) -> None:
        if not 1 <= self.scale <= 8:
            raise UsageError(f"--scale must be between 1 and 8 (got {self.scale:g})")
        if self.tile is not None and self.tile != 0 and self.tile < 16:
            raise UsageError(f"--tile must be 0 (no tiling) or at least 16 pixels (got {self.tile})")
        if self.tile_overlap < 0:
            raise UsageError(f"--tile-overlap must be 0 or more (got {self.tile_overlap})")
        if not 0 <= self.noise_level <= 350:
            raise UsageError(f"--noise-level must be between 0 and 350 (got {self.noise_level})")
        from genimg.spec import check_face_settings

        check_face_settings(self.face_strength, self.face_fidelity)


@dataclass(frozen=True)
class UpscaleJob:
    source: Path
    output: Path
    size: tuple[int, int]  # the output's
    skip: bool = False  # its output exists and the input came from a folder


@dataclass(frozen=True)
class Upscaled:
    source: Path
    path: Path
    size: tuple[int, int]
    seconds: float
    upscaler: str


def plan_upscale(inputs, settings: UpscaleSettings, output=None,
                 overwrite: bool = False) -> tuple[UpscalerRef, UpscalerRef | None, list[UpscaleJob]]:
    """Check every input and output before anything loads; outputs that exist are refused (a file
    given by name) or skipped (an image found in a folder). The upscaler, the face restorer (or None), the jobs."""
    from genimg.inputs import load_image
    from genimg.files import check_folder

    settings.check()
    ref = resolve_upscaler(settings.model, settings.allow_pickle)
    faces = None
    if settings.restore_faces:
        from genimg.upscale.faces import resolve_face_restorer

        faces = resolve_face_restorer(settings.restore_faces, settings.allow_pickle)
    from genimg.inputs import expand_inputs

    found = expand_inputs(inputs)
    target = Path(output) if output is not None else DEFAULT_OUTPUT
    single_file = output is not None and target.suffix.lower() == ".png" and not target.is_dir()
    if single_file and len(found) > 1:
        raise UsageError(f"-o {target} names one file, but there are {len(found)} images; give a folder")
    if output is not None and not single_file and target.suffix:
        raise UsageError(f"-o {target} must be a folder or a .png file")
    jobs = []
    stems = [source.stem for source, _ in found]
    for source, from_folder in found:
        image = load_image(source)
        if min(image.size) < MIN_SIDE:
            raise UsageError(f"{source} is {image.width}x{image.height}: too small to upscale (at least {MIN_SIDE} px a side)")
        size = (round(image.width * settings.scale), round(image.height * settings.scale))
        label = f"{settings.scale:g}".replace(".", "_")
        # photo.png and photo.jpg in one folder: each keeps its own name (photo-png-x4.png, photo-jpg-x4.png)
        stem = source.stem if stems.count(source.stem) == 1 else f"{source.stem}-{source.suffix.lstrip('.').lower()}"
        path = target if single_file else target / f"{stem}-x{label}.png"
        skip = path.exists() and not overwrite and from_folder
        if path.exists() and not overwrite and not from_folder:
            raise UsageError(f"{path} already exists; pass --overwrite to replace it, or choose another -o")
        jobs.append(UpscaleJob(source, path, size, skip))
    check_folder(target.parent if single_file else target)
    return ref, faces, jobs


def upscale_files(inputs, settings: UpscaleSettings = UpscaleSettings(), output=None, overwrite: bool = False,
                  progress: Callable | None = None, loader: Callable | None = None) -> Iterator[Upscaled]:
    """Upscale each input to a PNG; yields what was written (skipped ones are reported as ``skip``).
    ``loader(ref, settings, progress)`` gives the upscaler (default :func:`load`; a server's keeps it warm)."""
    from genimg.inputs import load_image

    ref, faces, jobs = plan_upscale(inputs, settings, output, overwrite)
    todo = [job for job in jobs if not job.skip]
    for job in jobs:
        if job.skip and progress:
            progress("skip", path=job.output)
    if not todo:
        return
    upscaler = (loader or load)(ref, settings, progress)
    restorer = (loader or load)(faces, settings, progress) if faces is not None else None
    native = upscaler.scale
    if native > 1 and progress and not _is_power(settings.scale, native):
        progress("warning", message=f"{ref.name} upscales x{native}; its output is resized to x{settings.scale:g} "
                                    "with Lanczos")
    for n, job in enumerate(todo):
        began = time.perf_counter()
        image = load_image(job.source)
        result = upscale_image(upscaler, image, settings.scale, settings.seed, progress)
        if restorer is not None:  # after the upscale, as A1111's extras order them
            result = restorer.restore(result, settings.face_strength, settings.face_fidelity)
        path = save_upscaled(result, job, settings.scale, ref.name, overwrite, faces.name if faces else None)
        if progress:
            progress("image", done=n + 1, total=len(todo))
        yield Upscaled(job.source, path, result.size, time.perf_counter() - began, ref.name)


def _is_power(scale: float, native: int) -> bool:
    power = math.log(scale) / math.log(native)
    return abs(power - round(power)) < 1e-9


def load_key(ref: UpscalerRef, settings: UpscaleSettings) -> tuple:
    """What a loaded upscaler depends on: two requests with the same key can share it."""
    return (ref, settings.tile, settings.tile_overlap, settings.preset, settings.prompt, settings.negative,
            settings.steps, settings.guidance, settings.noise_level)


def load(ref: UpscalerRef, settings: UpscaleSettings, progress=None):
    from genimg import config
    from genimg.presets import get_preset, torch_instead
    from genimg.upscale.upscalers import load_upscaler

    defaults = config.generation_defaults({"preset": settings.preset})
    preset = get_preset(defaults["preset"]).with_overrides(**defaults["preset_overrides"])
    if preset.compile == "openvino":  # its route converts a generating UNet's inputs, not an upscaler's
        preset = torch_instead(defaults["preset"], defaults["preset_overrides"])
    tile = settings.tile if settings.tile is not None else preset.upscale_tile
    if progress:
        progress("load", model=ref.name)
    upscaler = load_upscaler(ref, tile=tile, overlap=settings.tile_overlap, preset=preset, prompt=settings.prompt,
                             negative=settings.negative, steps=settings.steps, guidance=settings.guidance,
                             noise_level=settings.noise_level)
    if progress:
        progress("loaded", model=ref.name)
    return upscaler


def upscale_image(upscaler, image, scale: float, seed: int = 0, progress=None):
    """``image`` enlarged ``scale`` times: the upscaler's native scale applied as often as needed to
    reach it, then Lanczos to the exact size (a x4 model asked for x2 runs once and is resized down)."""
    from PIL import Image

    image = image.convert("RGB")
    target = (round(image.width * scale), round(image.height * scale))
    native = upscaler.scale
    if native <= 1:
        return upscaler.upscale(image, seed, progress, target)
    passes = max(1, math.ceil(math.log(scale) / math.log(native) - 1e-9))
    for _ in range(passes):
        image = upscaler.upscale(image, seed, progress)
    return image if image.size == target else image.resize(target, Image.LANCZOS)


def save_upscaled(image, job: UpscaleJob, scale: float, upscaler: str, overwrite: bool,
                  face_restorer: str | None = None) -> Path:
    """The upscaled PNG with the source's generation settings kept and the upscale recorded as A1111
    records it (``Postprocess upscale by``, ``Postprocess upscaler``; ``Face restoration``)."""
    from genimg.output.metadata import postprocess_pnginfo
    from genimg.files import atomic_save

    pairs = {"Postprocess upscale by": f"{scale:g}", "Postprocess upscaler": upscaler}
    info = postprocess_pnginfo(job.source, pairs | ({"Face restoration": face_restorer} if face_restorer else {}))
    return atomic_save(job.output, lambda tmp: image.save(tmp, format="PNG", pnginfo=info), overwrite)
