"""``genimg txt2img``: images from a text prompt."""

from __future__ import annotations

from genimg.cli import options as o


@o.generation_command
def txt2img(common: o.Common, prompt: o.Prompt = None, control: o.Controls = None) -> None:
    """Generate images from a text prompt."""
    from genimg.cli.generating import generate_and_report

    generate_and_report({"prompt": prompt, "control": control}, common)
