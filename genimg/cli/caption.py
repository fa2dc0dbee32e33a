"""``genimg caption``: a caption file beside each image of a folder (kohya's layout), for LoRA training."""

from __future__ import annotations

import json as jsonlib
from pathlib import Path
from typing import Annotated, Optional

import typer

from genimg.cli import options as o


def caption(
    folder: Annotated[Path, typer.Argument(help="A folder of images (kohya's N_name subfolders too).", show_default=False)],
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Captioner: blip (default, or your `captioner` setting), blip-large, florence2, florence2-large, wd14 (booru tags), wd14-swinv2, wd14-convnext, a hub id in the cache, or a model folder.")] = None,
    prefix: Annotated[str, typer.Option("--prefix", help="Put this first in every caption (a trigger word: 'sks dog').")] = "",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Caption images that have a caption already, replacing it.")] = False,
    json: o.Json = False,
    quiet: o.Quiet = False,
) -> None:
    """Write NAME.txt beside each image of FOLDER that has no caption yet."""
    from genimg.caption import caption_folder, images_of, load_captioner
    from genimg.cli.render import progress_reporter

    total = len(images_of(folder))  # a missing folder is one line before the model loads
    with progress_reporter(quiet) as report:
        report("load", model=model or "captioner")
        captioner = load_captioner(model)
        report("loaded", model=captioner.name)
        for done, made in enumerate(caption_folder(folder, captioner, prefix, overwrite), 1):
            report("image", done=done, total=total)
            if json:
                print(jsonlib.dumps({"image": str(made.image), "caption_file": str(made.text_file),
                                     "caption": made.caption, "skipped": made.caption is None}, ensure_ascii=False))
            elif made.caption is not None:
                print(f"{made.text_file}  {made.caption}", flush=True)
