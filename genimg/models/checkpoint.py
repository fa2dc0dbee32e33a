"""Reading single-file checkpoints without loading them: the safetensors header holds every key."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

from genimg.errors import UsageError

PICKLE_SUFFIXES = (".ckpt", ".bin", ".pt", ".pth")


def safetensors_header(path: Path) -> dict:
    """The JSON header of a ``.safetensors`` file: tensor names to dtype/shape, plus ``__metadata__``."""
    try:
        with open(path, "rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            if size > 100_000_000:
                raise ValueError("header too large")
            return json.loads(f.read(size))
    except (OSError, ValueError, struct.error) as e:
        raise UsageError(f"{path} is not a readable .safetensors file ({e}); re-download it") from None


def short_hash(path: Path) -> str:
    """A1111's 'Model hash' (its 'AutoV2'): the first 10 hex digits of the file's SHA-256.

    Hashing a 6 GB checkpoint takes seconds, so the result is cached next to genimg's other caches,
    keyed by path, size and modification time.
    """
    from genimg.paths import cache_dir

    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    cache_file = cache_dir() / "hashes.json"
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    if key in cache:
        return cache[key]
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    cache[key] = digest.hexdigest()[:10]
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(cache))
        tmp.replace(cache_file)
    except OSError:
        pass  # a read-only home only costs a re-hash next time
    return cache[key]
