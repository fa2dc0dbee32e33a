"""Where a running `genimg serve` says it is: ``server.json`` in the user's state folder, mode 0600 (it may
hold the token), written when the server is ready and removed when it stops. The CLI finds it there."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

NAME = "server.json"


@dataclass(frozen=True)
class ServerAddress:
    url: str
    token: str | None = None
    pid: int | None = None


def runtime_file() -> Path:
    from genimg.paths import state_dir

    return state_dir() / NAME


def announce(address: ServerAddress) -> Path:
    """Write the runtime file: readable by this user alone, whole or not at all."""
    path = runtime_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{NAME}.{os.getpid()}.part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump({"url": address.url, "token": address.token, "pid": address.pid}, f)
    os.replace(tmp, path)
    return path


def withdraw(pid: int) -> None:
    """Remove the runtime file if it is this server's (a newer server may have replaced it)."""
    found = running()
    if found is not None and found.pid == pid:
        runtime_file().unlink(missing_ok=True)


def running() -> ServerAddress | None:
    """The server this machine's runtime file names, if its process is alive."""
    path = runtime_file()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    pid = data.get("pid")
    if pid:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None  # left behind by a server that was killed
        except PermissionError:
            pass
    return ServerAddress(data["url"], data.get("token"), pid)
