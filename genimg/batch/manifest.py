"""``manifest.jsonl``: one line per finished image, appended as each is written.

Re-running a batch skips every (job, image) whose line is there with the same settings and whose
file still exists. Shards of one batch append to the same file; each line is one ``write`` on a
file opened for appending, so lines from several processes never interleave. Paths are relative to
the folder, so a folder can be moved, and shards written on machines without shared storage merge by
copying their images into one folder and concatenating their manifests.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from genimg.files import no_space

NAME = "manifest.jsonl"


def read_done(folder: Path) -> dict[tuple[str, int], dict]:
    path = folder / NAME
    done = {}
    if not path.is_file():
        return done
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a crash; its image is made again
        if "job" in record and (folder / record.get("path", "")).is_file():
            done[(record["job"], record["index"])] = record
    return done


def batch_seed(folder: Path) -> int | None:
    path = folder / NAME
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if "batch_seed" in record:
                return record["batch_seed"]
    return None


def append(folder: Path, record: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    data = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
    try:
        fd = os.open(folder / NAME, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)  # the umask decides the mode
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
    except OSError as e:
        full = no_space(e, folder)
        if full is None:
            raise
        raise full from None
