"""``genimg controlnet``: a new image that follows the composition of a control image."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from genimg.cli import options as o
from genimg.cli.img2img import Resize

CONTROL = "ControlNet"
ControlImage = Annotated[Path, typer.Argument(help="The control image (or a picture to take its edges from with --control canny).", show_default=False)]
ControlNet = Annotated[str, typer.Option("--controlnet", help="ControlNet model: a diffusers folder, a .safetensors file or a hub id.", show_default=False, rich_help_panel=CONTROL)]
Control = Annotated[str, typer.Option("--control", help="Preprocess the image: none (it already is the control map) or canny (its edges).", rich_help_panel=CONTROL)]
ControlScale = Annotated[float, typer.Option("--control-scale", help="How strongly the ControlNet steers (0 = not at all).", rich_help_panel=CONTROL)]


@o.generation_command
def controlnet(image: ControlImage, common: o.Common, controlnet: ControlNet, prompt: o.Prompt = None,
               control: Control = "none", control_scale: ControlScale = 1.0, resize: Resize = "fit") -> None:
    """Generate an image that follows a control image's edges, pose or depth, through a ControlNet
    (the shorthand of `txt2img --control TYPE=IMAGE,model=CONTROLNET`)."""
    from genimg.cli.generating import generate_and_report

    generate_and_report({"prompt": prompt, "task": "controlnet", "image": str(image), "controlnet": controlnet,
                         "control": control, "control_scale": control_scale, "resize": resize}, common)
