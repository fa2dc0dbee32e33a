"""``genimg learn demo-model``, ``demo-upscaler``, ``demo-controlnet``: train the built-in demo assets from
scratch (registered on the ``learn`` app by :mod:`genimg.cli.learn`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from genimg.cli import options as o


def demo_model(
    output: Path = typer.Option(..., "--output", "-o", help="Folder to save the trained pipeline in."),
    seed: int = typer.Option(0, "--seed", help="Seed of the data, the weights and the noise."),
    unet_steps: Optional[int] = typer.Option(None, "--unet-steps", help="Denoiser training steps (default 6000)."),
    vae_steps: Optional[int] = typer.Option(None, "--vae-steps", help="VAE training steps (default 1200)."),
    decoder_steps: Optional[int] = typer.Option(None, "--decoder-steps", help="Decoder sharpening steps after the UNet (default 3000; 0 skips it)."),
    images: Optional[int] = typer.Option(None, "--images", help="Training images rendered (default 20000)."),
    batch: Optional[int] = typer.Option(None, "--batch", help="Images per UNet step (default 32); --vae-batch for the VAE stages."),
    vae_batch: Optional[int] = typer.Option(None, "--vae-batch", help="Images per VAE and decoder step (default 16)."),
    threads: int = typer.Option(2, "--threads", help="CPU threads for torch."),
    overwrite: o.Overwrite = False,
    quiet: o.Quiet = False,
) -> None:
    """Train the built-in demo model (SD1.x format, 64x64 shapes) from scratch: about an hour on 2 CPU cores.

    \b
    A smoke run of a few seconds:
      --unet-steps 2 --vae-steps 2 --decoder-steps 1
      --images 64 --batch 4 --vae-batch 4"""
    from dataclasses import replace

    from genimg.cli.render import progress_reporter
    from genimg.errors import UsageError
    from genimg.demo.model import DemoTrainingConfig, train_demo_model

    from genimg.files import check_unused

    check_unused(output, overwrite)
    given = {"unet_steps": unet_steps, "vae_steps": vae_steps, "decoder_steps": decoder_steps, "images": images,
             "batch": batch, "vae_batch": vae_batch}
    changes = {k: v for k, v in given.items() if v is not None}
    if any(v < (0 if k == "decoder_steps" else 1) for k, v in changes.items()):
        raise UsageError("--unet-steps, --vae-steps, --images, --batch and --vae-batch must be at least 1 "
                         "(--decoder-steps at least 0)")
    config = replace(DemoTrainingConfig(seed=seed, threads=threads), **changes)
    with progress_reporter(quiet) as report:
        record = train_demo_model(output, config, _training_progress(report))
    print(f"saved {output} ({record['seconds']['total']:.0f} s, VAE reconstruction MSE {record['vae_reconstruction_mse']:.4f})")


def demo_upscaler(
    output: Path = typer.Option(..., "--output", "-o", help="Folder to save the trained upscaler in."),
    seed: int = typer.Option(0, "--seed", help="Seed of the patches, the weights and the batches."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Steps of the L1 phase (default 8000)."),
    polish_steps: Optional[int] = typer.Option(None, "--polish-steps", min=0, help="Steps of the MSE polish that follows (default 1500)."),
    l1_weights: Optional[Path] = typer.Option(None, "--l1-weights", exists=True, dir_okay=False, help="Start the polish from these weights of an L1 phase run before, skipping that phase."),
    batch: Optional[int] = typer.Option(None, "--batch", help="Patches per step (default 16)."),
    photo_patches: Optional[int] = typer.Option(None, "--photo-patches", help="Patches cut from the training photographs (default 3000)."),
    shape_patches: Optional[int] = typer.Option(None, "--shape-patches", help="Patches of rendered shapes (default 1500)."),
    threads: int = typer.Option(2, "--threads", help="CPU threads for torch."),
    overwrite: o.Overwrite = False,
    quiet: o.Quiet = False,
) -> None:
    """Train the built-in x4 upscaler (Real-ESRGAN's compact network) from scratch: about 20 minutes on 2 CPU cores."""
    from dataclasses import replace

    from genimg.cli.render import progress_reporter
    from genimg.demo.upscaler import UpscalerTrainingConfig, train_upscaler
    from genimg.errors import UsageError
    from genimg.files import check_unused

    check_unused(output, overwrite)
    given = {"steps": steps, "batch": batch, "photo_patches": photo_patches, "shape_patches": shape_patches}
    changes = {k: v for k, v in given.items() if v is not None}
    if any(v < 1 for v in changes.values()):
        raise UsageError("--steps, --batch, --photo-patches and --shape-patches must be at least 1")
    config = replace(UpscalerTrainingConfig(seed=seed, threads=threads), **changes)
    if polish_steps is not None:
        config = replace(config, polish_steps=polish_steps)
    with progress_reporter(quiet) as report:
        record = train_upscaler(output, config, _training_progress(report), l1_weights)
    print(f"saved {output} ({record['seconds']['total']:.0f} s, final loss {', '.join(f'{k} {v:.5f}' for k, v in record['final_loss'].items())})")


def demo_controlnet(
    output: Path = typer.Option(..., "--output", "-o", help="Folder to save the trained ControlNet in."),
    model: str = typer.Option("demo", "--model", "-m", help="The demo pipeline to steer (alias or folder)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the data, the weights and the noise."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Training steps (default 3000)."),
    images: Optional[int] = typer.Option(None, "--images", help="Training images rendered (default 8000)."),
    threads: int = typer.Option(2, "--threads", help="CPU threads for torch."),
    overwrite: o.Overwrite = False,
    quiet: o.Quiet = False,
) -> None:
    """Train a ControlNet for the demo model on the shapes' Canny edges: about 20 minutes on 2 CPU cores."""
    from dataclasses import replace

    from genimg.cli.render import progress_reporter
    from genimg.errors import UsageError
    from genimg.demo.controlnet import DemoControlNetConfig, train_demo_controlnet
    from genimg.models import resolve_model
    from genimg.models.families import FAMILIES
    from genimg.models.resolve import aliases
    from genimg.files import check_unused

    ref, demo = resolve_model(model), aliases()["demo"]["family"]  # the ControlNet is of the demo model's kind
    if ref.kind != "folder" or ref.family != demo:
        raise UsageError(f"--model {model} must be a {FAMILIES[demo].label} pipeline folder such as the demo model")
    changes = {k: v for k, v in {"steps": steps, "images": images}.items() if v is not None}
    for key, value in changes.items():
        if value < 1:
            raise UsageError(f"--{key} must be at least 1 (got {value})")
    check_unused(output, overwrite)
    config = replace(DemoControlNetConfig(seed=seed, threads=threads), **changes)
    with progress_reporter(quiet) as report:
        record = train_demo_controlnet(Path(ref.location), output, config, _training_progress(report))
    print(f"saved {output} ({record['seconds']:.0f} s)")


def _training_progress(report):
    tasks = {}

    def on_event(event, stage, step, total, loss):
        report.note(f"training {stage} step {step}/{total} (loss {loss:.4f})")
        progress = report.progress
        if progress is None:
            return
        if stage not in tasks:
            tasks[stage] = progress.add_task(f"training {stage}", total=total)
        progress.update(tasks[stage], completed=step, description=f"training {stage} (loss {loss:.4f})")

    return on_event
