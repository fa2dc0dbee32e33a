"""Write files so that nothing half-written is ever left behind and nothing is overwritten by accident."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from genimg.errors import UsageError


def check_writable(paths: list[Path], overwrite: bool) -> None:
    """Fail before any work if an output exists (without ``overwrite``) or a folder can't be written."""
    for path in paths:
        if path.exists() and not overwrite:
            raise UsageError(f"{path} already exists; pass --overwrite to replace it, or choose another -o")
    for folder in sorted({p.parent for p in paths}):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UsageError(f"cannot create output folder {folder}: {e.strerror}") from None
        if not os.access(folder, os.W_OK | os.X_OK):
            raise UsageError(f"output folder {folder} is not writable; choose another -o")


def atomic_save(path: Path, write, overwrite: bool = False) -> Path:
    """Call ``write(tmp_path)``, then move the finished file into place in one step."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        if overwrite:
            os.replace(tmp, path)
        else:
            # link() fails if the name appeared meanwhile, where rename() would silently replace it.
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise UsageError(f"{path} already exists; pass --overwrite to replace it") from None
            os.unlink(tmp)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def save_png(image, path: Path, overwrite: bool = False) -> Path:
    """Save a generated image with its metadata chunks."""
    from genimg.output.metadata import pnginfo

    info = pnginfo(image)
    return atomic_save(path, lambda tmp: image.image.save(tmp, format="PNG", pnginfo=info), overwrite)
