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

from genimg.adapters import apply_loras, parse_lora
from genimg.errors import RunFailure, UsageError
from genimg.models import ModelRef, get_family, resolve_model
from genimg.presets import Preset, get_preset, load_presets
from genimg.schedulers import SchedulerSpec, build, lookup
from genimg.spec import DEFAULT_STRENGTH, GenerationSpec
from genimg.tasks import TaskInputs, read_inputs

Progress = Callable[..., None]


@dataclass
class Job:
    """A spec with every default filled in from the model family and the preset, its inputs read."""

    spec: GenerationSpec
    ref: ModelRef
    preset: Preset
    scheduler: SchedulerSpec
    seeds: list[int]
    warnings: list[str] = field(default_factory=list)
    inputs: TaskInputs | None = None
    loras: tuple = ()
    controlnet: ModelRef | None = None
    # (prompt, negative) per seed when one call draws several prompts (batch); else the spec's.
    prompts: list[tuple[str, str]] | None = None

    @property
    def denoising_steps(self) -> int:
        """Steps actually run: img2img and inpaint skip the first (1 − strength) of the schedule."""
        if self.spec.task in ("txt2img", "controlnet"):
            return self.spec.steps
        return int(self.spec.steps * self.spec.strength)


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
    if ref.variant == "inpaint" and spec.task != "inpaint":
        raise UsageError(f"{ref.name} is an inpainting model; use it with `genimg inpaint` or `genimg outpaint`")
    d = ref.defaults
    seed = spec.seed if spec.seed is not None else secrets.randbelow(2**32)
    warnings = []
    inputs = read_inputs(spec, family.factor, seed, warnings.append) if spec.task != "txt2img" else None
    width, height = inputs.size if inputs else (spec.width or d["width"], spec.height or d["height"])
    resolved = spec.replace(
        model=spec.model or ref.ref,
        width=width,
        height=height,
        steps=spec.steps or d["steps"],
        guidance=d["guidance"] if spec.guidance is None else spec.guidance,
        scheduler=spec.scheduler or d["scheduler"],
        max_sequence_length=spec.max_sequence_length or d.get("max_sequence_length"),
        seed=seed,
        strength=spec.strength if spec.strength is not None else DEFAULT_STRENGTH.get(spec.task),
    )
    resolved.validate(family.factor)
    scheduler = lookup(resolved.scheduler, ref.family)
    resolved.scheduler = scheduler.name
    preset = _preset_for(spec, ref.family)
    megapixels = resolved.width * resolved.height / 1e6
    if preset.max_megapixels and megapixels > preset.max_megapixels and not preset.vae_tiling:
        raise UsageError(f"{resolved.width}x{resolved.height} ({megapixels:.1f} MP) is more than preset {preset.name} "
                         f"handles ({preset.max_megapixels} MP); use a smaller --width/--height, or --vae-tiling")
    if resolved.negative and not family.negative_prompt:
        warnings.append(f"{family.label} has no negative prompt; --negative is ignored")
    seeds = [seed + i for i in range(spec.count)]
    loras = tuple(parse_lora(text, spec.allow_pickle) for text in spec.loras)
    controlnet = None
    if spec.task == "controlnet":
        from genimg.models.controlnets import resolve_controlnet

        controlnet = resolve_controlnet(spec.controlnet, ref.family, spec.allow_pickle)
    return Job(resolved, ref, preset, scheduler, seeds, warnings, inputs, loras, controlnet=controlnet)


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
    pipe, loaded = factory.get(job.ref, job.preset, job.spec.task, progress, job.controlnet)
    pipe.scheduler = build(job.scheduler, loaded.scheduler_config)
    apply_loras(pipe, loaded, job.loras)
    size = job.spec.batch_size
    for start in range(0, len(job.seeds), size):
        seeds = job.seeds[start:start + size]
        prompts = job.prompts[start:start + size] if job.prompts else [(job.spec.prompt, job.spec.negative)] * len(seeds)
        began = time.perf_counter()
        images = _denoise(pipe, job, seeds, prompts, progress)
        seconds = (time.perf_counter() - began) / len(seeds)
        for offset, (seed, (prompt, negative), image) in enumerate(zip(seeds, prompts, images)):
            spec = job.spec.replace(seed=seed, count=1, batch_size=1, prompt=prompt, negative=negative)
            if progress:
                progress("image", done=start + offset + 1, total=len(job.seeds))
            yield GeneratedImage(image, spec, job, start + offset, seconds)


def generate(spec: GenerationSpec, factory=None, progress: Progress | None = None) -> list[GeneratedImage]:
    """Python API twin of ``genimg txt2img``: the images of ``spec``, in memory."""
    return list(run(prepare(spec), factory, progress))


def _denoise(pipe, job: Job, seeds: list[int], prompts: list[tuple[str, str]], progress: Progress | None) -> list:
    import numpy as np
    import torch
    from PIL import Image

    spec = job.spec
    if job.inputs is not None and job.denoising_steps == 0:
        # Strength 0 asks for no change at all: the (resized) input, without a trip through the VAE.
        return [job.inputs.image.copy() for _ in seeds]

    def on_step(_pipe, step, _timestep, tensors):
        if progress:
            progress("step", step=step + 1, total=job.denoising_steps)
        return tensors

    kwargs = dict(
        prompt=[prompt for prompt, _ in prompts],
        negative_prompt=[negative for _, negative in prompts],
        width=spec.width,
        height=spec.height,
        num_inference_steps=spec.steps,
        guidance_scale=spec.guidance,
        generator=[torch.Generator("cpu").manual_seed(s) for s in seeds],
        output_type="np",
        callback_on_step_end=on_step,
        max_sequence_length=spec.max_sequence_length,
    )
    if job.inputs is not None:
        kwargs.update(job.inputs.pipeline_kwargs(spec))
    kwargs = _accepted(pipe, kwargs)
    try:
        with torch.inference_mode():
            images = pipe(**kwargs).images
    except torch.cuda.OutOfMemoryError:
        raise RunFailure(f"out of GPU memory at {spec.width}x{spec.height} with preset {job.preset.name}; "
                         f"try {_smaller_preset(job.preset)}, a smaller size or --batch-size 1") from None
    arrays = np.stack([np.asarray(im, dtype=np.float32) / 255 if isinstance(im, Image.Image) else im for im in images])
    if not np.isfinite(arrays).all() or arrays.max() <= 0:
        raise RunFailure(f"the image came out black (NaN in the {job.preset.dtype} VAE decode); "
                         "pass --vae-fp32, or --dtype bf16 / fp32")
    results = [Image.fromarray((a * 255).round().clip(0, 255).astype("uint8")) for a in arrays]
    if job.inputs is not None:
        results = [job.inputs.finish(im) for im in results]
    return results


# Inputs that only some pipelines take (SD img2img has no width/height, FLUX no negative prompt).
_OPTIONAL = ("negative_prompt", "width", "height", "max_sequence_length", "padding_mask_crop", "image", "control_image")


def _accepted(pipe, kwargs: dict) -> dict:
    import inspect

    params = inspect.signature(pipe.__call__).parameters
    return {k: v for k, v in kwargs.items()
            if not (k in _OPTIONAL and (k not in params or v is None))}


def _smaller_preset(preset: Preset) -> str:
    smaller = [p.name for p in load_presets().values() if p.device == "cuda" and p.vram_gb < preset.vram_gb]
    return f"--preset {smaller[-1]}" if smaller else "--offload sequential"
