"""Run batch jobs: checked first, sharded, grouped by model so each loads once, rows that differ
only in seed run together in batches, images streamed to disk and recorded in the manifest."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from genimg.batch import manifest
from genimg.batch.jobs import BatchJob
from genimg.errors import DiskFull, GenimgError
from genimg.interrupts import StopFlag

Progress = Callable[..., None]


@dataclass
class Unit:
    """Images that run as one pipeline call: the same settings but for the prompt, the seeds of one
    or more jobs. A pipeline takes a list of prompts, so rows that differ only in their words still
    share a forward pass."""

    key: tuple
    items: list[tuple[BatchJob, int, int]]  # (job, image index within the job, seed)


@dataclass
class BatchResult:
    done: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (where, message)
    interrupted: bool = False
    seconds: float = 0.0
    sheets: list = field(default_factory=list)  # (path, row template, images) per contact sheet


def shard_of(jobs: list[BatchJob], index: int, count: int) -> list[BatchJob]:
    """Every count-th job from ``index``: shards cover all jobs once, whatever the grouping."""
    return jobs[index::count]


def shard_from_env() -> tuple[int, int]:
    """(rank, world size) under ``accelerate launch``/torchrun, else (0, 1)."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def _group_key(spec) -> tuple:
    return (spec.model or "", spec.model_config or "", spec.preset, tuple(sorted(spec.preset_overrides.items())))


def _settings_key(spec) -> str:
    """Everything that makes an image but its seed: a manifest line counts only while this matches."""
    import json

    return json.dumps(spec.replace(seed=None, count=1).to_dict(), sort_keys=True, default=str)


def _batch_key(spec) -> str:
    """What images must share to run in one pipeline call: everything but the seed and the words
    (inline ``<lora:…>`` tags are not words: they load weights)."""
    from genimg.prompting.inline import split_tags

    tags = " ".join(f"<lora:{n}:{w}>" for n, w in split_tags(spec.prompt)[1])
    return _settings_key(spec.replace(prompt=tags or "-", negative=""))


def plan_units(jobs: list[BatchJob], done: dict, batch_size: int) -> tuple[list[Unit], int]:
    """Units to run (grouped by model, then by settings) and how many images are already done."""
    buckets: dict[tuple, list] = {}
    order: list[tuple] = []
    skipped = 0
    for job in jobs:
        key = (_group_key(job.spec), _batch_key(job.spec))
        settings = _settings_key(job.spec)
        for index, seed in enumerate(job.seeds()):
            record = done.get((job.id, index))
            if record and record.get("seed") == seed and record.get("settings_key") == settings:
                skipped += 1
                continue
            if key not in buckets:
                buckets[key] = []
                order.append(key)
            buckets[key].append((job, index, seed))
    order.sort(key=lambda k: k[0])  # stable: rows keep their order within a model
    units = []
    for key in order:
        items = buckets[key]
        size = max(1, batch_size)
        units += [Unit(key, items[i:i + size]) for i in range(0, len(items), size)]
    return units, skipped


def check(jobs: list[BatchJob]) -> tuple[dict, list[tuple[BatchJob, str]]]:
    """Each job planned, once (no weights fetched, no preprocessor run): the plans by job id, and the
    jobs that cannot run with why. An input image is read for the check and let go (a long img2img batch
    would otherwise hold every input in memory): the run reads it again."""
    from dataclasses import replace

    from genimg.generation import plan

    plans, problems = {}, []
    for job in jobs:
        try:
            plans[job.id] = replace(plan(job.spec.replace(count=1)), inputs=None)
        except GenimgError as e:
            problems.append((job, str(e)))
    return plans, problems


def run_batch(units: list[Unit], plans: dict, folder: Path, fail_fast: bool, progress: Progress | None,
              result: BatchResult, stop: StopFlag | None = None, first_record: dict | None = None,
              executor=None) -> BatchResult:
    """Run ``units`` from their jobs' ``plans`` (by job id) through ``executor``, writing each image and its
    manifest line as it finishes. ``first_record`` goes into the manifest just before the first image, so a
    run that makes nothing leaves no folder. On a server (units of one image) each image is made there from
    its job's spec as the row wrote it, and written here under the same name, with the same manifest line."""
    from genimg.api import Executor
    from genimg.generation import PlannedImage, for_images, with_inputs
    from genimg.output.naming import sanitize

    # A file of this name without its manifest line is this job's own image from a run cut off between the
    # write and the record: the same job, seed and settings, so replacing it loses nothing.
    executor = executor or Executor(progress=progress, overwrite=True)
    began = time.perf_counter()
    for unit in units:
        if stop is not None and stop.stop:
            result.interrupted = True
            break
        first_job = unit.items[0][0]
        try:
            images = [PlannedImage(n, seed, job.spec.prompt, job.spec.negative,
                                   folder / f"{job.id}-{index}-{sanitize(job.spec.prompt, 48)}-{seed}.png",
                                   variation_seed=job.variation_seed(index))
                      for n, (job, index, seed) in enumerate(unit.items)]
            planned = plans[first_job.id] if executor.remote else with_inputs(plans[first_job.id])
            the_plan = for_images(planned, images)
            the_plan = replace(the_plan, spec=the_plan.spec.replace(batch_size=len(images)))
            wire = [job.spec.replace(seed=seed, variation_seed=job.variation_seed(index), count=1, batch_size=1)
                    for job, index, seed in unit.items]
            made = ((w.path, w.image or w.summary) for w in executor.run(the_plan, wire_specs=wire))
            for (path, image), (batch_job, index, seed) in zip(made, unit.items):
                summary = image if isinstance(image, dict) else image.summary()
                if first_record is not None:  # after the first image is safely written, not before
                    manifest.append(folder, first_record)
                    first_record = None
                manifest.append(folder, {"job": batch_job.id, "index": index, "seed": seed, "path": path.name,
                                         "seconds": summary["seconds"], "prompt": batch_job.spec.prompt,
                                         "template": batch_job.template, "row": batch_job.row.line,
                                         "settings_key": _settings_key(batch_job.spec),
                                         "settings": summary["settings"]})
                result.done += 1
                if progress:
                    progress("batch_image", path=path, image=image, job=batch_job.id)
        except DiskFull:
            raise  # every image after this one would fail the same way
        except GenimgError as e:
            for batch_job in {item[0].id: item[0] for item in unit.items}.values():
                result.failed.append((f"row {batch_job.row.line} ({batch_job.id})", str(e)))
            if progress:
                progress("warning", message=f"row {first_job.row.line}: {e}")
            if fail_fast:
                break
    result.seconds = time.perf_counter() - began
    return result


def contact_sheets(folder: Path, largest: int = 256) -> list[tuple[Path, str, int]]:
    """One grid per row template (a row's prompt before wildcards: its repeats and combinations
    together) of every image in the manifest: ``(path, template, images)`` each. A cell is the size of
    the group's largest image, at most ``largest`` pixels a side."""
    import math

    from PIL import Image

    from genimg.output.naming import sanitize
    from genimg.output.sink import ImageSink

    groups: dict[str, list[Path]] = {}
    for record in manifest.read_done(folder).values():
        groups.setdefault(record.get("template") or record["prompt"], []).append(folder / record["path"])
    sheets = []
    for template, paths in groups.items():
        paths.sort()
        sides = []
        for path in paths:
            with Image.open(path) as im:
                sides.append(max(im.size))
        size = min(largest, max(sides))
        cols = math.ceil(math.sqrt(len(paths)))
        rows = math.ceil(len(paths) / cols)
        sheet = Image.new("RGB", (cols * size, rows * size), "white")
        for i, path in enumerate(paths):
            with Image.open(path) as im:
                im.thumbnail((size, size))
                sheet.paste(im.convert("RGB"), ((i % cols) * size, (i // cols) * size))
        target = folder / f"grid-{sanitize(template, 48)}.png"
        ImageSink(overwrite=True).picture(sheet, target)
        sheets.append((target, template, len(paths)))
    return sheets
