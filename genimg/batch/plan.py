"""A batch file from start to end, as a library call (the twin of ``genimg batch``): the batch seed,
this process's shard, the jobs and the rows that failed to become one, the check of every job, the
units left to run after what the manifest says is done, then the run."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from genimg.batch import manifest
from genimg.batch.jobs import BatchJob, PlotRow, RowProblem, UpscaleRow, build_jobs
from genimg.batch.runner import (BatchResult, Unit, check, contact_sheets, plan_units, run_batch,
                                 shard_from_env, shard_of)
from genimg.errors import GenimgError, UsageError
from genimg.interrupts import StopFlag


@dataclass
class BatchPlan:
    file: Path
    folder: Path
    seed: int
    shard: tuple[int, int]
    jobs: list[BatchJob]
    problems: list[RowProblem] = field(default_factory=list)  # rows and jobs that cannot run, with where and why
    units: list[Unit] = field(default_factory=list)
    skipped: int = 0  # images the manifest says are already made
    upscales: list[UpscaleRow] = field(default_factory=list)  # task = upscale rows still to run
    rows: int = 0  # rows in the file (a row may stand for several jobs: wildcards, --repeat)
    plans: dict = field(default_factory=dict)  # job id -> its Plan (each job planned once, by check)
    plots: list[PlotRow] = field(default_factory=list)  # rows with xyz whose plot is still to make

    @property
    def images(self) -> int:
        return sum(job.spec.count for job in self.jobs)

    def check_summary(self) -> str:
        """What ``genimg batch --check`` reports: rows, the jobs and images they make, what cannot run."""
        ready = [job for job in self.jobs if job.id in self.plans]
        images = sum(job.spec.count for job in ready) + len(self.upscales) + sum(plot.cells for plot in self.plots)
        jobs = len(ready) + len(self.upscales) + len(self.plots)
        return (f"{_count(self.rows, 'row')}: {_count(jobs, 'job')} ready ({_count(images, 'image')}, {self.skipped} "
                f"of them made already), {len(self.problems)} with problems (listed above); rows that repeat "
                "another are jobs of their own")


def batch_folder(output=None) -> Path:
    """The folder a batch writes into: ``output``, else the default (``./outputs/``)."""
    from genimg.output.naming import default_output

    return Path(output) if output is not None else default_output()


def batch_shard(shard: tuple[int, int] | None = None) -> tuple[int, int]:
    """(index, count) of the share this process runs: ``shard``, else accelerate's RANK/WORLD_SIZE, else (0, 1)."""
    return shard or shard_from_env()


def plan_batch(file, output=None, settings: dict | None = None, seed: int | None = None,
               combinatorial: bool = False, repeat: int = 1, shard: tuple[int, int] | None = None,
               batch_size: int = 1) -> BatchPlan:
    """Read and check ``file``; ``settings`` are the defaults of every row (command-line flags)."""
    from genimg.batch.files import read_rows

    if repeat < 1:
        raise UsageError(f"--repeat must be at least 1 (got {repeat})")
    from genimg.files import check_folder


    file, folder = Path(file), batch_folder(output)
    check_folder(folder)
    index, count = batch_shard(shard)
    settings = dict(settings or {})
    if count > 1 and "LOCAL_RANK" in os.environ and "device" not in settings.get("preset_overrides", {}):
        from genimg.device import detect

        if detect(None).kind == "cuda":  # under accelerate/torchrun each process takes its own GPU
            settings["preset_overrides"] = {**settings.get("preset_overrides", {}),
                                            "device": f"cuda:{os.environ['LOCAL_RANK']}"}
    rows, file_defaults = read_rows(file)
    seed = seed if seed is not None else manifest.batch_seed(folder)
    if seed is None and count > 1:
        # Shards run apart and must draw the same seeds without talking: take them from the file's name.
        import hashlib

        seed = int.from_bytes(hashlib.sha256(file.name.encode()).digest()[:4], "big") >> 1
    if seed is None:
        seed = secrets.randbelow(2**31)
    upscales: list[UpscaleRow] = []
    plots: list[PlotRow] = []
    jobs, problems = build_jobs(rows, file_defaults, settings, file.resolve().parent, file.name, seed,
                                combinatorial, repeat, upscales=upscales, plots=plots)
    jobs = shard_of(jobs, index, count)
    upscales = shard_of(upscales, index, count)
    plots = shard_of(plots, index, count)
    for plot in list(plots):  # every cell planned now, as every other job is: a bad model fails before any work
        try:
            _check_plot(plot)
        except UsageError as e:
            problems.append(RowProblem(f"{file.name}:{plot.row.line}", str(e)))
            plots.remove(plot)
    made = [plot for plot in plots if _plot_made(plot, folder)]  # resumed: its grids are there
    pending, skipped = [], 0
    for row in upscales:
        try:
            _, [job] = _upscale_plan(row, folder)
        except UsageError as e:
            problems.append(RowProblem(f"{file.name}:{row.row.line}", str(e)))
            continue
        if job.skip:
            skipped += 1
        else:
            pending.append(row)
    plans, bad = check(jobs)
    problems += [RowProblem(f"{file.name}:{job.row.line}", message) for job, message in bad]
    runnable = [job for job in jobs if job.id in plans]
    units, done = plan_units(runnable, manifest.read_done(folder), batch_size)
    return BatchPlan(file, folder, seed, (index, count), jobs, problems, units,
                     skipped + done + sum(plot.cells for plot in made), pending, len(rows), plans,
                     [plot for plot in plots if plot not in made])


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _upscale_path(row: UpscaleRow, folder: Path) -> Path:
    label = f"{row.settings.scale:g}".replace(".", "_")
    return folder / f"{row.image.stem}-x{label}.png"


def _upscale_plan(row: UpscaleRow, folder: Path):
    """An upscale row's checked job; its output already there counts as done (resume)."""
    from dataclasses import replace

    from genimg.upscale.run import plan_upscale

    target = _upscale_path(row, folder)
    ref, _, [job] = plan_upscale([row.image], row.settings, target, overwrite=True)
    return ref, [replace(job, skip=target.exists())]


def run_plan(plan: BatchPlan, fail_fast: bool = False, grid: bool = False, progress=None,
             stop: StopFlag | None = None, executor=None) -> BatchResult:
    """Run what ``plan`` left to do, through ``executor`` (in this process, or on a server; default: here);
    with ``grid``, write a contact sheet per row template."""
    result = BatchResult(skipped=plan.skipped, failed=[(p.where, p.message) for p in plan.problems])
    if plan.problems and fail_fast:
        return result
    first = None if manifest.batch_seed(plan.folder) is not None else \
        {"batch_seed": plan.seed, "file": str(plan.file.resolve())}
    if plan.units:
        from genimg.files import check_room

        sizes = [plan.plans[job.id].spec for unit in plan.units for job, _, _ in unit.items]
        # A generated PNG is about half its raw RGB size; the estimate needs only to catch a disk that cannot
        # hold the batch at all, before hours of work.
        check_room(plan.folder, sum(s.width * s.height * 3 // 2 for s in sizes), f"the batch ({len(sizes)} images)")
    run_batch(plan.units, plan.plans, plan.folder, fail_fast, progress, result, stop, first_record=first, executor=executor)
    for row in plan.upscales:
        if (stop is not None and stop.stop) or (fail_fast and result.failed):
            result.interrupted = stop is not None and stop.stop
            break
        try:
            _run_upscale_row(row, plan.folder, progress)
            result.done += 1
        except GenimgError as e:
            result.failed.append((f"row {row.row.line} (upscale)", str(e)))
            if progress:
                progress("warning", message=f"row {row.row.line}: {e}")
    for row in plan.plots:
        if (stop is not None and stop.stop) or (fail_fast and result.failed):
            result.interrupted = stop is not None and stop.stop
            break
        try:
            result.done += _run_plot_row(row, plan.folder, executor, progress)
        except GenimgError as e:
            result.failed.append((f"row {row.row.line} (X/Y/Z plot)", str(e)))
            if progress:
                progress("warning", message=f"row {row.row.line}: {e}")
    if grid and (plan.folder / manifest.NAME).is_file():
        result.sheets = contact_sheets(plan.folder)
    return result


def _run_upscale_row(row: UpscaleRow, folder: Path, progress=None) -> None:
    from genimg.upscale.run import upscale_files

    def quiet_progress(event, **info):
        if progress and event in ("load", "loaded", "warning"):
            progress(event, **info)

    for done in upscale_files([row.image], row.settings, _upscale_path(row, folder), False, quiet_progress):
        if progress:
            progress("upscaled", path=done.path, source=done.source, size=done.size, seconds=done.seconds)


def _check_plot(plot: PlotRow) -> None:
    from genimg.generation import plan
    from genimg.xyz import cells, parse_axis

    for _, cell in cells(plot.spec, [parse_axis(text) for text in plot.axes]):
        plan(cell)


def _plot_made(plot: PlotRow, folder: Path) -> bool:
    """Whether a plot row's grids are all written (the last thing its plot writes)."""
    from genimg.xyz import parse_axis

    axes = [parse_axis(text) for text in plot.axes]
    zs = len(axes[2].values) if len(axes) > 2 else 1
    return all((folder / plot.name / f"xyz_grid-{z:02d}.png").is_file() for z in range(zs))


def _run_plot_row(plot: PlotRow, folder: Path, executor=None, progress=None) -> int:
    """Make a plot row's images and grids in its folder (what an interrupted run left there is made again);
    returns the images made."""
    from genimg.api import Executor
    from genimg.xyz import is_grid, make_plot, parse_axis

    runner = Executor(getattr(executor, "server", None), getattr(executor, "factory", None), progress, overwrite=True)
    made = 0
    for _, summary in make_plot(plot.spec, [parse_axis(text) for text in plot.axes], folder / plot.name, runner):
        made += not is_grid(summary)
    return made


def run_file(file, output=None, *, settings: dict | None = None, seed: int | None = None,
             combinatorial: bool = False, repeat: int = 1, shard: tuple[int, int] | None = None,
             batch_size: int = 1, fail_fast: bool = False, grid: bool = False, progress=None) -> BatchResult:
    """Plan and run a batch file: the Python twin of ``genimg batch FILE -o OUTPUT``."""
    from genimg.batch.lock import batch_lock

    with batch_lock(batch_folder(output), batch_shard(shard)):
        plan = plan_batch(file, output, settings, seed, combinatorial, repeat, shard, batch_size)
        with StopFlag() as stop:
            return run_plan(plan, fail_fast, grid, progress, stop)
