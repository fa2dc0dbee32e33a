"""Run a :class:`GenerationSpec`: resolve it against the model and preset, then denoise.

``prepare`` does every check that needs no weights (so bad input fails before a slow load) and
fixes the seeds; ``run`` yields images batch by batch as they finish. Image *i* of a run uses seed
``seed + i`` with its own CPU generator, so any image can be reproduced alone.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

from genimg.errors import RunFailure, UsageError
from genimg.models import ModelRef, get_family, resolve_model
from genimg.presets import Preset, get_preset, load_presets
from genimg.schedulers import SchedulerSpec, lookup
from genimg.spec import GenerationSpec

Progress = Callable[..., None]


@dataclass
class Job:
    """A spec with every default filled in from the model family and the preset."""

    spec: GenerationSpec
    ref: ModelRef
    preset: Preset
    scheduler: SchedulerSpec
    seeds: list[int]
    warnings: list[str] = field(default_factory=list)


@dataclass
class GeneratedImage:
    image: object  # PIL.Image.Image
    spec: GenerationSpec  # this one image: its own seed, count 1
    job: Job
    index: int
    seconds: float

    @property
    def seed(self) -> int:
        return self.spec.seed


def prepare(spec: GenerationSpec) -> Job:
    ref = resolve_model(spec.model, config=spec.model_config, allow_pickle=spec.allow_pickle)
    family = get_family(ref.family)
    spec.validate(family.factor)
    d = ref.defaults
    seed = spec.seed if spec.seed is not None else secrets.randbelow(2**32)
    resolved = spec.replace(
        model=spec.model or ref.ref,
        width=spec.width or d["width"],
        height=spec.height or d["height"],
        steps=spec.steps or d["steps"],
        guidance=d["guidance"] if spec.guidance is None else spec.guidance,
        scheduler=spec.scheduler or d["scheduler"],
        max_sequence_length=spec.max_sequence_length or d.get("max_sequence_length"),
        seed=seed,
    )
    resolved.validate(family.factor)
    scheduler = lookup(resolved.scheduler, ref.family)
    resolved.scheduler = scheduler.name
    preset = _preset_for(spec, ref.family)
    warnings = []
    if resolved.negative and not family.negative_prompt:
        warnings.append(f"{family.label} has no negative prompt; --negative is ignored")
    seeds = [seed + i for i in range(spec.count)]
    return Job(resolved, ref, preset, scheduler, seeds, warnings)


def _preset_for(spec: GenerationSpec, family: str) -> Preset:
    from genimg.device import detect

    preset = get_preset(spec.preset).for_family(family).with_overrides(**spec.preset_overrides)
    if preset.device != "cpu":
        available = detect(None).kind
        if preset.device.split(":")[0] != available:
            raise UsageError(f"preset {preset.name} runs on {preset.device}, but this machine has "
                             f"{'no GPU' if available == 'cpu' else available}; use --preset auto or --device {available}")
    elif preset.offload != "none" or preset.quantize != "none":
        raise UsageError("offload and quantization need a GPU; with --device cpu use --offload none --quantize none")
    if preset.device == "cpu" and preset.dtype == "fp16":
        raise UsageError("fp16 is not supported on the CPU; use --dtype fp32 or bf16")
    return preset


def run(job: Job, factory=None, progress: Progress | None = None) -> Iterator[GeneratedImage]:
    """Generate the job's images, yielding each batch's images as soon as they are decoded."""
    from genimg.factory import PipelineFactory

    factory = factory or PipelineFactory()
    for message in job.warnings:
        if progress:
            progress("warning", message=message)
    pipe, loaded = factory.get(job.ref, job.preset, job.spec.task, progress)
    from genimg.schedulers import build

    pipe.scheduler = build(job.scheduler, loaded.scheduler_config)
    size = job.spec.batch_size
    for start in range(0, len(job.seeds), size):
        seeds = job.seeds[start:start + size]
        began = time.perf_counter()
        images = _denoise(pipe, job, seeds, progress)
        seconds = (time.perf_counter() - began) / len(seeds)
        for offset, (seed, image) in enumerate(zip(seeds, images)):
            spec = job.spec.replace(seed=seed, count=1, batch_size=1)
            if progress:
                progress("image", done=start + offset + 1, total=len(job.seeds))
            yield GeneratedImage(image, spec, job, start + offset, seconds)


def generate(spec: GenerationSpec, factory=None, progress: Progress | None = None) -> list[GeneratedImage]:
    """Python API twin of ``genimg txt2img``: the images of ``spec``, in memory."""
    return list(run(prepare(spec), factory, progress))


def _denoise(pipe, job: Job, seeds: list[int], progress: Progress | None) -> list:
    import numpy as np
    import torch
    from PIL import Image

    spec = job.spec

    def on_step(_pipe, step, _timestep, tensors):
        if progress:
            progress("step", step=step + 1, total=spec.steps)
        return tensors

    kwargs = dict(
        prompt=[spec.prompt] * len(seeds),
        width=spec.width,
        height=spec.height,
        num_inference_steps=spec.steps,
        guidance_scale=spec.guidance,
        generator=[torch.Generator("cpu").manual_seed(s) for s in seeds],
        output_type="np",
        callback_on_step_end=on_step,
    )
    if get_family(job.ref.family).negative_prompt:
        kwargs["negative_prompt"] = [spec.negative] * len(seeds)
    if spec.max_sequence_length:
        kwargs["max_sequence_length"] = spec.max_sequence_length
    try:
        with torch.inference_mode():
            arrays = pipe(**kwargs).images
    except torch.cuda.OutOfMemoryError:
        raise RunFailure(f"out of GPU memory at {spec.width}x{spec.height} with preset {job.preset.name}; "
                         f"try {_smaller_preset(job.preset)}, a smaller size or --batch-size 1") from None
    if not np.isfinite(arrays).all() or arrays.max() <= 0:
        raise RunFailure(f"the image came out black (NaN in the {job.preset.dtype} VAE decode); "
                         "pass --vae-fp32, or --dtype bf16 / fp32")
    return [Image.fromarray((a * 255).round().clip(0, 255).astype("uint8")) for a in arrays]


def _smaller_preset(preset: Preset) -> str:
    smaller = [p.name for p in load_presets().values() if p.device == "cuda" and p.vram_gb < preset.vram_gb]
    return f"--preset {smaller[-1]}" if smaller else "--offload sequential"
