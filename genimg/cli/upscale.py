"""``genimg upscale``: enlarge images with a GAN upscaler (spandrel), a Stable Diffusion upscaler, or
plain resampling; the built-in demo-upscaler works offline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from genimg.cli import options as o

UP = "Upscale"


def upscale(
    inputs: Annotated[list[Path], typer.Argument(help="Images, or folders of images.", show_default=False)],
    scale: Annotated[float, typer.Option("--scale", "-x", help="Enlarge this many times (the model's own scale is applied as often as needed, then resampled to the exact size).", rich_help_panel=UP)] = 4.0,
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Upscaler: demo-upscaler (default), lanczos, bicubic, sd-x4, sd-latent-x2, a .safetensors file spandrel knows (Real-ESRGAN, 4x-UltraSharp, SwinIR, HAT, DAT …), a diffusers upscaler folder or hub id.", rich_help_panel=UP)] = None,
    prompt: Annotated[str, typer.Option("--prompt", help="SD upscalers: what the image shows.", rich_help_panel=UP)] = "",
    negative: Annotated[str, typer.Option("--negative", "-n", help="SD upscalers: what to avoid.", rich_help_panel=UP)] = "",
    noise_level: Annotated[int, typer.Option("--noise-level", help="SD x4 upscaler: noise added to the input (0-350; more = more invented detail).", rich_help_panel=UP)] = 20,
    steps: Annotated[int, typer.Option("--steps", "-s", help="SD upscalers: denoising steps.", rich_help_panel=UP)] = 20,
    cfg: Annotated[float, typer.Option("--cfg", "-g", help="SD upscalers: guidance scale.", rich_help_panel=UP)] = 7.5,
    seed: Annotated[int, typer.Option("--seed", "-S", help="SD upscalers: seed.", rich_help_panel=UP)] = 0,
    tile: Annotated[Optional[int], typer.Option("--tile", help="Work in tiles of N input pixels (0: whole images; default: the preset's).", rich_help_panel=UP)] = None,
    tile_overlap: Annotated[int, typer.Option("--tile-overlap", help="Pixels tiles share, blended across.", rich_help_panel=UP)] = 32,
    restore_faces: o.RestoreFaces = None,
    face_strength: Annotated[float, typer.Option("--face-strength", help="How much of the restored face shows (A1111's visibility).", rich_help_panel=UP)] = 1.0,
    face_fidelity: Annotated[float, typer.Option("--face-fidelity", help="CodeFormer's weight: 0 the model's face, 1 closest to the image's.", rich_help_panel=UP)] = 0.5,
    allow_pickle: o.AllowPickle = False,
    preset: o.PresetName = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Folder (default ./outputs/upscaled/, files NAME-x4.png), or a .png for one image.", rich_help_panel=o.OUT)] = None,
    overwrite: o.Overwrite = False,
    json: o.Json = False,
    quiet: o.Quiet = False,
    server: o.Server = None,
    local: o.Local = False,
) -> None:
    """Upscale images (A1111's extras), faces restored after with --restore-faces; their generation settings are
    kept and the upscale recorded in the metadata. Images already upscaled in a folder are skipped."""
    import json as _json

    from genimg.cli.render import progress_reporter, stderr
    from genimg.serve.client import server_for, upscale_remote
    from genimg.serve.safety import is_path
    from genimg.upscale.run import UpscaleSettings, upscale_files

    settings = UpscaleSettings(scale=scale, model=model, prompt=prompt, negative=negative, noise_level=noise_level,
                               steps=steps, guidance=cfg, seed=seed, tile=tile, tile_overlap=tile_overlap,
                               allow_pickle=allow_pickle, preset=preset, restore_faces=restore_faces,
                               face_strength=face_strength, face_fidelity=face_fidelity)
    with progress_reporter(quiet) as report:
        def on_event(event, **info):
            if event == "skip":
                if not quiet:
                    stderr.print(f"skipped {info['path']} (exists)")
            else:
                report(event, **info)

        paths = [(what, name) for what, name in (("upscaler", model), ("face restorer", restore_faces))
                 if name and is_path(name)]
        address = server_for(server, local, paths)
        if address is not None:
            made = upscale_remote(address, inputs, settings, output, overwrite, on_event)
        else:
            made = upscale_files(inputs, settings, output, overwrite, on_event)
        written = 0
        try:
            for done in made:
                written += 1
                if json:
                    print(_json.dumps({"path": str(done.path), "source": str(done.source), "size": list(done.size),
                                       "upscaler": done.upscaler, "seconds": round(done.seconds, 4)}), flush=True)
                else:
                    print(f"{done.path}  {done.size[0]}x{done.size[1]}  {done.seconds:.2f}s", flush=True)
        except KeyboardInterrupt:
            from genimg.errors import Interrupted

            raise Interrupted(f"interrupted: {written} images upscaled (listed above), the one under way not "
                              "written; nothing is half-written") from None
