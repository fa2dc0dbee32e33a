"""``genimg preprocess`` as a library call: control maps of files and folders written as PNGs, every
output checked before any detector loads."""

from __future__ import annotations

from pathlib import Path

from genimg.control import check_preprocessor, preprocess
from genimg.errors import UsageError, did_you_mean
from genimg.files import atomic_save, check_folder
from genimg.inputs import expand_inputs, load_image
from genimg.preprocessors import preprocessors

DEFAULT_OUTPUT = Path("outputs") / "controls"


def preprocess_files(kind: str, inputs, output=None, allow_pickle: bool = False, detect_resolution: int = 512,
                     overwrite: bool = False, progress=None, settings: dict | None = None):
    """``genimg preprocess``: each input's control map as ``NAME-KIND.png`` in ``output`` (a folder, or a
    .png for one image); yields (source, written path). Every output is checked before anything loads."""
    if kind not in preprocessors():
        raise UsageError(f"unknown preprocessor {kind!r}{did_you_mean(kind, preprocessors())}; "
                         f"use one of {', '.join(preprocessors())}")
    preprocessors()[kind].resolve(settings, "--set")
    found = expand_inputs(inputs)
    target = Path(output) if output is not None else DEFAULT_OUTPUT
    single = target.suffix.lower() == ".png"
    if single and len(found) > 1:
        raise UsageError(f"-o {target} names one file, but there are {len(found)} images; give a folder")
    jobs = []
    for source, _ in found:
        path = target if single else target / f"{source.stem}-{kind}.png"
        if path.exists() and not overwrite:
            raise UsageError(f"{path} already exists; pass --overwrite to replace it, or choose another -o")
        jobs.append((source, path))
    check_folder(target.parent if single else target)
    check_preprocessor(kind, allow_pickle)  # missing or refused weights: said before any image is read
    for n, (source, path) in enumerate(jobs):
        image = preprocess(load_image(source).convert("RGB"), kind, allow_pickle, detect_resolution, settings=settings)
        atomic_save(path, lambda tmp: image.save(tmp, format="PNG"), overwrite)
        if progress:
            progress("image", done=n + 1, total=len(jobs))
        yield source, path
