"""The server's jobs: a FIFO queue, one worker thread running each job through the same ``plan``/``run``
as the CLI, and the models it keeps warm between jobs.

A job's input images arrive as uploads and are written into the job's own folder; the spec the worker
runs names those copies, and the PNGs it writes name the client's files again, so an image made through
the server carries the same settings (and the same source hashes) as one made locally.
"""

from __future__ import annotations

import itertools
import queue
import secrets
import shutil
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from genimg.errors import GenimgError, UsageError
from genimg.interrupts import FinishEarly
from genimg.serve.safety import image_fields
from genimg.serve.uploads import client_spec, renamed, saved_uploads
from genimg.serve.warm import WarmModels
from genimg.spec import GenerationSpec

STATES = ("queued", "running", "done", "failed", "cancelled")
MAX_IMAGES = 16  # images one request may ask for unless `genimg serve --max-images` says otherwise
HISTORY = 50  # finished jobs a server keeps unless `genimg serve --history` says otherwise


class Cancelled(GenimgError):
    """The job was cancelled (by its client, or by the server stopping)."""


class QueueFull(GenimgError):
    """More jobs are waiting than the server takes: try again later."""


@dataclass
class Job:
    id: str
    spec: object  # GenerationSpec, its input images at the server's copies
    folder: Path  # the job's uploads and results
    client_paths: dict = field(default_factory=dict)  # server copy -> the client's name for the file
    status: str = "queued"
    error: str | None = None
    error_code: int = 0  # the exit code the CLI would have given (2 usage, 1 run time)
    events: list = field(default_factory=list)  # progress, in order: what /events streams
    results: list = field(default_factory=list)  # (path, summary) per image made
    cancel: threading.Event = field(default_factory=threading.Event)
    interrupt: threading.Event = field(default_factory=threading.Event)  # finish as far as it got (A1111's)
    finished: threading.Event = field(default_factory=threading.Event)
    submitted: float = field(default_factory=time.time)
    fallback: bool = False  # out of GPU memory: retry once on the next smaller preset (--auto-fallback)
    plan: object = None  # the Plan made at submission (its input images let go until it runs)
    plot: tuple = ()  # an X/Y/Z plot's axes as written ("steps=10,20"): every combination, then the grids
    watchers: list = field(default_factory=list)  # (event loop, asyncio.Event) of each request waiting on it

    def emit(self, event: dict, end: bool = False) -> None:
        """Record a progress event (``end``: the job's last, after which it is finished) and wake the requests
        waiting on this job (from any thread)."""
        self.events.append(event)
        if end:
            self.finished.set()
        for loop, woken in list(self.watchers):
            loop.call_soon_threadsafe(woken.set)

    async def changed(self, seen: int) -> None:
        """Return once the job has more than ``seen`` events or is finished: no polling."""
        import asyncio

        watcher = (asyncio.get_running_loop(), asyncio.Event())
        self.watchers.append(watcher)  # before the check: an event emitted in between still wakes it
        try:
            if len(self.events) <= seen and not self.finished.is_set():
                await watcher[1].wait()
        finally:
            self.watchers.remove(watcher)

    def view(self) -> dict:
        """The job as the API shows it."""
        return {"id": self.id, "status": self.status, "error": self.error, "error_code": self.error_code,
                "images": [{"url": f"/v1/jobs/{self.id}/images/{n}", **summary}
                           for n, (_, summary) in enumerate(self.results)],
                "events": len(self.events)}


@dataclass
class Lane:
    """One device's worker: the models it keeps warm and the job it runs."""

    device: str | None  # None: the preset's device
    models: WarmModels
    job: Job | None = None


class Worker:
    """Runs jobs from one FIFO queue of at most ``max_queue`` waiting jobs: one at a time on each device
    (``devices``: e.g. cuda:0 and cuda:1; by default the preset's one device)."""

    def __init__(self, output: Path, keep: int = 1, max_queue: int = 64, preset: str | None = None,
                 devices: tuple = (None,), max_images: int = MAX_IMAGES, history: int = HISTORY):
        self.output = Path(output)
        self.preset = preset
        self.lanes = [Lane(device, WarmModels(keep)) for device in devices or (None,)]
        self.queue: queue.Queue = queue.Queue()
        self.max_queue = max_queue
        self.max_images = max_images  # images one request may ask for
        self.history = max(1, history)  # finished jobs kept (their images, events, folders); older ones go
        self.jobs: dict[str, Job] = {}
        self.accepting = True
        self.last_work = time.monotonic()  # when a job last arrived or ended: what --idle-exit counts from
        self.counts = {state: 0 for state in STATES}
        self._ids = itertools.count(1)
        self._lock = threading.RLock()  # cancel() finishes a queued job while holding it
        self.threads = [threading.Thread(target=self._loop, args=(lane,), name=f"genimg-worker-{n}", daemon=True)
                        for n, lane in enumerate(self.lanes)]

    def start(self) -> "Worker":
        for thread in self.threads:
            thread.start()
        return self

    @property
    def waiting(self) -> int:
        """Jobs waiting for a worker (not the cancelled ones still in the queue)."""
        return sum(job.status == "queued" for job in self.jobs.values())

    @property
    def running(self) -> list[Job]:
        return [lane.job for lane in self.lanes if lane.job is not None]

    @property
    def current(self) -> Job | None:
        """The job running longest (what A1111's /progress reports)."""
        running = self.running
        return min(running, key=lambda job: job.submitted) if running else None

    def idle_seconds(self) -> float:
        """How long no job has been queued or running (0 while one is)."""
        if any(not job.finished.is_set() for job in list(self.jobs.values())):
            return 0.0
        return time.monotonic() - self.last_work

    def loaded(self) -> list[str]:
        return [name for lane in self.lanes for name in lane.models.loaded()]

    def submit(self, spec, uploads: dict[str, bytes], fallback: bool = False, plot: tuple = ()) -> Job:
        """Queue ``spec``, planned first so a bad request fails now, not when the worker reaches it;
        ``uploads`` (the client's name -> bytes) are its input images; ``plot``: an X/Y/Z plot of it, its
        axes as ``--xyz`` writes them (each combination checked now too)."""
        spec = self._served(spec, uploads)
        if plot:
            from genimg.generation import plan
            from genimg.xyz import cells, parse_axis

            made = cells(spec, [parse_axis(text) for text in plot])
            if len(made) > self.max_images:
                raise UsageError(f"the X/Y/Z plot makes {len(made)} images, more than this server makes for one "
                                 f"request (at most {self.max_images}); use fewer values")
            for _, cell in made:
                plan(cell)
        return self._queue(spec, uploads, fallback, tuple(plot))

    def check(self, spec, uploads: dict[str, bytes]) -> dict:
        """``spec`` planned as its job would be, nothing queued or run: the settings as this server resolves
        them (input images by the client's names), each image's seed, and the model's name."""
        import tempfile

        from genimg.generation import plan

        spec = self._served(spec, uploads)
        with tempfile.TemporaryDirectory(prefix="genimg-plan-") as scratch:
            copies = saved_uploads(uploads, Path(scratch))
            planned = plan(renamed(spec, copies))
        return {"settings": client_spec(planned.spec, {v: k for k, v in copies.items()}).to_dict(),
                "seeds": planned.seeds, "variation_seeds": [im.variation_seed for im in planned.images],
                "model": planned.ref.name}

    def _served(self, spec, uploads: dict[str, bytes]):
        if spec.count > self.max_images:
            raise UsageError(f"--count {spec.count} is more images than this server makes for one request "
                             f"(at most {self.max_images}); ask in several requests")
        missing = [name for name in image_fields(spec) if name not in uploads]
        if missing:
            raise UsageError(f"the spec names {missing[0]!r}, which was not uploaded: send every input image in "
                             "`files` (the server opens no path a client names)")
        return spec.replace(preset=self.preset) if spec.preset is None and self.preset else spec

    def submit_upscale(self, settings, name: str, data: bytes) -> Job:
        """Queue an upscale of one uploaded image (``name`` as the client calls it) with ``settings``
        (an ``UpscaleSettings`` naming its upscaler, never a path)."""
        from genimg.serve.safety import is_path

        if settings.model and is_path(settings.model):
            raise UsageError(f"model {settings.model!r} is a filesystem path; name the upscaler by alias or a name "
                             "in the server's upscaler folders (the server opens no path a client names)")
        if settings.restore_faces and is_path(settings.restore_faces):
            raise UsageError(f"restore_faces {settings.restore_faces!r} is a filesystem path; name the face restorer "
                             "(GFPGAN, CodeFormer, RestoreFormer or a name in the server's face_restorer_dirs)")
        if settings.preset is None and self.preset:
            settings = replace(settings, preset=self.preset)
        settings = replace(settings, allow_pickle=False)
        settings.check()
        return self._queue(settings, {name: data})

    def _queue(self, spec, uploads: dict[str, bytes], fallback: bool = False, plot: tuple = ()) -> Job:
        if not self.accepting:
            raise QueueFull("the server is stopping")
        if self.waiting >= self.max_queue:
            raise QueueFull(f"{self.waiting} jobs are waiting; try again in a while")
        with self._lock:
            job_id = f"{next(self._ids)}-{secrets.token_hex(4)}"
        folder = self.output / job_id
        copies = saved_uploads(uploads, folder / "inputs")
        planned = None
        if isinstance(spec, GenerationSpec):  # its input images become the server's copies
            spec = renamed(spec, copies)
            try:  # every check planning makes, now: a bad request is answered when it arrives
                from genimg.generation import plan

                planned = replace(plan(spec, output=folder / "images"), inputs=None)  # read again when it runs
            except GenimgError:
                shutil.rmtree(folder, ignore_errors=True)
                raise
        job = Job(job_id, spec, folder, {v: k for k, v in copies.items()}, fallback=fallback, plan=planned, plot=plot)
        self.jobs[job_id] = job
        self.last_work = time.monotonic()
        self.queue.put(job)
        return job

    def cancel(self, job_id: str) -> Job:
        job = self.jobs[job_id]
        with self._lock:  # a worker may be taking this job off the queue this moment
            job.cancel.set()
            if job.status == "queued":
                self._finish(job, "cancelled")
        return job

    def interrupt(self, job_id: str) -> Job:
        """A1111's interrupt: a running job skips its remaining steps, decodes what it has and makes nothing
        more (it ends done, with that image); a queued one is cancelled."""
        job = self.jobs[job_id]
        with self._lock:
            job.interrupt.set()
            if job.status == "queued":
                job.cancel.set()
                self._finish(job, "cancelled")
        return job

    def begin_stop(self) -> None:
        """Take no more jobs, cancel the waiting ones and stop the running ones at their next step; returns at
        once (the server's first Ctrl-C: clients waiting on their jobs are answered while it winds down)."""
        self.accepting = False
        for job in list(self.jobs.values()):
            if not job.finished.is_set():
                self.cancel(job.id)

    def stop(self, wait: float = 30.0) -> dict:
        """:meth:`begin_stop`, then wait up to ``wait`` seconds for the running jobs to reach their next step
        and the workers to end; returns how many jobs ended in each state."""
        self.begin_stop()
        for job in self.running:
            job.finished.wait(wait)
        for _ in self.lanes:
            self.queue.put(None)
        # The workers must be out of torch before the interpreter exits: a thread still in a native
        # step when the process tears down aborts it ("terminate called without an active exception").
        for thread in self.threads:
            thread.join(wait)
        return dict(self.counts)

    @property
    def stuck(self) -> bool:
        """Whether a worker is still busy after ``stop`` (a step that outlasted its wait)."""
        return any(thread.is_alive() for thread in self.threads)

    def _finish(self, job: Job, status: str, error: str | None = None, code: int = 0) -> None:
        with self._lock:  # a worker thread finishes a job while a request may cancel it
            if job.finished.is_set():
                return
            job.status, job.error, job.error_code = status, error, code
            self.counts[status] += 1
            self.last_work = time.monotonic()
            job.emit({"event": status, **({"error": error} if error else {})}, end=True)
        self._forget_old()

    def _forget_old(self) -> None:
        """Only the ``history`` latest finished jobs are kept: older ones leave the job table and their folder
        (uploads and images) is deleted, so a long-running server's memory and disk stay bounded."""
        with self._lock:
            done = [job for job in self.jobs.values() if job.finished.is_set()]
            for job in done[:max(0, len(done) - self.history)]:
                del self.jobs[job.id]
                shutil.rmtree(job.folder, ignore_errors=True)

    def _loop(self, lane: Lane) -> None:
        while True:
            job = self.queue.get()
            if job is None:
                return
            with self._lock:
                if job.finished.is_set():  # cancelled while it waited
                    continue
                lane.job, job.status = job, "running"
            job.emit({"event": "running", **({"device": lane.device} if lane.device else {})})
            try:
                self._run(job, lane)
                self._finish(job, "done")
            except Cancelled:
                self._finish(job, "cancelled")
            except GenimgError as e:
                self._finish(job, "failed", str(e), e.exit_code)
            except Exception as e:  # noqa: BLE001 - a job fails alone; the server keeps serving
                self._finish(job, "failed", f"{type(e).__name__}: {e}", 1)
            finally:
                lane.job = None
                shutil.rmtree(job.folder / "inputs", ignore_errors=True)

    def _run(self, job: Job, lane: Lane) -> None:
        from genimg.api import Executor
        from genimg.generation import with_inputs
        from genimg.upscale.run import UpscaleSettings

        began = {}

        def progress(event, **info):
            if job.cancel.is_set():
                raise Cancelled("cancelled")
            if job.interrupt.is_set() and event in ("step", "tile"):
                if event == "tile":  # an upscale has no image half-made: it stops
                    raise Cancelled("interrupted")
                raise FinishEarly
            if event in ("step", "tile", "image", "load", "loaded", "warning", "download"):
                extra = {}
                if event in ("step", "tile") and info.get("total"):
                    extra["eta"] = _eta(began, event, info)
                job.emit({"event": event, **{k: v for k, v in info.items() if _plain(v)}, **extra})

        if isinstance(job.spec, UpscaleSettings):
            self._upscale(job, lane, progress)
            return
        def on_lane(the_plan):  # the lane's device, without changing the spec the image records
            return replace(the_plan, preset=the_plan.preset.with_overrides(device=lane.device)) if lane.device else the_plan

        executor = Executor(None, None, progress, job.fallback, served=True, factory_of=lane.models.factory_for,
                            place=on_lane,
                            recorded=lambda image: replace(image, spec=client_spec(image.spec, job.client_paths)))
        if job.plot:  # every combination, grouped by model, then a grid per Z value
            from genimg.xyz import make_plot, parse_axis

            made = make_plot(job.spec, [parse_axis(text) for text in job.plot], job.folder / "images", executor)
        else:
            made = ((w.path, w.summary) for w in executor.run(with_inputs(job.plan)))  # its inputs read again now
        for path, summary in made:
            job.results.append((path, summary))
            job.emit({"event": "image_ready", "index": len(job.results) - 1})
            if job.interrupt.is_set():
                return

    def _upscale(self, job: Job, lane: Lane, progress) -> None:
        from genimg.upscale.run import upscale_files

        [(copy, name)] = job.client_paths.items()
        for done in upscale_files([Path(copy)], job.spec, job.folder / "images", progress=progress,
                                  loader=lane.models.upscaler_for):
            job.results.append((done.path, {"source": name, "size": list(done.size), "upscaler": done.upscaler,
                                            "seconds": round(done.seconds, 4)}))
            job.emit({"event": "image_ready", "index": len(job.results) - 1})


def _eta(began: dict, event: str, info: dict) -> float:
    """Seconds left of this pass of steps (or tiles), from the pace of the ones done so far."""
    done, total = info.get("step", info.get("done", 0)), info["total"]
    now = time.monotonic()
    if done <= 1 or event not in began:
        began[event] = (now, done)
        return 0.0
    start, first = began[event]
    pace = (now - start) / max(1, done - first)
    return round(pace * (total - done), 2)


def _plain(value) -> bool:
    return isinstance(value, (str, int, float, bool)) or value is None
