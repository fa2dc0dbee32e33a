"""``genimg edit``: change an image by an instruction ("make it night", "remove the text")."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from genimg.cli import options as o
from genimg.cli.img2img import Resize

Image = Annotated[Path, typer.Argument(help="The image to edit.", show_default=False)]
Instruction = Annotated[str, typer.Argument(help="What to change, e.g. \"make it night\".", show_default=False)]


@o.generation_command
def edit(image: Image, instruction: Instruction, common: o.Common, resize: Resize = "fit") -> None:
    """Edit an image by instruction with FLUX.1 Kontext (-m flux-kontext); the input's size is kept."""
    from genimg.cli.generating import generate_and_report

    generate_and_report({"prompt": instruction, "task": "edit", "image": str(image), "resize": resize}, common)
