"""The pipeline table: which diffusers pipeline runs a task on a model family, and the arguments it takes.

Keyed by (family, task, modifier), never picked by branches; a new model line adds rows here.
"""

from __future__ import annotations

from dataclasses import dataclass

from genimg.errors import UsageError
from genimg.models.families import FAMILIES, line_of
from genimg.third_party import KONTEXT_KEEPS_SIZE


@dataclass(frozen=True)
class PipelineEntry:
    """A diffusers pipeline class and the task arguments it takes (each pipeline names them its own way)."""

    class_name: str
    sized: bool = True  # takes width/height (SD/SDXL img2img take the input image's size instead)
    control_arg: str = "control_image"  # where the control maps go (SD/SDXL txt2img ControlNet: `image`)
    mask_crop: bool = False  # takes padding_mask_crop ("only masked area")
    strength: bool = True  # an input image's task takes a strength (instruction editing does not)
    fixed: tuple = ()  # (argument, value) pairs always passed
    area_arg: str | None = None  # takes the output's area in pixels (Kontext scales width × height to it)
    control_scales: bool = True  # takes ControlNets' conditioning scale, guidance start and end
    # Where --ref images go: "image" takes the input and the references as one list (FLUX.2), another
    # argument takes the references beside the input (FLUX.2 [klein] inpainting); None: no references.
    reference_arg: str | None = None


# Keyed by (family, task, modifier): modifier None, "controlnet" (one or more ControlNets steer the
# task, as diffusers' auto_pipeline pairs them), "union" (a union ControlNet), "fill" (a dedicated
# inpainting model), "control" (a model that reads a control map itself) or "inpaint" (a masked edit).
PIPELINES = {
    ("sd", "txt2img", None): PipelineEntry("StableDiffusionPipeline"),
    ("sd", "img2img", None): PipelineEntry("StableDiffusionImg2ImgPipeline", sized=False),
    ("sd", "inpaint", None): PipelineEntry("StableDiffusionInpaintPipeline", mask_crop=True),
    ("sd", "txt2img", "controlnet"): PipelineEntry("StableDiffusionControlNetPipeline", control_arg="image"),
    ("sd", "img2img", "controlnet"): PipelineEntry("StableDiffusionControlNetImg2ImgPipeline"),
    ("sd", "inpaint", "controlnet"): PipelineEntry("StableDiffusionControlNetInpaintPipeline", mask_crop=True),
    ("sdxl", "txt2img", None): PipelineEntry("StableDiffusionXLPipeline"),
    ("sdxl", "img2img", None): PipelineEntry("StableDiffusionXLImg2ImgPipeline", sized=False),
    ("sdxl", "inpaint", None): PipelineEntry("StableDiffusionXLInpaintPipeline", mask_crop=True),
    ("sdxl", "txt2img", "controlnet"): PipelineEntry("StableDiffusionXLControlNetPipeline", control_arg="image"),
    ("sdxl", "img2img", "controlnet"): PipelineEntry("StableDiffusionXLControlNetImg2ImgPipeline"),
    ("sdxl", "inpaint", "controlnet"): PipelineEntry("StableDiffusionXLControlNetInpaintPipeline", mask_crop=True),
    # Union ControlNets (xinsir's ControlNet++): one model, many kinds of map, each told by its control_mode.
    ("sdxl", "txt2img", "union"): PipelineEntry("StableDiffusionXLControlNetUnionPipeline"),
    ("sdxl", "img2img", "union"): PipelineEntry("StableDiffusionXLControlNetUnionImg2ImgPipeline"),
    ("sdxl", "inpaint", "union"): PipelineEntry("StableDiffusionXLControlNetUnionInpaintPipeline", mask_crop=True),
    ("flux", "txt2img", None): PipelineEntry("FluxPipeline"),
    ("flux", "img2img", None): PipelineEntry("FluxImg2ImgPipeline"),
    ("flux", "inpaint", None): PipelineEntry("FluxInpaintPipeline", mask_crop=True),
    ("flux", "txt2img", "controlnet"): PipelineEntry("FluxControlNetPipeline"),
    ("flux", "img2img", "controlnet"): PipelineEntry("FluxControlNetImg2ImgPipeline"),
    ("flux", "inpaint", "controlnet"): PipelineEntry("FluxControlNetInpaintPipeline", mask_crop=True),
    ("flux", "txt2img", "union"): PipelineEntry("FluxControlNetPipeline"),  # FLUX's union ones take control_mode
    ("flux", "img2img", "union"): PipelineEntry("FluxControlNetImg2ImgPipeline"),
    ("flux", "inpaint", "union"): PipelineEntry("FluxControlNetInpaintPipeline", mask_crop=True),
    # Dedicated inpainting models: SD/SDXL's inpaint pipelines take 9-channel UNets as they are.
    ("flux", "inpaint", "fill"): PipelineEntry("FluxFillPipeline"),
    # Black Forest Labs' structural models (FLUX.1 Depth/Canny [dev]): the transformer reads the control
    # map's latents beside the picture's, so there is no ControlNet and no scale, start or end to give it.
    ("flux", "txt2img", "control"): PipelineEntry("FluxControlPipeline", control_scales=False),
    ("flux", "img2img", "control"): PipelineEntry("FluxControlImg2ImgPipeline", control_scales=False),
    ("flux", "inpaint", "control"): PipelineEntry("FluxControlInpaintPipeline", control_scales=False),
    # Instruction editing: FLUX.1 Kontext reads the input image as tokens beside the picture it makes. Its own
    # resizing (to the sizes Kontext was trained at, and of width × height to max_area) is off: genimg keeps
    # the input's size (or -W/-H).
    ("flux", "edit", None): PipelineEntry("FluxKontextPipeline", strength=False, fixed=KONTEXT_KEEPS_SIZE,
                                          area_arg="max_area"),
    # Kontext with a mask: the instruction applies inside it, the rest is kept (genimg edit --mask).
    ("flux", "edit", "inpaint"): PipelineEntry("FluxKontextInpaintPipeline", mask_crop=True,
                                               fixed=KONTEXT_KEEPS_SIZE, area_arg="max_area"),
    # FLUX.2: text to image, and editing from up to ten reference images (the input first). diffusers has no
    # strength-based img2img for it; [klein] has an inpainting pipeline that also takes references.
    ("flux2", "txt2img", None): PipelineEntry("Flux2Pipeline"),
    ("flux2", "edit", None): PipelineEntry("Flux2Pipeline", strength=False, reference_arg="image"),
    ("flux2-klein", "txt2img", None): PipelineEntry("Flux2KleinPipeline"),
    ("flux2-klein", "edit", None): PipelineEntry("Flux2KleinPipeline", strength=False, reference_arg="image"),
    ("flux2-klein", "inpaint", None): PipelineEntry("Flux2KleinInpaintPipeline", mask_crop=True),
    ("flux2-klein", "edit", "inpaint"): PipelineEntry("Flux2KleinInpaintPipeline", mask_crop=True,
                                                      reference_arg="image_reference"),
}

# The ControlNet classes by (family, variant), and what steers with several of them (in diffusers.models).
CONTROLNET_CLASSES = {("sd", None): "ControlNetModel", ("sdxl", None): "ControlNetModel",
                      ("sdxl", "union"): "ControlNetUnionModel", ("flux", None): "FluxControlNetModel",
                      ("flux", "union"): "FluxControlNetModel"}
MULTI_CONTROLNET_CLASSES = {"ControlNetModel": "MultiControlNetModel", "ControlNetUnionModel": "MultiControlNetUnionModel",
                            "FluxControlNetModel": "FluxMultiControlNetModel"}


@dataclass(frozen=True)
class PipelineChoice:
    """What runs a task of a plan, chosen once by planning: the pipeline, the ControlNets it loads, and how
    several of them steer. The factory builds exactly this; the call's arguments follow its entry."""

    task: str
    entry: PipelineEntry
    controlnets: tuple = ()  # ModelRef each: the ControlNets to load (a control LoRA is loaded as a LoRA)
    controlnet_class: str | None = None  # their class in diffusers, and what steers with several of them
    multi_controlnet_class: str | None = None

    @property
    def key(self) -> tuple:
        """What tells two pipelines of one loaded model apart."""
        return (self.entry.class_name, tuple(cn.location for cn in self.controlnets))


def choose_pipeline(family: str, variant: str | None, task: str, controlnets=(), masked: bool = False) -> PipelineChoice:
    """The pipeline for ``task`` on a ``family`` model of ``variant``, steered by ``controlnets`` (ModelRef
    each) and, for an edit, confined to a mask with ``masked``. A model that reads the control map itself
    (FLUX.1 Depth/Canny) loads no ControlNet; a control LoRA among ``controlnets`` makes its base model one."""
    reads_map = variant == "control" or any(cn.variant == "control-lora" for cn in controlnets)
    nets = () if variant == "control" else tuple(cn for cn in controlnets if cn.variant != "control-lora")
    union = any(cn.variant == "union" for cn in nets)
    entry = pipeline_entry(family, task, "control" if reads_map else variant, bool(controlnets), union, masked)
    if not nets:
        return PipelineChoice(task, entry)
    single = CONTROLNET_CLASSES[(family, nets[0].variant)]
    return PipelineChoice(task, entry, nets, single, MULTI_CONTROLNET_CLASSES[single])


def base_choice(family: str, variant: str | None) -> PipelineChoice:
    """The pipeline a model is loaded as: its inpainting one for an inpainting model, img2img for a refiner
    (it starts from latents), else txt2img."""
    task = {"inpaint": "inpaint", "refiner": "img2img"}.get(variant, "txt2img")
    return choose_pipeline(family, variant, task)


def pipeline_entry(family: str, task: str, variant: str | None = None, controlled: bool = False,
                   union: bool = False, masked: bool = False) -> PipelineEntry:
    """The pipeline for ``task`` on a ``family`` model (steered by ControlNets, union ones with
    ``union``; an edit confined to a mask with ``masked``); a clear error where diffusers has none."""
    if variant == "control" and (family, task, "control") in PIPELINES:
        return PIPELINES[(family, task, "control")]
    fill = line_of(family).fill_variant(task) if variant == "inpaint" else None
    if fill:
        if controlled:
            raise UsageError(f"diffusers has no ControlNet pipeline for {FAMILIES[family].label} Fill models; drop "
                             "the controls or use a base model with a ControlNet")
        return PIPELINES[(family, task, fill)]
    modifier = ("union" if union else "controlnet") if controlled else None
    if task == "edit" and masked and not controlled:
        modifier = "inpaint"
    if task == "edit" and (family, task, modifier) not in PIPELINES:
        raise UsageError(f"instruction editing is for FLUX.1 Kontext and FLUX.2 models (-m flux-kontext, flux2-klein), "
                         f"not {family} models" + (", and takes no ControlNet" if controlled else "")
                         + ("" if (family, task, None) in PIPELINES else "; for other models use img2img"))
    if task == "img2img" and (family, "edit", None) in PIPELINES and (family, task, None) not in PIPELINES:
        raise UsageError(f"diffusers has no img2img pipeline for {family} models; change an image with "
                         f"genimg edit IMAGE \"instruction\" (it keeps the input's size)")
    if (family, task, modifier) not in PIPELINES:
        raise UsageError(f"no {task} pipeline{' with ControlNets' if controlled else ''} for {family} models")
    return PIPELINES[(family, task, modifier)]


def has_pipeline(family: str, task: str, modifier: str | None = None) -> bool:
    """Whether diffusers has a ``task`` pipeline for ``family`` (FLUX.2 has no img2img), with ``modifier``
    ("control": one that reads a control map itself) where given."""
    return (family, task, modifier) in PIPELINES
