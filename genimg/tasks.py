"""What img2img, inpaint, outpaint and ControlNets add to a generation: the input image, the mask,
the control maps, and the finishing step that keeps the unmasked pixels of the input. All of it is
read and checked before any model is loaded."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from genimg.errors import UsageError, did_you_mean
from genimg.inputs import file_hash, load_image, resize, target_size
from genimg.masks import blend_mask, build_mask, composite, outpaint_canvas
from genimg.spec import ControlSpec, MaskSpec


@dataclass(frozen=True)
class TaskInputs:
    image: object  # PIL RGB, at the output size
    mask: object | None  # PIL L (white = repaint), same size, or None for img2img
    source_hash: str
    mask_blur: int = 4
    mask_padding: int | None = None
    references: tuple = ()  # edit: the --ref images (PIL RGB, as they are: the pipeline sizes them)
    reference_hashes: tuple[str, ...] = ()

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size

    def finish(self, generated):
        """Inpainting: put the original back wherever the mask is black, blending across its edge."""
        if self.mask is None:
            return generated
        return composite(self.image, generated, blend_mask(self.mask, self.mask_blur))

    def a1111_extra(self, strength: float | None) -> dict:
        extra = {"Denoising strength": strength} if strength is not None else {}
        if self.mask is not None:
            extra["Mask blur"] = self.mask_blur
            if self.mask_padding is not None:
                extra.update({"Inpaint area": "Only masked", "Masked area padding": self.mask_padding})
        return extra


@dataclass(frozen=True)
class ControlInput:
    """One control map (edges, pose, depth …) at the output size, and the ControlNet that reads it."""

    spec: ControlSpec
    source: object  # PIL RGB: the control image fitted to the output size
    source_hash: str
    controlnet: object  # ModelRef: the ControlNet, the control LoRA (variant "control-lora"), or the model itself
    #                     where it reads the map (FLUX.1 Depth/Canny)
    mode: int | None = None  # union ControlNets: the control_mode index of this map
    image: object | None = None  # PIL RGB: the map the ControlNet reads, made by prepare_controls

    def a1111_value(self, resize_mode: str = "fit") -> str:
        # The keys A1111's ControlNet extension writes for each unit.
        s = self.spec
        union = f", Union mode: {self.mode}" if self.mode is not None else ""
        return (f"Module: {s.type}, Model: {self.controlnet.name}, Weight: {s.scale:g}, "
                f"Resize Mode: {A1111_RESIZE[resize_mode]}, Guidance Start: {s.start:g}, Guidance End: {s.end:g}{union}")


# genimg's --resize modes by the names A1111's ControlNet extension gives them.
A1111_RESIZE = {"fit": "Resize and Fill", "crop": "Crop and Resize", "stretch": "Just Resize"}


def read_controls(controls, model, size: tuple[int, int], resize_mode: str, allow_pickle: bool,
                  warn: Callable[[str], None]) -> tuple[ControlInput, ...]:
    """Each control of the generation on ``model`` (a ModelRef): its image read and fitted, its
    ControlNet found (the type's default where none is named, recorded in its spec), the weights its
    preprocessor needs found. No map is made here (that runs a detector): see :func:`prepare_controls`."""
    from dataclasses import replace

    from genimg.control import check_preprocessor
    from genimg.models.controlnets import default_controlnet, resolve_controlnet

    family = model.family
    out = []
    for n, control in enumerate(controls):
        source = load_image(control.image, "control image").convert("RGB")
        if n and abs(source.width / source.height - size[0] / size[1]) > 0.01:
            warn(f"control image {Path(control.image).name} has another aspect ratio than the output; "
                 f"it is fitted to {size[0]}x{size[1]} ({resize_mode})")
        if model.variant == "control":  # FLUX.1 Depth/Canny: the model reads the map itself
            check_preprocessor(control.type, allow_pickle)
            if (control.scale, control.start, control.end) != (1.0, 0.0, 1.0):
                warn(f"{model.name} reads the control map itself, with no scale, start or end; they are ignored")
            out.append(ControlInput(control, resize(source, size, resize_mode), file_hash(control.image), model))
            continue
        if control.model is None:
            control = replace(control, model=default_controlnet(control.type, model))
        ref = resolve_controlnet(control.model, family, allow_pickle)
        check_preprocessor(control.type, allow_pickle)
        if ref.variant == "control-lora":  # FLUX.1 Depth/Canny LoRA: the map read by the widened model
            if (control.start, control.end) != (0.0, 1.0):
                warn(f"{ref.name} is a control LoRA, read at every step; start and end are ignored")
            out.append(ControlInput(control, resize(source, size, resize_mode), file_hash(control.image), ref))
            continue
        mode = _union_mode(control, ref, family, warn)
        out.append(ControlInput(control, resize(source, size, resize_mode), file_hash(control.image), ref, mode))
    if len({c.controlnet.variant == "union" for c in out}) > 1:
        raise UsageError("union and single-purpose ControlNets cannot steer one generation together (diffusers has "
                         "no pipeline for the mix); give every control the union ControlNet, or none of them")
    return tuple(out)


def prepare_controls(controls: tuple[ControlInput, ...], allow_pickle: bool) -> tuple[ControlInput, ...]:
    """Each control with its map made by its preprocessor (cached by source, size, type and settings, so
    batch rows sharing a control image run the detector once)."""
    from dataclasses import replace

    from genimg.control import control_map

    return tuple(c if c.image is not None else
                 replace(c, image=control_map(c.source, c.source_hash, c.spec.type, c.spec.settings, allow_pickle))
                 for c in controls)


def _union_mode(control, ref, family: str, warn) -> int | None:
    """The control_mode a union ControlNet reads this map as: ``mode=`` or the preprocessor type's."""
    from genimg.control import preprocessors
    from genimg.models.controlnets import union_modes

    if ref.variant != "union":
        if control.mode is not None:
            warn(f"control {control.type}={Path(control.image).name}: mode={control.mode} is for union ControlNets "
                 f"and {ref.name} is not one; it is ignored")
        return None
    modes = union_modes(family)
    name = control.mode or preprocessors()[control.type].union_mode
    if control.mode and control.mode not in modes:
        raise UsageError(f"control mode {control.mode!r}{did_you_mean(control.mode, modes)} is not one "
                         f"{family.upper()} union ControlNets know; "
                         f"use one of {', '.join(modes)}")
    if name not in modes:
        raise UsageError(f"control {control.type}={Path(control.image).name} goes to the union ControlNet {ref.name}, "
                         f"which must be told what kind of map it is: add ,mode= one of {', '.join(modes)}")
    return modes[name]


def control_size(spec, factor: int) -> tuple[int, int]:
    """txt2img with controls and no size given: the first control image's size, as `genimg controlnet` did."""
    first = load_image(spec.controls[0].image, "control image")
    return target_size(first.size, spec.width, spec.height, factor)


def read_inputs(spec, factor: int, seed: int, warn: Callable[[str], None]) -> TaskInputs:
    """Load, size and check the input image and mask of img2img and inpaint."""
    source = load_image(spec.image)
    digest = file_hash(spec.image)
    refs = {"references": tuple(load_image(r, "reference image").convert("RGB") for r in spec.references),
            "reference_hashes": tuple(file_hash(r) for r in spec.references)}
    if spec.task == "img2img" or (spec.task == "edit" and not (spec.mask and spec.mask.given())):
        size = target_size(source.size, spec.width, spec.height, factor)
        return TaskInputs(resize(source.convert("RGB"), size, spec.resize), None, digest, **refs)
    mask_settings = spec.mask or MaskSpec()
    if spec.outpaint:
        image, mask = outpaint_canvas(source.convert("RGB"), spec.outpaint.sides(), factor, spec.outpaint.fill,
                                      overlap=max(mask_settings.blur * 2, 8), seed=seed)
    else:
        mask = build_mask(mask_settings, source, warn)
        image = source.convert("RGB")
    size = target_size(image.size, spec.width, spec.height, factor)
    if size != image.size:
        image = resize(image, size, spec.resize)
        mask = resize(mask, size, spec.resize).point(lambda v: 255 if v >= 128 else 0)
        if size[0] * size[1] > 0 and not mask.getbbox():
            raise UsageError("the mask vanished when the image was resized to the model's size; use a larger mask")
    return TaskInputs(image, mask, digest, mask_settings.blur, mask_settings.padding, **refs)
