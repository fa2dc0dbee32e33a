"""Write files so that nothing half-written is ever left behind and nothing is overwritten by accident."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from genimg.errors import DiskFull, UsageError


def check_writable(paths: list[Path], overwrite: bool) -> None:
    """Fail before any work if an output exists (without ``overwrite``) or a folder can't be written.
    Creates nothing: folders appear with the first file written, so a failed run leaves none behind."""
    for path in paths:
        if path.exists() and not overwrite:
            raise UsageError(f"{path} already exists; pass --overwrite to replace it, or choose another -o")
    for folder in sorted({p.parent for p in paths}):
        check_folder(folder, "output folder", "-o")


def check_folder(folder: Path, what: str = "output folder", flag: str = "-o") -> None:
    """``folder`` can be written, or created where its nearest existing parent can be written."""
    folder = Path(folder)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"cannot create {what} {folder}: {existing} is a file; choose another {flag}")
    if not os.access(existing, os.W_OK | os.X_OK):
        where = folder if existing == folder else f"{folder} ({existing} is read-only)"
        raise UsageError(f"{what} {where} is not writable; choose another {flag}")


def check_unused(folder: Path, overwrite: bool, resume_with: str | None = None) -> None:
    """``folder`` is writable and empty, or ``overwrite`` says its contents may go (the caller removes
    them once the run is known to start). ``resume_with``: the flag that continues a run held there."""
    check_folder(folder)
    if folder.exists() and any(folder.iterdir()) and not overwrite:
        how = f"pass {resume_with} to continue it or --overwrite to replace it" if resume_with else \
            "pass --overwrite to replace it, or choose another -o"
        raise UsageError(f"{folder} already holds {'a run' if resume_with else 'files'}; {how}")


def give_umask_mode(paths) -> None:
    """Files a library wrote its own way (safetensors makes them 0600) get the mode a plain open() gives."""
    for path in paths:
        if Path(path).is_file():
            os.chmod(path, 0o666 & ~_umask())


def save_safetensors(path: Path, tensors: dict, metadata: dict | None = None, overwrite: bool = True) -> Path:
    """``tensors`` as a safetensors file at ``path``, through :func:`atomic_save` (whole or not at all, the
    umask's mode)."""
    from safetensors.torch import save_file

    return atomic_save(Path(path), lambda tmp: save_file(tensors, str(tmp), metadata=metadata), overwrite)


def _umask() -> int:
    """The process's umask, read without changing it: setting it (the only portable way to read it) would
    give files other threads create meanwhile mode 0666. Linux says it in /proc; elsewhere it is read once."""
    global _UMASK
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    if _UMASK is None:
        _UMASK = os.umask(0o22)
        os.umask(_UMASK)
    return _UMASK


_UMASK: int | None = None


def no_space(error: OSError, folder: Path) -> DiskFull | None:
    """A full disk (or quota) as one line naming the folder and its free space; None for other errors."""
    if error.errno not in (errno.ENOSPC, errno.EDQUOT):
        return None
    free = free_space(folder)
    return DiskFull(f"no space left in {folder} ({free / 1e6:.1f} MB free); free some space or choose another -o")


def check_room(folder: Path, needed: int, what: str, elsewhere: str = "choose another -o") -> None:
    """Refuse to start ``what`` when ``folder`` has less than ``needed`` bytes free (an estimate)."""
    free = free_space(folder)
    if needed > free:
        raise DiskFull(f"{what} needs about {needed / 1e6:.0f} MB, but {folder} has {free / 1e6:.0f} MB free; "
                       f"free some space or {elsewhere}")


def free_space(folder) -> int:
    """Free bytes where ``folder`` is (or would be created)."""
    folder = Path(folder)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return shutil.disk_usage(folder).free


def atomic_save(path: Path, write, overwrite: bool = False) -> Path:
    """Call ``write(tmp_path)``, then move the finished file into place in one step. A full disk is one
    line (:func:`no_space`), and leaves no part-written file."""
    try:
        return _atomic_save(path, write, overwrite)
    except OSError as e:
        full = no_space(e, path.parent)
        if full is None:
            raise
        raise full from None


def _atomic_save(path: Path, write, overwrite: bool) -> Path:
    with made_folder(path.parent):
        return _replace_with(path, write, overwrite)


@contextmanager
def made_folder(folder: Path):
    """``folder`` made (with its missing parents) for the work of the block; if the block fails, the
    folders it made go again while they are empty: work that failed leaves nothing behind."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    try:
        yield folder
    except BaseException:
        for made in missing:
            try:
                made.rmdir()
            except OSError:  # not empty (a partial download to resume, say): it stays, and its parents too
                break
        raise


def _replace_with(path: Path, write, overwrite: bool) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        # mkstemp makes the file 0600 (and a writer may make it anew); the finished output gets the
        # mode a plain open() would give it.
        os.chmod(tmp, 0o666 & ~_umask())
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
