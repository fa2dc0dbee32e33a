"""Everything the CLI shows: progress on stderr, results on stdout, errors as one line."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager

from rich.console import Console
from rich.text import Text

# Nothing genimg prints is read as Rich markup or emoji codes: prompts, file and model names are full of [ and ] (A1111's
# prompt syntax), and a "[/x]" in one would end the line with a MarkupError. Styles are given as Text.
stderr = Console(stderr=True, highlight=False, soft_wrap=True, markup=False, emoji=False)  # one line each


def console(**options) -> Console:
    """A console for stdout (tables, reports) that reads no markup either."""
    return Console(markup=False, emoji=False, **options)


def styled(*parts) -> Text:
    """Text from (text, style) pairs and plain strings, none of it read as markup."""
    return Text.assemble(*parts)


def error_line(message: str, command: str | None = None) -> None:
    prefix = f"genimg {command}: " if command else "genimg: "
    sys.stderr.write(f"{prefix}error: {message}\n")


def warning_line(message: str) -> None:
    stderr.print(styled(("warning:", "yellow"), " ", message))


class Reporter:
    """Renders the library's progress events (``load``, ``step``, ``image``, ``warning``) with rich."""

    def __init__(self, progress, quiet: bool):
        self.progress = progress
        self.quiet = quiet
        self.load_task = self.step_task = self.image_task = self.batch_task = self.download_task = None
        self.doing = ""  # what is under way, for the plain lines of a log (see PlainTicker)

    def note(self, doing: str) -> None:
        """Say what is under way (shown by the plain ticker when stderr is not a terminal)."""
        self.doing = doing

    def batch_total(self, total: int, skipped: int) -> None:
        if self.progress is not None:
            label = f"batch ({skipped} already done)" if skipped else "batch"
            self.batch_task = self.progress.add_task(label, total=total)

    def batch_advance(self) -> None:
        if self.progress is not None and self.batch_task is not None:
            self.progress.advance(self.batch_task)

    def __call__(self, event: str, **info) -> None:
        if event == "warning":
            if not self.quiet:
                warning_line(info["message"])
            return
        if event == "server_started":
            if not self.quiet:
                ends = (f"exits after {info['idle_minutes']:g} minutes without work or with `genimg serve --stop`"
                        if info["idle_minutes"] else "runs until `genimg serve --stop`")
                sys.stderr.write(f"started a genimg server in the background (process {info['pid']}, {info['url']}): "
                                 f"it keeps the model warm for the next commands and {ends}\n")
            return
        if event in _DOING:
            self.note(_DOING[event](info))
        if self.progress is None:
            return
        p = self.progress
        if event == "load":
            self.load_task = p.add_task(f"loading {info['model']}", total=None)
        elif event == "loaded" and self.load_task is not None:
            p.update(self.load_task, total=1, completed=1, description=f"loaded {info['model']}")
        elif event in ("step", "tile"):
            if self.step_task is None:
                self.step_task = p.add_task("denoising" if event == "step" else "tiles", total=info["total"])
            p.update(self.step_task, completed=info["step"], total=info["total"])
        elif event == "download":
            mb = 2**20
            if self.download_task is None:
                self.download_task = p.add_task("downloading (MB)", total=max(1, info["total"] // mb))
            p.update(self.download_task, completed=info["done"] // mb, description=f"downloaded {info['file']}")
        elif event == "image":
            if self.image_task is None and info["total"] > 1:
                self.image_task = p.add_task("images", total=info["total"])
            if self.image_task is not None:
                p.update(self.image_task, completed=info["done"])


# How each progress event reads in a plain line.
_DOING = {
    "load": lambda i: f"loading {i['model']}",
    "loaded": lambda i: f"loaded {i['model']}",
    "step": lambda i: f"denoising step {i['step']}/{i['total']}",
    "tile": lambda i: f"tile {i['step']}/{i['total']}",
    "image": lambda i: f"image {i['done']}/{i['total']} done",
    "download": lambda i: f"downloading {i['done'] // 2**20}/{i['total'] // 2**20} MB",
    "train_step": lambda i: f"training step {i['step']}/{i['total']} (loss {i['loss']:.4f})",
}


class PlainTicker:
    """A line on stderr every ``interval`` seconds saying what is under way, for logs and pipes: long work is
    never silent, short work prints nothing. A thread, so it speaks even inside one long torch call."""

    def __init__(self, reporter: Reporter, interval: float):
        import threading
        import time

        self.reporter, self.interval, self.began = reporter, interval, time.monotonic()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import time

        while not self.done.wait(self.interval):
            doing = self.reporter.doing or "working"
            sys.stderr.write(f"genimg: {doing} ({time.monotonic() - self.began:.0f} s)\n")
            sys.stderr.flush()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join()


@contextmanager
def progress_reporter(quiet: bool):
    if quiet:
        yield Reporter(None, quiet)
        return
    if not stderr.is_terminal and not _force_progress():
        reporter = Reporter(None, quiet)
        with PlainTicker(reporter, _plain_interval()):
            yield reporter
        return
    from rich.progress import Progress

    with Progress(*progress_columns(), console=stderr, transient=False) as progress:
        yield Reporter(progress, quiet)


def progress_columns() -> tuple:
    """The progress display's columns; a task's description (a model's or a file's name) is not markup."""
    from rich.progress import BarColumn, MofNCompleteColumn, SpinnerColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return (SpinnerColumn(), TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TimeRemainingColumn())


def _force_progress() -> bool:
    import os

    return os.environ.get("GENIMG_PROGRESS") == "1"


def _plain_interval() -> float:
    """Seconds between plain progress lines: GENIMG_PROGRESS_EVERY, else 10."""
    import os

    try:
        return max(0.1, float(os.environ.get("GENIMG_PROGRESS_EVERY", "10")))
    except ValueError:
        return 10.0


def print_result(path, image, as_json: bool) -> None:
    """One made image on stdout: ``image`` is a GeneratedImage, or the same summary as a dict (what a
    server sends back for an image it made)."""
    summary = image if isinstance(image, dict) else image.summary()
    if as_json:
        print(json.dumps({"path": str(path), **summary}, ensure_ascii=False), flush=True)
    elif "grid" in summary:  # an X/Y/Z plot's grid
        print(f"{path}  grid of {' × '.join(summary['axes'])}", flush=True)
    else:
        print(f"{path}  seed={summary['seed']}  {summary['seconds']:.2f}s", flush=True)
