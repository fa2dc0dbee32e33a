"""Generation to files: what every generating command does, as one Python call.

Plans first — every output path is checked before anything is loaded, so a name clash or an
unwritable folder fails in a second with no file written — then saves each image as soon as its
batch is done.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from genimg.generation import GeneratedImage, Progress, plan, run
from genimg.files import atomic_save
from genimg.output.write import save_png
from genimg.spec import GenerationSpec


def generate_files(spec: GenerationSpec, output=None, overwrite: bool = False, factory=None,
                   progress: Progress | None = None, fallback: bool = False,
                   save_controls: bool = False) -> Iterator[tuple[Path, GeneratedImage]]:
    """Plan ``spec`` with ``output`` (default ``./outputs/``), run it, and write each image with its metadata;
    ``fallback``: out of GPU memory, retry once on the next smaller preset; ``save_controls``: the control
    maps too, beside the first image (``NAME-control0-canny.png``)."""
    from genimg.output.naming import default_output

    the_plan = plan(spec, output if output is not None else default_output(), overwrite)
    for image in run(the_plan, factory, progress, fallback):
        path = save_png(image, image.path, overwrite)
        if save_controls and image.index == 0:
            for n, control in enumerate(image.plan.controls):  # the run's plan: its maps made
                target = path.with_name(f"{path.stem}-control{n}-{control.spec.type}.png")
                atomic_save(target, lambda tmp, im=control.image: im.save(tmp, format="PNG"), overwrite)
        yield path, image
