"""Plan a :class:`GenerationSpec`, prepare the plan, then run it: the one path every way in takes.

``plan`` (see :mod:`genimg.planning`) does everything that needs no weights and fetches nothing, and returns
a frozen :class:`Plan`; ``prepare`` fetches what an alias names on the hub and makes the control maps;
``run`` (which prepares a plan that was not) yields the images batch by batch as they finish.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

from genimg.adapters import apply_loras
from genimg.denoising import OutOfMemory, Progress, apply_image_prompts, denoise, let_go, smaller_preset
from genimg.errors import is_out_of_memory
from genimg.hires import hires_fix
from genimg.planning import Plan, PlannedImage, checked_preset, for_images, masked_edit, plan, prepare, with_inputs
from genimg.schedulers import build
from genimg.spec import GenerationSpec

__all__ = ["GeneratedImage", "OutOfMemory", "Plan", "PlannedImage", "Progress", "for_images", "generate",
           "masked_edit", "plan", "prepare", "run", "with_inputs"]


@dataclass(frozen=True)
class GeneratedImage:
    image: object  # PIL.Image.Image
    spec: GenerationSpec  # this one image: its own seed and prompt, count 1
    plan: Plan
    index: int
    seconds: float
    steps: int  # denoising steps the pipeline ran (img2img and inpaint skip part of the schedule)
    lora_layers: tuple = ()  # LoraLayers of the plan's LoRAs: how much of each matched the model

    @property
    def seed(self) -> int:
        return self.spec.seed

    @property
    def path(self) -> Path | None:
        return self.plan.images[self.index].path

    def summary(self) -> dict:
        """What `--json` prints of the image (besides its path), and what a server sends back."""
        out = {"seed": self.seed, "seconds": round(self.seconds, 4), "model": self.plan.ref.name,
               "steps_run": self.steps, "settings": self.spec.to_dict()}
        if self.lora_layers:
            out["lora_layers"] = [layers.to_dict() for layers in self.lora_layers]
        return out


def run(plan: Plan, factory=None, progress: Progress | None = None,
        fallback: bool = False) -> Iterator[GeneratedImage]:
    """Generate the plan's images, yielding each batch's images as soon as they are decoded. With
    ``fallback``, running out of GPU memory retries once on the next smaller preset."""
    from genimg.factory import PipelineFactory

    factory = factory or PipelineFactory()
    plan = prepare(plan)
    for message in plan.warnings:
        if progress:
            progress("warning", message=message)
    pipe = loaded = None
    lora_layers, size, start = (), plan.spec.batch_size, 0
    while start < len(plan.images):
        batch = plan.images[start:start + size]
        began = time.perf_counter()
        retry = None
        try:
            if pipe is None:
                pipe, loaded, lora_layers = _pipeline(plan, factory, progress)
                refiner = _refiner(plan, factory, progress)
            images, steps, early = denoise(pipe, loaded, plan, batch, progress, refiner)  # early: as far as they got
            if plan.spec.hires and not early:
                images, more = hires_fix(plan, factory, batch, images, progress)
                steps += more
            if plan.face_restorer and not early:
                restorer = factory.upscaler(plan.face_restorer, plan.preset, progress)
                images = [restorer.restore(image, plan.spec.face_strength, plan.spec.face_fidelity) for image in images]
        except OutOfMemory as e:
            if not fallback or e.smaller is None:
                raise
            retry = (e.what, e.smaller)
        if retry:
            # Out of the handler: the exception and the frames it held are gone. Now the pipeline and the
            # model are let go too, before the smaller preset loads (else both would be in memory at once).
            fallback, pipe, loaded, refiner = False, None, None, None
            factory.release()
            if progress:
                progress("warning", message=f"{retry[0]}; retrying once with --preset {retry[1]}")
            plan = _on_preset(plan, retry[1])
            continue
        seconds = (time.perf_counter() - began) / len(batch)
        for planned, image in zip(batch, images):
            spec = plan.spec.replace(seed=planned.seed, variation_seed=planned.variation_seed, count=1, batch_size=1,
                                     prompt=planned.prompt,
                                     negative=planned.negative)
            if progress:
                progress("image", done=planned.index + 1, total=len(plan.images))
            yield GeneratedImage(image, spec, plan, planned.index, seconds, steps, lora_layers)
        if early:
            return
        start += size


def _refiner(plan: Plan, factory, progress):
    """The plan's refiner pipeline with the plan's sampler (None: no refiner)."""
    if plan.refiner is None:
        return None
    try:
        pipe, loaded = factory.refiner(plan.refiner, plan.preset, progress)
    except RuntimeError as e:
        if not is_out_of_memory(e):
            raise
        let_go(e)
        raise OutOfMemory(f"out of GPU memory loading the refiner {plan.refiner.name}", smaller_preset(plan.preset)) from None
    pipe.scheduler = build(plan.scheduler, loaded.scheduler_config)
    return pipe


def _pipeline(plan: Plan, factory, progress) -> tuple:
    """The plan's pipeline with its sampler and LoRAs, and how many of each LoRA's layers matched.
    Running out of memory anywhere in that (the model, a LoRA, an adapter) is :class:`OutOfMemory`."""
    try:
        pipe, loaded = factory.get(plan.ref, plan.preset, plan.choice, progress)
        pipe.scheduler = build(plan.scheduler, loaded.scheduler_config)
        lora_layers = apply_loras(pipe, loaded, plan.loras, lambda m: progress and progress("warning", message=m),
                                  fuse=plan.spec.fuse_lora)
        if plan.embeddings or loaded.embedding_paths:
            from genimg.embeddings import apply_embeddings

            apply_embeddings(pipe, loaded, plan.embeddings)
        apply_image_prompts(pipe, loaded, plan)
    except RuntimeError as e:  # torch's OutOfMemoryError is one, and so is MPS's
        if not is_out_of_memory(e):
            raise
        let_go(e)
    else:
        return pipe, loaded, lora_layers
    raise OutOfMemory(f"out of GPU memory loading {plan.ref.name} with preset {plan.preset.name}",
                      smaller_preset(plan.preset))


def _on_preset(plan: Plan, name: str) -> Plan:
    """``plan`` run as preset ``name`` (the user's preset flags still applied), checked as planning checks
    a preset: the size it handles, the compiler it needs."""
    spec = plan.spec.replace(preset=name)
    warnings: list[str] = []
    preset = checked_preset(spec, plan.ref, warnings.append)
    return replace(plan, spec=spec, preset=preset, warnings=(*plan.warnings, *warnings))


def generate(spec: GenerationSpec, factory=None, progress: Progress | None = None) -> list[GeneratedImage]:
    """Python API twin of ``genimg txt2img``: the images of ``spec``, in memory."""
    return list(run(plan(spec), factory, progress))
