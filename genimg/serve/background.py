"""``server = "auto"``: the first generating command starts a `genimg serve` in the background and every later
one goes through it, so only the first pays for the imports and the model's load. The server listens on
loopback at a free port, wants a token only this user can read (the runtime file, mode 0600), and exits by
itself after ``server_idle_exit`` minutes without work; ``genimg serve --stop`` ends it sooner."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from genimg.errors import RunFailure
from genimg.serve.runtime import ServerAddress, running

START_TIMEOUT = 120.0  # seconds for a started server to announce itself (imports on a busy machine)
STOP_TIMEOUT = 30.0  # seconds for a server to finish its running step and exit
LOG = "serve.log"


def log_file():
    from genimg.paths import state_dir

    return state_dir() / LOG


def started(idle_minutes: float, progress=None) -> ServerAddress:
    """The server this machine runs, or a new one started in the background and ready to take jobs (said to
    ``progress`` as a ``server_started`` event). Two commands starting at once start one server: the second
    waits for the first's."""
    with _start_lock():
        found = running()
        if found is not None:
            return found
        address = _start(idle_minutes)
    if progress:
        progress("server_started", pid=address.pid, url=address.url, idle_minutes=idle_minutes)
    return address


def stop() -> int | None:
    """End the server this machine's runtime file names (SIGTERM: its running job stops at the next step and
    it says what it finished in its log); returns its process id, or None when none runs."""
    found = running()
    if found is None or not found.pid:
        return None
    try:
        os.kill(found.pid, signal.SIGTERM)
    except ProcessLookupError:
        return None
    deadline = time.monotonic() + STOP_TIMEOUT
    while _alive(found.pid):
        if time.monotonic() > deadline:
            raise RunFailure(f"the genimg server (process {found.pid}) did not stop within {STOP_TIMEOUT:.0f} s; "
                             f"end it with `kill {found.pid}`")
        time.sleep(0.05)
    return found.pid


def _start(idle_minutes: float) -> ServerAddress:
    log = log_file()
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "genimg", "serve", "--port", "0", "--idle-exit", repr(idle_minutes)]
    # The token travels in the environment, not the command line every user of the machine can list.
    env = {**os.environ, "GENIMG_SERVE_TOKEN": secrets.token_urlsafe(24)}
    with open(log, "w", encoding="utf-8") as out:
        # A session of its own: the terminal's Ctrl-C stops the command that started it, not the server.
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env,
                                   start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        found = running()
        if found is not None and found.pid == process.pid:
            return found
        if process.poll() is not None:
            last = [line for line in log.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
            raise RunFailure(f"the background genimg server exited at start ({last[-1] if last else 'no output'}); "
                             f"its log is {log}; pass --local to run here")
        time.sleep(0.05)
    process.terminate()
    raise RunFailure(f"the background genimg server did not start within {START_TIMEOUT:.0f} s; its log is {log}; "
                     "pass --local to run here")


def _alive(pid: int) -> bool:
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)  # our own child (the tests start and stop it in one process)
        if reaped:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # an exited server nobody reaped (a container's init may not) is a zombie: gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


@contextmanager
def _start_lock():
    from genimg.paths import state_dir

    folder = state_dir()
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; two commands at once may each start a server
        yield
        return
    with open(folder / "serve.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
