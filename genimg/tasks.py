"""What img2img, inpaint and outpaint add to a generation: the input image, the mask, and the
finishing step that keeps the unmasked pixels of the input."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from genimg.errors import UsageError
from genimg.inputs import file_hash, load_image, resize, target_size
from genimg.masks import MaskSettings, blend_mask, build_mask, composite, outpaint_canvas


@dataclass
class TaskInputs:
    image: object  # PIL RGB, at the output size
    mask: object | None  # PIL L (white = repaint), same size, or None for img2img
    source_hash: str
    original: object | None = None  # for inpaint: what the unmasked area must keep
    mask_blur: int = 4

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size

    def pipeline_kwargs(self, spec) -> dict:
        kwargs = {"image": self.image, "strength": spec.strength}
        if self.mask is not None:
            kwargs["mask_image"] = self.mask
            if spec.mask_padding is not None:
                # diffusers' own "only masked area": crop around the mask, inpaint at full size, paste back.
                kwargs.update(padding_mask_crop=spec.mask_padding, output_type="pil")
        return kwargs

    def finish(self, generated):
        """Inpainting: put the original back wherever the mask is black, blending across its edge."""
        if self.mask is None:
            return generated
        return composite(self.original, generated, blend_mask(self.mask, self.mask_blur))

    def a1111_extra(self, spec) -> dict:
        extra = {"Denoising strength": spec.strength}
        if self.mask is not None:
            extra["Mask blur"] = spec.mask_blur
            if spec.mask_padding is not None:
                extra.update({"Inpaint area": "Only masked", "Masked area padding": spec.mask_padding})
        return extra


@dataclass
class ControlInputs:
    """The control map a ControlNet follows (edges, pose, depth …), at the output size."""

    image: object  # PIL RGB
    source_hash: str
    model_name: str

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size

    def pipeline_kwargs(self, spec) -> dict:
        # SD/SDXL's ControlNet pipelines call the control map `image`, FLUX's `control_image`.
        return {"image": self.image, "control_image": self.image, "controlnet_conditioning_scale": float(spec.control_scale)}

    def finish(self, generated):
        return generated

    def a1111_extra(self, spec) -> dict:
        # A1111's ControlNet extension writes one such entry per unit.
        return {"ControlNet 0": f"Module: {spec.control}, Model: {self.model_name}, Weight: {spec.control_scale:g}"}


def read_control(spec, factor: int) -> ControlInputs:
    from genimg.control import preprocess

    source = load_image(spec.image, "control image")
    size = target_size(source.size, spec.width, spec.height, factor)
    image = resize(source.convert("RGB"), size, spec.resize)
    return ControlInputs(preprocess(image, spec.control), file_hash(spec.image), Path(spec.controlnet).stem)


def read_inputs(spec, factor: int, seed: int, warn: Callable[[str], None]) -> TaskInputs | ControlInputs:
    """Load, size and check the input image and mask: all before any model is loaded."""
    if spec.task == "controlnet":
        return read_control(spec, factor)
    source = load_image(spec.image)
    digest = file_hash(spec.image)
    if spec.task == "img2img":
        size = target_size(source.size, spec.width, spec.height, factor)
        return TaskInputs(resize(source.convert("RGB"), size, spec.resize), None, digest)
    if spec.extend:
        if any((spec.mask, spec.mask_from_alpha, spec.mask_rect)):
            raise UsageError("--extend makes its own mask; leave out --mask, --mask-from-alpha and --mask-rect")
        image, mask = outpaint_canvas(source.convert("RGB"), spec.extend, factor, spec.fill,
                                      overlap=max(spec.mask_blur * 2, 8), seed=seed)
    else:
        settings = MaskSettings(spec.mask, spec.mask_from_alpha, spec.mask_rect, spec.invert_mask, spec.mask_blur)
        mask = build_mask(settings, source, warn)
        image = source.convert("RGB")
    size = target_size(image.size, spec.width, spec.height, factor)
    if size != image.size:
        image = resize(image, size, spec.resize)
        mask = resize(mask, size, spec.resize).point(lambda v: 255 if v >= 128 else 0)
        if size[0] * size[1] > 0 and not mask.getbbox():
            raise UsageError("the mask vanished when the image was resized to the model's size; use a larger mask")
    return TaskInputs(image, mask, digest, original=image, mask_blur=spec.mask_blur)
