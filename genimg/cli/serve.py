"""``genimg serve``: one process that keeps models loaded and runs every client's jobs through plan/run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from genimg.cli import options as o

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _check_port(host: str, port: int) -> None:
    """The port is free, said in one line before anything starts (uvicorn's own "[Errno 98]" exits 3)."""
    import socket

    from genimg.errors import RunFailure

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is no conflict
        try:
            probe.bind((host, port))
        except OSError as e:
            raise RunFailure(f"cannot listen on {host}:{port}: {e.strerror or e} (another genimg serve?); pick "
                             "another with --port N, or --port 0 for any free one") from None


def _stop() -> None:
    from genimg.serve.background import stop

    pid = stop()
    print(f"genimg serve: stopped the server (process {pid})" if pid else "genimg serve: none is running")


def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on; another than loopback needs --token.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port (0: any free one, printed).")] = 7860,
    token: Annotated[Optional[str], typer.Option("--token", envvar="GENIMG_SERVE_TOKEN", show_envvar=False, help="Every request must send Authorization: Bearer TOKEN (or set GENIMG_SERVE_TOKEN).")] = None,
    keep: Annotated[int, typer.Option("--keep", help="Models kept loaded between jobs (least recently used go first).")] = 1,
    queue: Annotated[int, typer.Option("--queue", help="Jobs that may wait; more get 503 and Retry-After.")] = 64,
    history: Annotated[int, typer.Option("--history", help="Finished jobs kept (their images at /v1/jobs/ID and in the gallery); older ones are deleted.")] = 50,
    max_images: Annotated[int, typer.Option("--max-images", help="Images one request may ask for (count, A1111's batch_size × n_iter, OpenAI's n); more is a 400.")] = 16,
    preset: o.PresetName = None,
    device: Annotated[Optional[list[str]], typer.Option("--device", help="A worker on each of these devices (repeatable: --device cuda:0 --device cuda:1); default: one, on the preset's.")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Folder for the server's images (default: genimg's cache folder, served/).")] = None,
    idle_exit: Annotated[float, typer.Option("--idle-exit", metavar="MINUTES", help="Exit after this many minutes without a job (0: never). A server `server = auto` starts uses the config's server_idle_exit (10).")] = 0.0,
    stop: Annotated[bool, typer.Option("--stop", help="Stop the server this machine runs (the one `genimg serve` or `server = auto` started) and exit.")] = False,
) -> None:
    """Serve genimg's API, A1111's API and OpenAI's images API on one process that keeps models warm; the
    generating commands use it when it runs (`--local` to not)."""
    if stop:
        return _stop()
    import asyncio
    import os
    import signal
    import sys
    import threading

    from genimg.errors import UsageError
    from genimg.interrupts import stops_by_itself
    from genimg.paths import cache_dir
    from genimg.serve.app import create_app
    from genimg.serve.jobs import Worker
    from genimg.serve.runtime import ServerAddress, announce, withdraw

    if host not in LOOPBACK and not token:
        raise UsageError(f"--host {host} opens the server to other machines; give --token TOKEN too (every "
                         "request must then send it), or keep the default 127.0.0.1")
    if min(keep, queue, max_images, history) < 1 or not 0 <= port < 65536 or idle_exit < 0:
        raise UsageError("--keep, --queue, --max-images and --history must be at least 1, --port between 0 and 65535 "
                         "and --idle-exit 0 or more")
    from genimg.presets import get_preset

    for name in device or ():
        get_preset("cpu").with_overrides(device=name)  # the same check as --device of a generating command
    _check_port(host, port)
    import uvicorn

    worker = Worker(output or cache_dir() / "served", keep, queue, preset, tuple(device or (None,)), max_images,
                    history).start()

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame):
            # The first Ctrl-C or SIGTERM stops the worker at once (queued jobs cancelled, the running one at its
            # next step), so the requests uvicorn waits for are answered (503, "server stopping") in seconds.
            worker.begin_stop()
            super().handle_exit(sig, frame)

    # timeout_graceful_shutdown: a request still open after that (a client reading slowly) does not hold the stop
    server = Server(uvicorn.Config(create_app(worker, token), host=host, port=port, log_level="warning",
                                  timeout_graceful_shutdown=5))

    def say_where():
        while not server.started and not server.should_exit:
            threading.Event().wait(0.05)
        if server.started:
            bound = server.servers[0].sockets[0].getsockname()[1]
            url = f"http://{'[::1]' if host == '::1' else host}:{bound}"
            announce(ServerAddress(url, token, os.getpid()))
            print(f"serving on {url}", flush=True)

    def exit_when_idle():
        while not server.should_exit:
            threading.Event().wait(min(5.0, idle_exit * 60 / 4))
            if worker.idle_seconds() >= idle_exit * 60 and not server.should_exit:
                sys.stderr.write(f"genimg serve: no work for {idle_exit:g} minutes; stopping\n")
                worker.begin_stop()
                server.should_exit = True

    threading.Thread(target=say_where, daemon=True).start()
    if idle_exit > 0:
        threading.Thread(target=exit_when_idle, daemon=True).start()
    # uvicorn takes Ctrl-C and SIGTERM while it serves, shuts down, then raises the signal again for the
    # handler it found: that one must let the jobs be wound down and the count said, not kill the process.
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop_signal, lambda number, frame: None)
    with stops_by_itself():  # uvicorn stops on Ctrl-C and SIGTERM; the running job is cancelled below
        try:
            asyncio.run(server.serve())
        except (KeyboardInterrupt, asyncio.CancelledError):
            pass  # a second Ctrl-C while shutting down: stop now, still with the summary and the runtime file gone
        finally:
            counts = worker.stop(wait=10)
            withdraw(os.getpid())
    sys.stderr.write(f"genimg serve: stopped; {counts['done']} jobs done, {counts['failed']} failed, "
                     f"{counts['cancelled']} cancelled\n")
    if worker.stuck:  # a step still running in native code would abort the interpreter's teardown
        sys.stderr.flush()
        os._exit(0)
