"""Generation to files: what every generating command does, as one Python call.

Checks all output paths before loading anything, so a name clash or an unwritable folder fails in
a second with no file written, then saves each image as soon as its batch is done.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from genimg.generation import GeneratedImage, Progress, Job, prepare, run
from genimg.output.naming import output_paths
from genimg.output.write import check_writable, save_png
from genimg.spec import GenerationSpec


def plan_files(spec: GenerationSpec, output=None, overwrite: bool = False) -> tuple[Job, list[Path]]:
    job = prepare(spec)
    specs = [job.spec.replace(seed=s) for s in job.seeds]
    paths = output_paths(output, specs, job.ref.name)
    check_writable(paths, overwrite)
    return job, paths


def generate_files(spec: GenerationSpec, output=None, overwrite: bool = False, factory=None,
                   progress: Progress | None = None) -> Iterator[tuple[Path, GeneratedImage]]:
    job, paths = plan_files(spec, output, overwrite)
    for image in run(job, factory, progress):
        yield save_png(image, paths[image.index], overwrite), image
