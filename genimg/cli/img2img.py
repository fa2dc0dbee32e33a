"""``genimg img2img``: repaint an image guided by a prompt."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from genimg.cli import options as o

Image = Annotated[Optional[Path], typer.Argument(help="The input image (with --from: the one the PNG records, if unchanged).", show_default=False)]
Strength = Annotated[Optional[float], typer.Option("--strength", "-t", help="How much to change: 0 keeps the input, 1 ignores it (default 0.75; inpaint 1.0).", rich_help_panel=o.GEN)]
Resize = Annotated[str, typer.Option("--resize", help="Fitting the input to --width/--height: fit (keep all, fill margins), crop or stretch.", rich_help_panel=o.GEN)]


@o.generation_command
def img2img(common: o.Common, image: Image = None, prompt: o.Prompt = None, strength: Strength = None,
            resize: Resize = "fit", control: o.Controls = None) -> None:
    """Generate variations of an image, steered by a prompt."""
    from genimg.cli.generating import generate_and_report

    generate_and_report({"prompt": prompt, "task": "img2img", "image": str(image) if image else None, "strength": strength,
                         "resize": resize, "control": control}, common)
