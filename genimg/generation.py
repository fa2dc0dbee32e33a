"""Plan a :class:`GenerationSpec`, prepare the plan, then run it.

``plan`` does everything that needs no weights and fetches nothing — applies the user's defaults,
resolves the model, fills in the family's and preset's defaults, reads and checks the input images,
masks, control images and LoRA files, fixes each image's seed, prompt and output path — and returns a
frozen :class:`Plan`, so bad input fails before a slow load and nothing changes between planning and
running. ``prepare`` fetches what an alias names on the hub and makes the control maps; ``run`` (which
prepares a plan that was not) yields the images batch by batch as they finish. Image *i* of a run uses seed ``seed + i`` with its own CPU generator, so any
image can be reproduced alone.
"""

from __future__ import annotations

import math
import secrets
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator, Sequence

from genimg import config
from genimg.adapters import LoraRef, apply_loras, check_lora
from genimg.errors import RunFailure, UsageError, is_out_of_memory
from genimg.models import ModelRef, get_family, resolve_model
from genimg.models.families import line_of
from genimg.pipelines import PipelineChoice, choose_pipeline, has_pipeline
from genimg.presets import Preset, get_preset, load_presets, torch_instead
from genimg.schedulers import SchedulerSpec, build, lookup
from genimg.prompting.inline import inline_loras
from genimg.spec import DEFAULT_STRENGTH, GenerationSpec, LoraSpec
from genimg.step_savers import check_step_savers, step_savers
from genimg.tasks import ControlInput, TaskInputs, control_size, read_controls, read_inputs

Progress = Callable[..., None]


@dataclass(frozen=True)
class PlannedImage:
    index: int
    seed: int
    prompt: str  # as written (what the genimg record stores)
    negative: str
    path: Path | None = None
    text: str | None = None  # what the pipeline reads: the prompt with its styles applied
    negative_text: str | None = None


@dataclass(frozen=True)
class Plan:
    """A spec with every default filled in from the model family and the preset, its inputs read, and
    one entry per image. Frozen: what was checked is what runs."""

    spec: GenerationSpec
    ref: ModelRef
    preset: Preset
    scheduler: SchedulerSpec
    images: tuple[PlannedImage, ...]
    warnings: tuple[str, ...] = ()
    inputs: TaskInputs | None = None
    controls: tuple[ControlInput, ...] = ()
    loras: tuple[LoraRef, ...] = ()
    embeddings: tuple = ()  # Embedding each (textual inversion)
    ip_adapters: tuple = ()  # IPAdapterInput each: images as prompts
    redux: tuple = ()  # ReduxInput each: images as FLUX's prompt
    hires_upscaler: object | None = None  # UpscalerRef of the hires fix
    hires_size: tuple[int, int] | None = None
    choice: PipelineChoice | None = None  # what runs it: pipeline class, ControlNets to load (made once, here)
    hires_choice: PipelineChoice | None = None  # what repaints the hires fix's second pass
    prepared: bool = False  # prepare() has fetched the alias's LoRAs and adapters and made the control maps

    @property
    def seeds(self) -> list[int]:
        return [image.seed for image in self.images]


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


def plan(spec: GenerationSpec, output=None, overwrite: bool = False,
         images: Sequence[PlannedImage] | None = None) -> Plan:
    """Resolve ``spec`` into a :class:`Plan` without loading or fetching weights or running a
    preprocessor. With ``output`` (a folder or file template) each image gets its path, checked
    writable; ``images`` (batch) gives the per-image seeds, prompts and paths."""
    given = {k: getattr(spec, k) for k in config.GENERATION_KEYS}
    spec = spec.replace(**config.generation_defaults(given))
    with _naming_the_setting("model", given):
        ref = _model_ref(spec)
    family = get_family(ref.family)
    spec.validate(family.factor)
    if ref.variant == "inpaint" and spec.task != "inpaint":
        raise UsageError(f"{ref.name} is an inpainting model; use it with `genimg inpaint` or `genimg outpaint`")
    if ref.variant == "control" and (len(spec.controls) != 1 or spec.controls[0].model):
        raise UsageError(f"{ref.name} reads one control map itself (a FLUX.1 Depth/Canny model): give exactly one "
                         "--control TYPE=IMAGE (depth for Depth, canny for Canny), without model=")
    seed = spec.seed if spec.seed is not None else secrets.randbelow(2**32)
    warnings: list[str] = []
    inputs = read_inputs(spec, family.factor, seed, warnings.append) if spec.task != "txt2img" else None
    resolved = _resolved(spec, ref, inputs, seed)
    resolved.validate(family.factor)
    _check_strength(resolved, ref, family)
    scheduler = lookup(spec.scheduler or ref.defaults["scheduler"], ref.family)
    resolved = resolved.replace(scheduler=scheduler.name)
    with _naming_the_setting("preset", given):
        preset = _checked_preset(resolved, ref, warnings.append)
    check_step_savers(preset, family.denoiser[0])
    if resolved.negative and not family.negative_prompt:
        warnings.append(f"{family.label} has no negative prompt; --negative is ignored")
    if resolved.clip_skip and resolved.clip_skip > 1 and not family.weighted_prompts:
        warnings.append(f"{family.label} takes no CLIP skip; --clip-skip is ignored")
    size = (resolved.width, resolved.height)
    controls = read_controls(spec.controls, ref, size, spec.resize, spec.allow_pickle, warnings.append)
    resolved = resolved.replace(controls=tuple(c.spec for c in controls))  # with the default ControlNets named
    choice = choose_pipeline(ref.family, ref.variant, resolved.task, tuple(c.controlnet for c in controls),
                             masked_edit(resolved))
    entry = choice.entry
    if spec.references and not entry.reference_arg:
        raise UsageError(f"{ref.name} edits one image; several (--ref) are for FLUX.2 models (-m flux2-klein, flux2-dev)")
    if spec.references and 1 + len(spec.references) > family.reference_images:
        raise UsageError(f"{family.label} takes at most {family.reference_images} images: the input and "
                         f"{family.reference_images - 1} --ref (got {len(spec.references)})")
    if entry.reference_arg:
        check = line_of(ref.family).check_reference
        check(f"the image {Path(spec.image).name}", inputs.size)
        for path, image in zip(spec.references, inputs.references):
            check(f"--ref {Path(path).name}", image.size)
    if spec.hires and not has_pipeline(ref.family, "img2img"):
        raise UsageError(f"the hires fix repaints with img2img, which diffusers has not for {family.label}; "
                         "upscale the images with genimg upscale instead")
    if inputs is not None and inputs.mask_padding is not None and not entry.mask_crop:
        raise UsageError(f"{entry.class_name} has no 'only masked area' mode; leave out --mask-padding")
    control_loras = tuple(LoraRef(c.controlnet.location, c.spec.scale, ref.family) for c in controls
                          if c.controlnet.variant == "control-lora")
    if control_loras and (len(controls) != 1 or ref.variant is not None
                          or not has_pipeline(ref.family, resolved.task, "control")):
        raise UsageError(f"{controls[0].controlnet.name if len(controls) == 1 else 'a control LoRA'} is a FLUX.1 "
                         "Depth/Canny LoRA: it steers a FLUX.1 base model (dev) alone; give exactly one --control "
                         "with it" + ("" if has_pipeline(ref.family, "txt2img", "control") else
                                      f", not a {family.label} model"))
    hires_upscaler = hires_size = hires_choice = None
    if spec.hires:
        from genimg.upscale.models import resolve_upscaler

        hires_upscaler = resolve_upscaler(spec.hires.upscaler, spec.allow_pickle)
        hires_size = tuple(max(family.factor, round(v * spec.hires.scale / family.factor) * family.factor)
                           for v in size)
        hires_choice = choose_pipeline(ref.family, ref.variant, "img2img")
    from genimg.redux import read_redux

    base = Plan(resolved, ref, preset, scheduler, (), tuple(warnings), inputs, controls,
                _local_loras(spec, ref) + control_loras,
                _embeddings(spec, ref), _ip_adapters_of(spec, ref), read_redux(spec.redux, ref), hires_upscaler,
                hires_size, choice, hires_choice)
    if images is None:
        images = [PlannedImage(i, seed + i, resolved.prompt, resolved.negative) for i in range(spec.count)]
        if output is not None:
            images = _with_paths(images, resolved, ref, output, overwrite)
    return for_images(base, images)


def for_images(plan: Plan, images: Sequence[PlannedImage]) -> Plan:
    """``plan`` making ``images`` (their seeds, prompts and paths) instead of its own: each image's text
    with the styles applied, its prompt syntax read (warnings now, before any model loads). What a batch
    does to run several rows of one planned job in one pipeline call."""
    warnings: list[str] = []
    _check_prompts(plan.spec, get_family(plan.ref.family), images, warnings.append)
    return replace(plan, spec=plan.spec.replace(count=len(images)), images=tuple(_styled(images, plan.spec, plan.ref.family)),
                   warnings=tuple(dict.fromkeys((*plan.warnings, *warnings))))


def with_inputs(plan: Plan) -> Plan:
    """``plan`` with its input image and mask read again, where they were let go after checking."""
    if plan.inputs is not None or plan.spec.task == "txt2img":
        return plan
    spec, factor = plan.spec, get_family(plan.ref.family).factor
    return replace(plan, inputs=read_inputs(spec, factor, spec.seed, lambda message: None))


def prepare(plan: Plan) -> Plan:
    """What ``plan`` left for run time, done: the alias's LoRAs, named IP-Adapters and the Redux model
    fetched (from the cache, else downloaded) and checked, each control's map made. Returns the plan with them filled in."""
    if plan.prepared:
        return plan
    from genimg.ip_adapters import fetch_ip_adapters
    from genimg.redux import fetch_redux
    from genimg.tasks import prepare_controls

    loras = tuple(check_lora(lora, plan.ref, plan.spec.allow_pickle) for lora in _alias_loras(plan.ref))
    return replace(plan, loras=(*loras, *plan.loras), controls=prepare_controls(plan.controls, plan.spec.allow_pickle),
                   ip_adapters=fetch_ip_adapters(plan.ip_adapters), redux=fetch_redux(plan.redux), prepared=True)


@contextmanager
def _naming_the_setting(key: str, given: dict):
    """A bad ``key`` the user did not give here came from their config or environment: say which."""
    try:
        yield
    except UsageError as e:
        source = config.source_of(key)
        if given.get(key) is not None or source == "default":
            raise
        raise UsageError(f"{e} (the {key} setting from {source}; change it with `genimg config set {key} …`)") from None


def _model_ref(spec: GenerationSpec) -> ModelRef:
    """The model the spec names, with the quantized denoiser and the VAE it asks for checked against it."""
    ref = resolve_model(spec.model, config=spec.model_config, allow_pickle=spec.allow_pickle)
    if spec.denoiser or ref.denoiser:  # the flag, else the alias's (a GGUF configured for it)
        from genimg.models.gguf import check_denoiser

        ref = replace(ref, denoiser=check_denoiser(spec.denoiser or ref.denoiser, ref))
    if spec.vae:
        from genimg.models.vaes import check_vae

        ref = replace(ref, vae=check_vae(spec.vae, ref, spec.allow_pickle))
    return ref


def _resolved(spec: GenerationSpec, ref: ModelRef, inputs, seed: int) -> GenerationSpec:
    """``spec`` with every default filled in: the model's and the task's, the size from the input image
    (img2img, inpaint) or the first control image."""
    d = ref.defaults
    if inputs:
        width, height = inputs.size
    elif spec.controls:
        width, height = control_size(spec, get_family(ref.family).factor)
    else:
        width, height = spec.width or d["width"], spec.height or d["height"]
    return spec.replace(
        model=spec.model or ref.ref,
        width=width,
        height=height,
        steps=spec.steps or d["steps"],
        guidance=d["guidance"] if spec.guidance is None else spec.guidance,
        max_sequence_length=spec.max_sequence_length or d.get("max_sequence_length"),
        seed=seed,
        strength=spec.strength if spec.strength is not None else DEFAULT_STRENGTH.get(
            "inpaint" if masked_edit(spec) else spec.task),
    )


def _check_strength(spec: GenerationSpec, ref: ModelRef, family) -> None:
    """img2img and inpaint run part of the schedule: a strength that leaves no step is refused now."""
    if spec.task == "txt2img" or not spec.strength:
        return
    run = spec.steps * spec.strength
    if (math.floor(run) if family.strength_steps == "floor" else math.ceil(run)) < 1:
        raise UsageError(f"--strength {spec.strength:g} with {spec.steps} steps leaves no denoising step for "
                         f"{ref.name}; raise --strength or --steps (strength × steps ≥ 1)")


def _checked_preset(spec: GenerationSpec, ref: ModelRef, warn) -> Preset:
    """The preset the spec runs as, checked against this machine, the model, the size and the compiler."""
    preset = _preset_for(spec, ref.family)
    if preset.compile == "openvino":
        why = _openvino_refusal(spec, ref.family, preset)
        if why or (spec.preset == "auto" and ref.defaults.get("cpu_route") == "torch"):
            preset = torch_instead(spec.preset, spec.preset_overrides, ref.family)
        if why:  # auto's own choice by the model's cpu_route (where the route does not pay or fit) is not worth a line
            warn(f"{why}; running as preset {preset.name}")
    elif preset.compile != "off":
        from genimg.device import compiler_missing

        missing = compiler_missing(preset.device)
        if missing:
            warn(f"compile = {preset.compile} is turned off: {missing}; running eagerly")
            preset = preset.with_overrides(compile="off")
    megapixels = spec.width * spec.height / 1e6
    lifted = preset.tiling_lifts_limit and preset.vae_tiling
    if preset.max_megapixels and megapixels > preset.max_megapixels and not lifted:
        how = "--vae-tiling" if preset.tiling_lifts_limit else "--max-megapixels N to try anyway"
        raise UsageError(f"{spec.width}x{spec.height} ({megapixels:.1f} MP) is more than preset {preset.name} "
                         f"handles ({preset.max_megapixels:g} MP); use a smaller --width/--height, or {how}")
    return preset


def _openvino_refusal(spec: GenerationSpec, family: str, preset: Preset) -> str | None:
    """Why the OpenVINO route cannot run this job, known before loading: it converts a UNet's own inputs
    only, and DeepCache and ToMe patch the torch module it replaces."""
    from genimg.device import openvino_missing

    info = get_family(family)
    if preset.device != "cpu":
        return f"the OpenVINO route is for CPUs, not {preset.device}"
    if info.denoiser[0] != "UNet2DConditionModel":
        return f"only UNet models (SD 1.x/2.x, SDXL) have an OpenVINO route; {info.label} runs on torch"
    if spec.controls:
        return "ControlNets add residuals the converted UNet has no inputs for"
    if spec.ip_adapters:
        return "IP-Adapter image embeddings are not among the converted UNet's inputs"
    if preset.deepcache or preset.tome:
        return "DeepCache and ToMe patch the torch UNet that OpenVINO replaces"
    return openvino_missing()


def _local_loras(spec: GenerationSpec, ref: ModelRef) -> tuple[LoraRef, ...]:
    """The LoRAs the spec names (flags, rows, ``<lora:…>`` in the prompt), found and checked; an alias's
    own LoRAs live on the hub and are fetched by :func:`prepare`."""
    inline = [LoraSpec.parse(text) for text in inline_loras(spec.prompt)]
    return tuple(check_lora(lora, ref, spec.allow_pickle) for lora in (*spec.loras, *inline))


def _embeddings(spec: GenerationSpec, ref: ModelRef) -> tuple:
    if not spec.embeddings:
        return ()
    from genimg.adapters import model_cross_dim
    from genimg.embeddings import check_embedding

    return tuple(check_embedding(e, ref, model_cross_dim(ref), spec.allow_pickle) for e in spec.embeddings)


def _ip_adapters_of(spec: GenerationSpec, ref: ModelRef) -> tuple:
    if not spec.ip_adapters:
        return ()
    from genimg.ip_adapters import read_ip_adapters

    return read_ip_adapters(spec.ip_adapters, ref, spec.allow_pickle)


def _styled(images, spec: GenerationSpec, family: str) -> list[PlannedImage]:
    """Each image's text with its styles applied (inline ``<lora:…>`` tags stay, as A1111 records them;
    the pipeline's arguments leave them out)."""
    from genimg.prompting.styles import apply_styles

    names = [*spec.styles, *([spec.negative_template] if spec.negative_template else [])]
    out = []
    for im in images:
        text, negative = apply_styles(names, im.prompt, im.negative, family) if names else (im.prompt, im.negative)
        out.append(replace(im, text=text, negative_text=negative))
    return out


def _check_prompts(spec: GenerationSpec, family, images, warn) -> None:
    """Weighting syntax read now, so its warnings come before any model loads."""
    from genimg.prompting.weighting import has_syntax, parse

    texts = {spec.prompt, spec.negative, *(im.prompt for im in images or ()), *(im.negative for im in images or ())}
    for text in sorted(t for t in texts if t and has_syntax(t)):
        parse(text, warn)
        if not family.weighted_prompts:
            warn(f"{family.label}'s T5 encoder has no prompt weights: {text!r} is read as "
                 "plain text, its brackets and weights removed")


def _with_paths(images, resolved: GenerationSpec, ref: ModelRef, output, overwrite: bool) -> list[PlannedImage]:
    from genimg.output.naming import output_paths
    from genimg.files import check_writable

    paths = output_paths(output, [resolved.replace(seed=im.seed) for im in images], ref.name)
    check_writable(paths, overwrite)
    return [replace(im, path=path) for im, path in zip(images, paths)]


def _alias_loras(ref) -> list[LoraSpec]:
    """The LoRAs a model alias always applies, as local files (from the hub cache, or fetched)."""
    from genimg.models.hub import hub_file

    specs = []
    for text in ref.loras:
        location, _, weight = text.partition(":")
        specs.append(LoraSpec(hub_file(location), float(weight) if weight else 1.0))
    return specs


def masked_edit(spec: GenerationSpec) -> bool:
    """An edit confined to a mask (``genimg edit --mask``): Kontext's inpainting pipeline."""
    return spec.task == "edit" and spec.mask is not None and spec.mask.given()


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
            images, steps = _denoise(pipe, loaded, plan, batch, progress)
            if plan.spec.hires:
                images, more = _hires_fix(plan, factory, batch, images, progress)
                steps += more
        except OutOfMemory as e:
            if not fallback or e.smaller is None:
                raise
            retry = (e.what, e.smaller)
        if retry:
            # Out of the handler: the exception and the frames it held are gone. Now the pipeline and the
            # model are let go too, before the smaller preset loads (else both would be in memory at once).
            fallback, pipe, loaded = False, None, None
            factory.release()
            if progress:
                progress("warning", message=f"{retry[0]}; retrying once with --preset {retry[1]}")
            plan = _on_preset(plan, retry[1])
            continue
        seconds = (time.perf_counter() - began) / len(batch)
        for planned, image in zip(batch, images):
            spec = plan.spec.replace(seed=planned.seed, count=1, batch_size=1, prompt=planned.prompt,
                                     negative=planned.negative)
            if progress:
                progress("image", done=planned.index + 1, total=len(plan.images))
            yield GeneratedImage(image, spec, plan, planned.index, seconds, steps, lora_layers)
        start += size


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
        _ip_adapters(pipe, loaded, plan)
    except RuntimeError as e:  # torch's OutOfMemoryError is one, and so is MPS's
        if not is_out_of_memory(e):
            raise
        _let_go(e)
    else:
        return pipe, loaded, lora_layers
    raise OutOfMemory(f"out of GPU memory loading {plan.ref.name} with preset {plan.preset.name}",
                      _smaller_preset(plan.preset))


def _let_go(error: BaseException) -> None:
    """Clear the locals of the frames ``error`` passed through (the pipeline's latents, its model), so the
    memory they held is free once the handler ends; the out-of-memory error is then raised outside it,
    with no context that would keep them alive."""
    import traceback

    traceback.clear_frames(error.__traceback__)


def _ip_adapters(pipe, loaded, plan: Plan) -> None:
    if plan.ip_adapters or loaded.ip_adapter_paths:
        from genimg.ip_adapters import apply_ip_adapters

        apply_ip_adapters(pipe, loaded, plan.ip_adapters)


def _on_preset(plan: Plan, name: str) -> Plan:
    """``plan`` run as preset ``name`` (the user's preset flags still applied), checked as planning checks
    a preset: the size it handles, the compiler it needs."""
    spec = plan.spec.replace(preset=name)
    warnings: list[str] = []
    preset = _checked_preset(spec, plan.ref, warnings.append)
    return replace(plan, spec=spec, preset=preset, warnings=(*plan.warnings, *warnings))


def _hires_fix(plan: Plan, factory, batch, images, progress) -> tuple[list, int]:
    """A1111's hires fix: each image upscaled to the hires size, then repainted by img2img there with the
    same prompt, seed, sampler and LoRAs (the pipelines share one loaded model)."""
    from genimg.prompting.inline import split_tags
    from genimg.upscale.run import upscale_image

    hires = plan.spec.hires
    upscaler = factory.upscaler(plan.hires_upscaler, plan.preset, progress)
    pipe, loaded = factory.get(plan.ref, plan.preset, plan.hires_choice, progress)
    pipe.scheduler = build(plan.scheduler, loaded.scheduler_config)
    _ip_adapters(pipe, loaded, plan)  # the second pass sees the same image prompts
    width, height = plan.hires_size
    spec = plan.spec.replace(task="img2img", strength=hires.strength, steps=hires.steps or plan.spec.steps,
                             width=width, height=height, controls=(), hires=None)
    finished, steps = [], 0
    for planned, image in zip(batch, images):
        if plan.hires_upscaler.kind == "sd-x4":  # the x4 upscaler is prompt-guided: the image's own prompt
            upscaler = replace(upscaler, prompt=split_tags(planned.text)[0], negative=planned.negative_text or "")
        big = upscale_image(upscaler, image, width / image.width, planned.seed)
        if big.size != (width, height):
            big = big.resize((width, height))
        inputs = TaskInputs(big, None, "")
        second = replace(plan, spec=spec, inputs=inputs, controls=(), images=(planned,), choice=plan.hires_choice)
        [result], steps = _denoise(pipe, loaded, second, [planned], progress)
        finished.append(result)
    return finished, steps


def generate(spec: GenerationSpec, factory=None, progress: Progress | None = None) -> list[GeneratedImage]:
    """Python API twin of ``genimg txt2img``: the images of ``spec``, in memory."""
    return list(run(plan(spec), factory, progress))


def pipeline_arguments(plan: Plan, batch: Sequence[PlannedImage]) -> dict:
    """Exactly the arguments this plan's pipeline takes: the common ones, the family's, the task's and
    the controls'. Nothing is filtered afterwards, so an argument a pipeline lacks is an error, not a
    silently ignored setting."""
    import torch

    from genimg.models.families import FAMILIES
    from genimg.prompting.inline import split_tags
    from genimg.prompting.weighting import has_syntax, plain_text

    spec = plan.spec
    entry = plan.choice.entry
    unweighted = not FAMILIES[plan.ref.family].weighted_prompts
    texts = [split_tags(im.text)[0] for im in batch]
    kwargs = dict(
        prompt=[plain_text(t) if unweighted and has_syntax(t) else t for t in texts],
        num_inference_steps=spec.steps,
        guidance_scale=spec.guidance,
        generator=[torch.Generator("cpu").manual_seed(im.seed) for im in batch],
        output_type="np",
    )
    family = FAMILIES[plan.ref.family]
    if family.negative_prompt:
        kwargs["negative_prompt"] = [im.negative_text for im in batch]
    if "max_sequence_length" in family.pipeline_arguments and spec.max_sequence_length:
        kwargs["max_sequence_length"] = spec.max_sequence_length
    if entry.sized:
        kwargs.update(width=spec.width, height=spec.height)
    if entry.area_arg:
        kwargs[entry.area_arg] = spec.width * spec.height
    if plan.inputs is not None:
        kwargs["image"] = plan.inputs.image
        if entry.reference_arg == "image":  # FLUX.2: the input first, then the references, as one list
            kwargs["image"] = [plan.inputs.image, *plan.inputs.references]
        elif entry.reference_arg and plan.inputs.references:
            kwargs[entry.reference_arg] = list(plan.inputs.references)
        if entry.strength:
            kwargs["strength"] = spec.strength
        kwargs.update(entry.fixed)
        if plan.inputs.mask is not None:
            kwargs["mask_image"] = plan.inputs.mask
            if plan.inputs.mask_padding is not None:
                # diffusers' own "only masked area": crop around the mask, inpaint at full size, paste back.
                kwargs.update(padding_mask_crop=plan.inputs.mask_padding, output_type="pil")
    if plan.controls:
        one = len(plan.controls) == 1
        maps = [c.image for c in plan.controls]
        kwargs[entry.control_arg] = maps[0] if one else maps
        if plan.controls[0].mode is not None:  # union ControlNets: each map with its mode, as the line takes them
            kwargs.update(line_of(plan.ref.family).control_mode_arguments(entry.control_arg, maps,
                                                                          [c.mode for c in plan.controls]))
        for arg, values in (("controlnet_conditioning_scale", [c.spec.scale for c in plan.controls]),
                            ("control_guidance_start", [c.spec.start for c in plan.controls]),
                            ("control_guidance_end", [c.spec.end for c in plan.controls])):
            if entry.control_scales:
                kwargs[arg] = float(values[0]) if one else [float(v) for v in values]
    if plan.ip_adapters:
        kwargs["ip_adapter_image"] = [a.image for a in plan.ip_adapters]  # one per adapter, for every image
    return kwargs


def _denoise(pipe, loaded, plan: Plan, batch: Sequence[PlannedImage], progress: Progress | None) -> tuple[list, int]:
    import numpy as np
    import torch
    from PIL import Image

    spec = plan.spec
    if plan.inputs is not None and spec.strength == 0:
        # Strength 0 asks for no change at all: the (resized) input, without a trip through the VAE.
        return [plan.inputs.image.copy() for _ in batch], 0
    steps = 0

    def on_step(pipeline, step, _timestep, tensors):
        nonlocal steps
        steps = step + 1
        if progress:
            # The pipeline's own count: img2img and inpaint run part of the schedule, rounded per family.
            progress("step", step=step + 1, total=pipeline.num_timesteps)
        return tensors

    kwargs = _prompt_embeddings(pipe, plan, pipeline_arguments(plan, batch))
    for message in _cut_prompts(pipe, plan, kwargs):
        if progress:
            progress("warning", message=message)
    if plan.redux:  # FLUX.1 Redux: the prompt and the images as embeddings, in place of the text
        from genimg.redux import prior_for, redux_prompts

        with torch.inference_mode():
            kwargs = redux_prompts(prior_for(loaded, pipe, plan.redux[0].location), kwargs, plan.redux)
    try:
        with torch.inference_mode(), step_savers(pipe, plan.preset, batch[0].seed):
            images = pipe(**kwargs, callback_on_step_end=on_step).images
    except (IndexError, RuntimeError, ValueError) as e:
        if not is_out_of_memory(e):
            raise RunFailure(f"the pipeline failed: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from e
        _let_go(e)
        images = None
    if images is None:
        raise OutOfMemory(f"out of GPU memory at {spec.width}x{spec.height} with preset {plan.preset.name}",
                          _smaller_preset(plan.preset))
    arrays = np.stack([np.asarray(im, dtype=np.float32) / 255 if isinstance(im, Image.Image) else im for im in images])
    if not np.isfinite(arrays).all():
        fix = line_of(plan.ref.family).black_image_advice(plan.ref)
        raise RunFailure(f"the image came out black (NaN in the {plan.preset.dtype} VAE decode); "
                         f"pass --vae-fp32{fix}, or --dtype bf16 / fp32")
    results = [Image.fromarray((a * 255).round().clip(0, 255).astype("uint8")) for a in arrays]
    if plan.inputs is not None:
        results = [plan.inputs.finish(im) for im in results]
    return results, steps


def _prompt_embeddings(pipe, plan: Plan, kwargs: dict) -> dict:
    """SD and SDXL prompts with weights, BREAK or more than 75 tokens: A1111's embeddings in place of the
    text (the pipeline would read the brackets literally and cut the prompt at 77 tokens)."""
    from genimg.models.families import FAMILIES
    from genimg.prompting.encode import encode, needs_own_encoding

    if not FAMILIES[plan.ref.family].weighted_prompts:
        return kwargs
    prompts, negatives = kwargs["prompt"], kwargs.get("negative_prompt")
    # A1111's Clip skip N reads the layer N − 1 before the last (diffusers' clip_skip counts the same way,
    # but its own path does not run with transformers 5's CLIPTextModel, so genimg encodes those itself).
    skip = plan.spec.clip_skip - 1 if plan.spec.clip_skip else 0
    if not skip and not needs_own_encoding(pipe.tokenizer, prompts + list(negatives or [])):
        return kwargs
    rest = {k: v for k, v in kwargs.items() if k not in ("prompt", "negative_prompt")}
    return {**rest, **encode(pipe, plan.ref.family, prompts, negatives, skip or None)}


def _cut_prompts(pipe, plan: Plan, kwargs: dict) -> list[str]:
    """What a prompt loses past ``max_sequence_length`` tokens, as the model line counts them (FLUX.1's T5,
    FLUX.2's chat-templated language model)."""
    line = line_of(plan.ref.family)
    if "max_sequence_length" not in kwargs or "prompt" not in kwargs:
        return []
    limit = kwargs["max_sequence_length"]
    cuts = [line.cut_prompt(pipe, text, limit) for text in dict.fromkeys(kwargs["prompt"])]
    return [f"the prompt is longer than the text encoder reads; past --max-sequence-length {limit} this is cut: "
            f"{cut!r}" for cut in cuts if cut]


def _smaller_preset(preset: Preset) -> str | None:
    """The next smaller GPU tier, or None below the smallest."""
    smaller = [p.name for p in load_presets().values() if p.device == "cuda" and p.vram_gb < preset.vram_gb]
    return smaller[-1] if smaller else None


class OutOfMemory(RunFailure):
    """The GPU ran out of memory; ``smaller`` is the preset to try next (None: none is smaller)."""

    def __init__(self, what: str, smaller: str | None):
        self.what, self.smaller = what, smaller
        advice = f"--preset {smaller}" if smaller else "--offload sequential"
        super().__init__(f"{what}; try {advice}, a smaller size or --batch-size 1 (or --auto-fallback)")
