"""The one way work runs: an :class:`Executor` runs generations in this process or on a genimg server —
chosen once, by :func:`executor` (``--server``, ``--local``, the config's ``server``, the runtime file of a
server this machine runs) — and writes every image through one :class:`~genimg.output.sink.ImageSink`.
Every command, batch, the server's workers and Python callers go through it, so fallback, naming,
metadata, progress events and what ``--json`` prints are the same whichever runs the work.

Every output path is planned and checked before any work, remote runs included: the server is asked to
plan the spec first (nothing loads), the paths are made from its answer and checked here, and only then is
the job sent, with its seed fixed so the names made here are the names of the images it makes.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from genimg.generation import GeneratedImage, Plan, Progress, plan, run
from genimg.output.metadata import names_only
from genimg.output.sink import ImageSink
from genimg.spec import GenerationSpec


@dataclass(frozen=True)
class Written:
    """One image written: where, what ``--json`` prints of it (and a server sends back), and the image
    itself when it was made in this process."""

    path: Path
    summary: dict
    image: GeneratedImage | None = None


class Executor:
    """Runs generations on ``server`` (a :class:`~genimg.serve.runtime.ServerAddress`), or in this process
    with ``factory`` (or the one ``factory_of`` gives each plan) when there is none. ``fallback``: out of GPU memory, a run retries once on the next
    smaller preset — here, or asked of the server. ``recorded``: each image as its metadata records it (a
    server names the client's input files, not its own copies of them)."""

    def __init__(self, server=None, factory=None, progress: Progress | None = None, fallback: bool = False,
                 overwrite: bool = False, recorded=None, served: bool = False, factory_of=None, place=None):
        self.server, self.factory, self.progress, self.fallback = server, factory, progress, fallback
        self.factory_of = factory_of  # a plan -> its factory, when runs pick among several (a server's warm models)
        self.place = place  # a plan -> the plan as it runs here (a server lane's device; the images record the spec)
        self.recorded = recorded or (lambda image: image)
        self.sink = ImageSink(overwrite, served)

    @property
    def remote(self) -> bool:
        return self.server is not None

    def generate(self, spec: GenerationSpec, output=None, save_controls: bool = False) -> Iterator[Written]:
        """Plan ``spec`` with ``output`` (default ``./outputs/``; every path checked before anything runs),
        run it, and write each image as soon as its batch is done; ``save_controls``: the control maps
        too, beside the first image (``NAME-control0-canny.png``)."""
        from genimg.output.naming import default_output

        output = output if output is not None else default_output()
        if self.remote:
            yield from self._generate_remote(spec, output)
            return
        yield from self.run(plan(spec, output, self.sink.overwrite), save_controls)

    def run(self, the_plan: Plan, save_controls: bool = False, wire_specs=None) -> Iterator[Written]:
        """A plan whose images have their paths, made and written there. On a server each image is sent as
        its own spec: ``wire_specs`` (one per image: the settings as the caller wrote them, which the
        server resolves with its own defaults), else the plan's."""
        if self.remote:
            specs = wire_specs or [the_plan.spec.replace(seed=im.seed, variation_seed=im.variation_seed, count=1,
                                                         batch_size=1, prompt=im.prompt,
                                                         negative=im.negative) for im in the_plan.images]
            for planned, spec in zip(the_plan.images, specs):
                for data, summary in self._remote_images(spec):
                    yield Written(self.sink.received(data, planned.path), summary)
            return
        if self.place is not None:
            the_plan = self.place(the_plan)
        if self.factory_of is not None:
            self.factory = self.factory_of(the_plan)
        elif self.factory is None:  # the process's factory: a model stays loaded for the next run, as a server keeps it
            self.factory = process_factory()
        for image in run(the_plan, self.factory, self.progress, self.fallback):
            image = self.recorded(image)
            path = self.sink.generated(image)
            if save_controls and image.index == 0:
                for n, control in enumerate(image.plan.controls):  # the run's plan: its maps made
                    self.sink.picture(control.image, path.with_name(f"{path.stem}-control{n}-{control.spec.type}.png"))
            summary = image.summary()
            yield Written(path, names_only(summary) if self.sink.served else summary, image)

    def _generate_remote(self, spec: GenerationSpec, output) -> Iterator[Written]:
        from genimg.files import check_writable
        from genimg.output.naming import output_paths
        from genimg.serve.client import remote_plan

        if spec.seed is None:  # fixed here, so the names made here are those of the images the server makes
            spec = spec.replace(seed=secrets.randbelow(2**32))
        planned = remote_plan(self.server, spec)
        first = GenerationSpec.from_dict(planned["settings"])
        variations = planned.get("variation_seeds") or [None] * len(planned["seeds"])
        paths = output_paths(output, [first.replace(seed=seed, variation_seed=variation)
                                      for seed, variation in zip(planned["seeds"], variations)], planned["model"])
        check_writable(paths, self.sink.overwrite)
        for index, (data, summary) in enumerate(self._remote_images(spec)):
            yield Written(self.sink.received(data, paths[index]), summary)

    def _remote_images(self, spec: GenerationSpec):
        from genimg.serve.client import remote_images

        return remote_images(self.server, spec, self.progress, self.fallback)


_PROCESS: list = []  # the one PipelineFactory of in-process runs that bring none


def process_factory():
    """The factory in-process runs share when given none: in a notebook or a Python program, the second
    ``genimg.txt2img`` on the same model does not load it again (as a server keeps it warm). It holds at most
    one model; :func:`release` lets it go."""
    if not _PROCESS:
        from genimg.factory import PipelineFactory

        _PROCESS.append(PipelineFactory())
    return _PROCESS[0]


def release() -> None:
    """Let go of the model in-process runs keep loaded, and give its memory back."""
    if _PROCESS:
        _PROCESS[0].release()


def executor(server: str | None = None, local: bool = False, paths=(), factory=None,
             progress: Progress | None = None, fallback: bool = False, overwrite: bool = False) -> Executor:
    """The executor for work naming ``paths`` (files on this machine, (what, value) pairs): on ``server``
    (a URL), else the configured or running one, else in this process — also when the work names files
    here, since a server opens no path a client names (asked for by URL, that is an error)."""
    from genimg.serve.client import server_for

    return Executor(server_for(server, local, paths, progress), factory, progress, fallback, overwrite)


def generate_files(spec: GenerationSpec, output=None, overwrite: bool = False, factory=None,
                   progress: Progress | None = None, fallback: bool = False,
                   save_controls: bool = False) -> Iterator[tuple[Path, GeneratedImage]]:
    """Python API twin of the generating commands, in this process: plan ``spec`` with ``output`` (default
    ``./outputs/``), run it, and write each image with its metadata; yields (path, image) as each is written."""
    for written in Executor(None, factory, progress, fallback, overwrite).generate(spec, output, save_controls):
        yield written.path, written.image
