"""Planning: a :class:`GenerationSpec` resolved into a frozen :class:`Plan` without loading or fetching
weights — the user's defaults applied, the model resolved, the family's and preset's defaults filled in,
the input images, masks, control images and LoRA files read and checked, the pipeline chosen, and each
image's seed, prompt and output path fixed — so bad input fails before a slow load and nothing changes
between planning and running. ``prepare`` then fetches what an alias names on the hub and makes the
control maps. Image *i* of a run uses seed ``seed + i`` with its own CPU generator, so any image can be
reproduced alone.
"""

from __future__ import annotations

import math
import secrets
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

from genimg import config
from genimg.adapters import LoraRef, check_lora
from genimg.errors import UsageError
from genimg.models import ModelRef, get_family, resolve_model
from genimg.models.families import line_of
from genimg.pipelines import PipelineChoice, choose_pipeline, has_pipeline, pipeline_entry
from genimg.presets import Preset, get_preset, torch_instead
from genimg.schedulers import SchedulerSpec, lookup
from genimg.prompting.inline import inline_loras
from genimg.spec import DEFAULT_STRENGTH, GenerationSpec, LoraSpec
from genimg.step_savers import check_step_savers
from genimg.tasks import ControlInput, TaskInputs, control_size, read_controls, read_inputs


@dataclass(frozen=True)
class PlannedImage:
    index: int
    seed: int
    prompt: str  # as written (what the genimg record stores)
    negative: str
    path: Path | None = None
    text: str | None = None  # what the pipeline reads: the prompt with its styles applied
    negative_text: str | None = None
    variation_seed: int | None = None  # A1111's variation seed, when the spec varies the noise


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
    refiner: ModelRef | None = None  # SDXL's refiner: takes over at spec.refiner_switch
    face_restorer: object | None = None  # UpscalerRef of --restore-faces
    prepared: bool = False  # prepare() has fetched the alias's LoRAs and adapters and made the control maps

    @property
    def seeds(self) -> list[int]:
        return [image.seed for image in self.images]


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
    if ref.variant == "refiner":
        raise UsageError(f"{ref.name} is an SDXL refiner: it finishes a base model's image; pass a base model with "
                         f"-m and this one with --refiner {ref.name}")
    refiner = _refiner_of(resolved, ref)
    if resolved.tiling and not line_of(ref.family).seamless_tiling:
        raise UsageError(f"--tiling wraps a UNet's convolutions; {family.label}'s transformer has none to wrap "
                         "(use an SD 1.x/2.x or SDXL model)")
    scheduler = lookup(spec.scheduler or ref.defaults["scheduler"], ref.family)
    resolved = resolved.replace(scheduler=scheduler.name)
    with _naming_the_setting("preset", given):
        preset = checked_preset(resolved, ref, warnings.append)
    check_step_savers(preset, family.denoiser[0])
    if resolved.negative and not family.negative_prompt:
        warnings.append(f"{family.label} has no negative prompt; --negative is ignored")
    if resolved.clip_skip and resolved.clip_skip > 1 and not family.weighted_prompts:
        warnings.append(f"{family.label} takes no CLIP skip; --clip-skip is ignored")
    size = (resolved.width, resolved.height)
    # What the table has not (no ControlNet pipeline for the family, no such task) is said before any
    # control is looked up; the choice itself waits for the ControlNets the controls name.
    pipeline_entry(ref.family, resolved.task, ref.variant, bool(spec.controls), masked=masked_edit(resolved))
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
    face_restorer = None
    if spec.restore_faces:
        from genimg.upscale.faces import resolve_face_restorer

        face_restorer = resolve_face_restorer(spec.restore_faces, spec.allow_pickle)
    from genimg.redux import read_redux

    base = Plan(resolved, ref, preset, scheduler, (), tuple(warnings), inputs, controls,
                _local_loras(spec, ref) + control_loras,
                _embeddings(spec, ref), _ip_adapters_of(spec, ref), read_redux(spec.redux, ref), hires_upscaler,
                hires_size, choice, hires_choice, refiner, face_restorer)
    if images is None:
        images = [PlannedImage(i, image_seed, resolved.prompt, resolved.negative, variation_seed=variation)
                  for i, (image_seed, variation) in enumerate(resolved.image_seeds(seed, resolved.variation_seed))]
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
        variation_seed=(spec.variation_seed if spec.variation_seed is not None or not spec.variation_strength
                        else secrets.randbelow(2**32)),  # A1111's random variation seed (-1)
        strength=spec.strength if spec.strength is not None else DEFAULT_STRENGTH.get(
            "inpaint" if masked_edit(spec) else spec.task),
    )


def _refiner_of(spec: GenerationSpec, ref: ModelRef) -> ModelRef | None:
    """The refiner a spec names, an SDXL model, refining an SDXL base."""
    if not spec.refiner:
        return None
    if not line_of(ref.family).refines:
        raise UsageError(f"--refiner is SDXL's ensemble of experts; {get_family(ref.family).label} has no refiner")
    refiner = resolve_model(spec.refiner, allow_pickle=spec.allow_pickle)
    if refiner.family != ref.family:
        raise UsageError(f"--refiner {spec.refiner} is a {get_family(refiner.family).label} model; an SDXL base "
                         "takes an SDXL refiner (or another SDXL model)")
    return refiner


def _check_strength(spec: GenerationSpec, ref: ModelRef, family) -> None:
    """img2img and inpaint run part of the schedule: a strength that leaves no step is refused now."""
    if spec.task == "txt2img" or not spec.strength:
        return
    run = spec.steps * spec.strength
    if (math.floor(run) if family.strength_steps == "floor" else math.ceil(run)) < 1:
        raise UsageError(f"--strength {spec.strength:g} with {spec.steps} steps leaves no denoising step for "
                         f"{ref.name}; raise --strength or --steps (strength × steps ≥ 1)")


def checked_preset(spec: GenerationSpec, ref: ModelRef, warn) -> Preset:
    """The preset the spec runs as, checked against this machine, the model, the size and the compiler."""
    preset = _preset_for(spec, ref.family)
    chosen = preset.name
    if preset.compile == "openvino":
        why = _openvino_refusal(spec, ref.family, preset)
        if why or (spec.preset == "auto" and ref.defaults.get("cpu_route") == "torch"):
            preset = torch_instead(spec.preset, spec.preset_overrides, ref.family)
        if why:  # auto's own choice by the model's cpu_route (where the route does not pay or fit) is not worth a line
            warn(f"{why}; running as preset {preset.name} instead of {chosen}"
                 + (" (auto's choice on this CPU)" if spec.preset == "auto" else ""))
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
        named = f"{preset.name} (what --preset auto runs this model as here)" if spec.preset == "auto" else preset.name
        raise UsageError(f"{spec.width}x{spec.height} ({megapixels:.1f} MP) is more than preset {named} "
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

    from genimg.prompting.schedule import is_scheduled

    texts = {spec.prompt, spec.negative, *(im.prompt for im in images or ()), *(im.negative for im in images or ())}
    for text in sorted(t for t in texts if t and has_syntax(t)):
        if is_scheduled(text):  # A1111's prompt editing: SD and SDXL's CLIP prompts, re-encoded as txt2img runs
            if not family.weighted_prompts:
                raise UsageError(f"{text!r} edits the prompt over the steps ([from:to:when], [a|b]), which "
                                 f"{family.label}'s text encoder is not given per step; write the prompt without it")
            if spec.task != "txt2img":
                raise UsageError(f"{text!r} edits the prompt over the steps ([from:to:when], [a|b]): txt2img does "
                                 f"that; {spec.task} reads one prompt")
        parse(text, warn)
        if not family.weighted_prompts:
            warn(f"{family.label}'s T5 encoder has no prompt weights: {text!r} is read as "
                 "plain text, its brackets and weights removed")


def _with_paths(images, resolved: GenerationSpec, ref: ModelRef, output, overwrite: bool) -> list[PlannedImage]:
    from genimg.output.naming import output_paths
    from genimg.files import check_writable

    paths = output_paths(output, [resolved.replace(seed=im.seed, variation_seed=im.variation_seed) for im in images],
                         ref.name)
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
