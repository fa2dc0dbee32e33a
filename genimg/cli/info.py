"""``genimg info``: the generation settings stored in a PNG, and what ``--from`` reads of them."""

from __future__ import annotations

from pathlib import Path

import typer

from genimg.cli import options as o


def info(
    images: list[Path] = typer.Argument(..., help="PNGs written by genimg, A1111, Forge or ComfyUI.", show_default=False),
    json: o.Json = False,
) -> None:
    """Show the prompt and settings stored in images, and what `--from` would take from them. With --json: one
    object for one image, a list (each with its "path") for several."""
    import json as _json

    found = [_read(image) for image in images]  # every file checked before anything is printed
    if json:
        print(_json.dumps(found[0] if len(found) == 1 else [{"path": str(p), **m} for p, m in zip(images, found)],
                          indent=2, ensure_ascii=False))
        return
    for n, (image, meta) in enumerate(zip(images, found)):
        if len(images) > 1:
            print(f"{chr(10) if n else ''}== {image} ==")
        _show(meta)


def _read(image: Path) -> dict:
    from genimg.errors import GenimgError, UsageError
    from genimg.output.metadata import read_metadata, spec_from_png

    if image.is_dir():
        raise UsageError(f"{image} is a folder; give a PNG file")
    if not image.is_file():
        raise UsageError(f"{image} does not exist")
    try:
        meta = read_metadata(image)
    except OSError as e:
        raise UsageError(f"{image} is not a readable image ({e})") from None
    if not meta:
        raise UsageError(f"{image} holds no generation metadata")
    try:
        read = spec_from_png(image)
        meta["from"] = {"source": read.source, "spec": read.spec.to_dict(), "unmapped": read.unmapped,
                        "warnings": list(read.warnings)}
    except GenimgError as e:
        meta["from"] = {"error": str(e)}
    return meta


def _show(meta: dict) -> None:
    import json as _json

    print(meta.get("parameters_text") or _json.dumps(meta.get("genimg"), indent=2, ensure_ascii=False))
    taken = meta["from"]
    if "error" in taken:
        print(f"\n--from cannot use it: {taken['error']}")
        return
    for warning in taken["warnings"]:
        print(f"\nwarning: {warning}")
    print(f"\n--from reads ({'genimg record' if taken['source'] == 'genimg' else 'A1111 parameters'}): "
          + _json.dumps(taken["spec"], ensure_ascii=False))
    if taken["unmapped"]:
        print(f"not mapped: {', '.join(taken['unmapped'])}")
