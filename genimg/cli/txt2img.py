"""``genimg txt2img``: images from a text prompt."""

from __future__ import annotations

from genimg.cli import options as o


from typing import Annotated, Optional

import typer

HIRES = "Hires fix"


@o.generation_command
def txt2img(
    common: o.Common,
    prompt: o.Prompt = None,
    control: o.Controls = None,
    hires: Annotated[Optional[float], typer.Option("--hires", help="Hires fix: generate at the base size, upscale by this much, repaint with img2img.", rich_help_panel=HIRES)] = None,
    hires_strength: Annotated[Optional[float], typer.Option("--hires-strength", help="Hires fix: img2img strength of the second pass (default 0.5).", rich_help_panel=HIRES)] = None,
    hires_steps: Annotated[Optional[int], typer.Option("--hires-steps", help="Hires fix: steps of the second pass (default: --steps).", rich_help_panel=HIRES)] = None,
    hires_upscaler: Annotated[Optional[str], typer.Option("--hires-upscaler", help="Hires fix: lanczos (default), demo-upscaler, or any upscaler `genimg upscale` takes.", rich_help_panel=HIRES)] = None,
    xyz: Annotated[Optional[list[str]], typer.Option("--xyz", metavar="KEY=V1,V2,...", help="X/Y/Z plot: vary a setting along an axis (repeat for Y and Z): steps=10,20 · cfg=4-8 (+2) · sampler=Euler a,DDIM · prompt=red,blue (S/R). Every combination and a labelled grid per Z go into the -o folder.", rich_help_panel="X/Y/Z plot")] = None,
) -> None:
    """Generate images from a text prompt."""
    from genimg.cli.generating import generate_and_report, plot_and_report

    own = {"prompt": prompt, "control": control, "hires": hires, "hires_strength": hires_strength,
           "hires_steps": hires_steps, "hires_upscaler": hires_upscaler}
    if xyz or common.from_image is not None:
        if plot_and_report(own, common, xyz or ()):
            return
    generate_and_report(own, common)
