"""``genimg inpaint`` and ``genimg outpaint``: repaint the masked part of an image, or grow it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from genimg.cli import options as o
from genimg.cli.img2img import Image, Resize, Strength

MASK = "Mask"
Mask = Annotated[Optional[Path], typer.Option("--mask", help="Mask image: white = repaint, black = keep.", rich_help_panel=MASK)]
MaskFromAlpha = Annotated[bool, typer.Option("--mask-from-alpha", help="Repaint where the input image is transparent.", rich_help_panel=MASK)]
MaskRect = Annotated[Optional[str], typer.Option("--mask-rect", help="Repaint the rectangle x,y,w,h (pixels).", rich_help_panel=MASK)]
InvertMask = Annotated[bool, typer.Option("--invert-mask", help="Swap what is repainted and what is kept.", rich_help_panel=MASK)]
MaskBlur = Annotated[int, typer.Option("--mask-blur", help="Soften the seam by this many pixels.", rich_help_panel=MASK)]
MaskPadding = Annotated[Optional[int], typer.Option("--mask-padding", help="Only masked area: crop around the mask with this margin, inpaint at full resolution, paste back.", rich_help_panel=MASK)]
Extend = Annotated[Optional[tuple[str, int]], typer.Option("--extend", help="Outpaint: grow the given sides (e.g. left,right) by PIXELS.", metavar="SIDES PIXELS", rich_help_panel=MASK)]
Fill = Annotated[str, typer.Option("--fill", help="Outpaint: start the new area from stretched edges (edge) or noise.", rich_help_panel=MASK)]


def _run(image, prompt, common, *, strength, resize, mask=None, mask_from_alpha=False, mask_rect=None,
         invert_mask=False, mask_blur=4, mask_padding=None, extend=None, fill="edge", control=None) -> None:
    from genimg.cli.generating import generate_and_report

    generate_and_report({
        "prompt": prompt, "task": "inpaint", "image": str(image) if image else None, "strength": strength, "resize": resize,
        "mask": str(mask) if mask else None, "mask_from_alpha": mask_from_alpha, "mask_rect": mask_rect,
        "invert_mask": invert_mask, "mask_blur": mask_blur, "mask_padding": mask_padding,
        "extend": extend, "fill": fill, "control": control}, common)


@o.generation_command
def inpaint(common: o.Common, image: Image = None, prompt: o.Prompt = None, mask: Mask = None,
            mask_from_alpha: MaskFromAlpha = False, mask_rect: MaskRect = None, invert_mask: InvertMask = False,
            mask_blur: MaskBlur = 4, mask_padding: MaskPadding = None, extend: Extend = None, fill: Fill = "edge",
            strength: Strength = None, resize: Resize = "fit", control: o.Controls = None) -> None:
    """Repaint the masked part of an image (white in the mask); the rest stays as it was."""
    _run(image, prompt, common, strength=strength, resize=resize, mask=mask, mask_from_alpha=mask_from_alpha,
         mask_rect=mask_rect, invert_mask=invert_mask, mask_blur=mask_blur, mask_padding=mask_padding,
         extend=extend, fill=fill, control=control)


@o.generation_command
def outpaint(common: o.Common,
             extend: Annotated[tuple[str, int], typer.Option("--extend", help="Sides to grow (e.g. left,right or left,right,top,bottom) and by how many pixels.", metavar="SIDES PIXELS", rich_help_panel=MASK)],
             image: Image = None, prompt: o.Prompt = None, fill: Fill = "edge", mask_blur: MaskBlur = 4, strength: Strength = None,
             control: o.Controls = None) -> None:
    """Grow an image's canvas and paint the new area (same as `inpaint --extend`)."""
    _run(image, prompt, common, strength=strength, resize="fit", mask_blur=mask_blur, extend=extend, fill=fill,
         control=control)
