"""``genimg txt2img``: images from a text prompt."""

from __future__ import annotations

from genimg.cli import options as o


@o.generation_command
def txt2img(prompt: o.Prompt, common: o.Common) -> None:
    """Generate images from a text prompt."""
    from genimg.cli.generating import generate_and_report
    from genimg.spec import GenerationSpec

    generate_and_report(GenerationSpec(prompt=prompt, **common.spec_fields()), common)
