"""``genimg learn``: train models from scratch on a CPU (the built-in demo model, the course's DDPM and DCGAN)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from genimg.cli import options as o

app = typer.Typer(help="Train small models from scratch: the demo model, and the course's DDPM and DCGAN.",
                  no_args_is_help=True)


@app.command("demo-model")
def demo_model(
    output: Path = typer.Option(..., "--output", "-o", help="Folder to save the trained pipeline in."),
    seed: int = typer.Option(0, "--seed", help="Seed of the data, the weights and the noise."),
    unet_steps: Optional[int] = typer.Option(None, "--unet-steps", help="Denoiser training steps (default 6000)."),
    vae_steps: Optional[int] = typer.Option(None, "--vae-steps", help="VAE training steps (default 1200)."),
    images: Optional[int] = typer.Option(None, "--images", help="Training images rendered (default 20000)."),
    threads: int = typer.Option(2, "--threads", help="CPU threads for torch."),
    overwrite: o.Overwrite = False,
    quiet: o.Quiet = False,
) -> None:
    """Train the built-in demo model (SD1.x format, 64x64 shapes) from scratch: about 40 minutes on 2 CPU cores."""
    from dataclasses import replace

    from genimg.cli.render import progress_reporter
    from genimg.errors import UsageError
    from genimg.learn.demo_model import DemoTrainingConfig, train_demo_model

    if output.exists() and any(output.iterdir()) and not overwrite:
        raise UsageError(f"{output} is not empty; pass --overwrite to replace it, or choose another -o")
    changes = {k: v for k, v in {"unet_steps": unet_steps, "vae_steps": vae_steps, "images": images}.items() if v}
    config = replace(DemoTrainingConfig(seed=seed, threads=threads), **changes)
    with progress_reporter(quiet) as report:
        record = train_demo_model(output, config, _training_progress(report))
    print(f"saved {output} ({record['seconds']['total']:.0f} s, VAE reconstruction MSE {record['vae_reconstruction_mse']:.4f})")


def _training_progress(report):
    tasks = {}

    def on_event(event, stage, step, total, loss):
        progress = report.progress
        if progress is None:
            return
        if stage not in tasks:
            tasks[stage] = progress.add_task(f"training {stage}", total=total)
        progress.update(tasks[stage], completed=step, description=f"training {stage} (loss {loss:.4f})")

    return on_event
