"""``genimg info``: the generation settings stored in a PNG."""

from __future__ import annotations

from pathlib import Path

import typer

from genimg.cli import options as o


def info(
    image: Path = typer.Argument(..., help="A PNG written by genimg, A1111 or ComfyUI."),
    json: o.Json = False,
) -> None:
    """Show the prompt and settings stored in an image."""
    from genimg.errors import UsageError
    from genimg.output.metadata import read_metadata

    if not image.is_file():
        raise UsageError(f"{image} does not exist")
    try:
        meta = read_metadata(image)
    except OSError as e:
        raise UsageError(f"{image} is not a readable image ({e})") from None
    if not meta:
        raise UsageError(f"{image} holds no generation metadata")
    if json:
        import json as _json

        print(_json.dumps(meta, indent=2, ensure_ascii=False))
    else:
        print(meta.get("parameters_text") or _json_dump(meta))


def _json_dump(meta: dict) -> str:
    import json as _json

    return _json.dumps(meta, indent=2, ensure_ascii=False)
