"""``genimg edit``: change an image by an instruction ("make it night", "remove the text")."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from genimg.cli import options as o
from genimg.cli.img2img import Resize, Strength
from genimg.cli.inpaint import InvertMask, Mask, MaskBlur, MaskFromAlpha, MaskPadding, MaskRect

Image = Annotated[Optional[Path], typer.Argument(help="The image to edit (with --from: the one the PNG records, if unchanged).", show_default=False)]
Instruction = Annotated[Optional[str], typer.Argument(help="What to change, e.g. \"make it night\" (with --from: the recorded one).", show_default=False)]
Ref = Annotated[list[Path] | None, typer.Option(
    "--ref", metavar="IMAGE", help="Another image the instruction can draw on (\"put the hat from image 2 on her\"); repeatable, "
                  "FLUX.2 models take up to 9 besides the image.", show_default=False)]


@o.generation_command
def edit(common: o.Common, image: Image = None, instruction: Instruction = None, resize: Resize = "fit", mask: Mask = None,
         mask_from_alpha: MaskFromAlpha = False, mask_rect: MaskRect = None, invert_mask: InvertMask = False,
         mask_blur: MaskBlur = 4, mask_padding: MaskPadding = None, strength: Strength = None, ref: Ref = None) -> None:
    """Edit an image by instruction with FLUX.1 Kontext (-m flux-kontext) or FLUX.2 (-m flux2-klein, flux2-dev,
    which also take --ref images); the input's size is kept. With a mask, only the masked part changes
    (Kontext and FLUX.2 [klein] inpainting; --strength, default 1)."""
    from genimg.cli.generating import generate_and_report

    generate_and_report({"prompt": instruction, "task": "edit", "image": str(image) if image else None, "resize": resize,
                         "mask": str(mask) if mask else None, "mask_from_alpha": mask_from_alpha,
                         "mask_rect": mask_rect, "invert_mask": invert_mask, "mask_blur": mask_blur,
                         "mask_padding": mask_padding, "strength": strength,
                         "references": [str(r) for r in ref or []]}, common)
