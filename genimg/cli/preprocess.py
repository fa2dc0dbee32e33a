"""``genimg preprocess``: a control map on its own, to inspect or edit before a ControlNet uses it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from genimg.cli import options as o


def preprocess(
    kind: Annotated[str, typer.Argument(metavar="TYPE", help="none, canny, tile, depth, seg, depth_midas, softedge, scribble, softedge_pidinet, scribble_pidinet, lineart, lineart_coarse, lineart_anime, mlsd, normal, openpose, openpose_full, shuffle, mediapipe_face.", show_default=False)],
    inputs: Annotated[list[Path], typer.Argument(help="Images, or folders of images.", show_default=False)],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Folder (default ./outputs/controls/, files NAME-TYPE.png), or a .png for one image.", rich_help_panel=o.OUT)] = None,
    detect_resolution: Annotated[int, typer.Option("--detect-resolution", min=64, help="The detector's working resolution (shorter side); the map comes back at the image's size.")] = 512,
    settings: Annotated[Optional[list[str]], typer.Option("--set", "-s", metavar="KEY=VALUE", help="A setting of the preprocessor, repeatable: canny low, high (A1111's 100, 200); tile down_sampling_rate; mlsd thr_v, thr_d; softedge, scribble and their _pidinet forms safe; depth_midas a, bg_th; every controlnet-aux detector resolution (as --detect-resolution).", show_default=False)] = None,
    allow_pickle: o.AllowPickle = False,
    overwrite: o.Overwrite = False,
    json: o.Json = False,
    quiet: o.Quiet = False,
) -> None:
    """Make control maps (edges, depth, pose, line art …) from images, as `--control TYPE=IMAGE` would."""
    from genimg.cli.render import progress_reporter
    from genimg.preprocess_files import preprocess_files
    from genimg.errors import UsageError

    given = {}
    for text in settings or []:
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set {text!r}: write KEY=VALUE, e.g. --set low=50")
        given[key.strip()] = value.strip()
    with progress_reporter(quiet) as report:
        for source, path in preprocess_files(kind, inputs, output, allow_pickle, detect_resolution, overwrite, report,
                                             given):
            if json:
                import json as _json

                print(_json.dumps({"source": str(source), "path": str(path), "type": kind}))
            elif not quiet:
                print(path)
