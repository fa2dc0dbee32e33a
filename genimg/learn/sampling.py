"""Sample from a trained teaching run: images, and the GIF of the reverse process."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from genimg.errors import UsageError


@dataclass
class SampleRequest:
    count: int = 64
    label: int | None = None  # a class index; None = every class in turn (conditional) or unconditional
    guidance: float = 3.0
    sampler: str = "ddim"
    steps: int = 50
    eta: float = 0.0
    seed: int = 0
    gif: bool = True


def load_run(run: Path):
    from genimg.learn.runs import config_from_dict
    from genimg.learn.train_dcgan import GANConfig
    from genimg.learn.train_ddpm import DDPMConfig

    if not (run / "config.json").is_file() or not (run / "checkpoint.safetensors").is_file():
        raise UsageError(f"{run} is not a training run (no config.json and checkpoint.safetensors); "
                         "train one with `genimg learn ddpm` or `genimg learn dcgan`")
    return config_from_dict(json.loads((run / "config.json").read_text()), {"ddpm": DDPMConfig, "dcgan": GANConfig})


def sample_run(run: Path, request: SampleRequest) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(images, frames of the reverse process) from the run's EMA weights (DDPM) or generator (DCGAN)."""
    from genimg.learn import datasets
    from genimg.state_file import load_state

    config = load_run(run)
    state = load_state(run / "checkpoint.safetensors")
    generator = torch.Generator().manual_seed(request.seed)
    channels = 3 if config.dataset == "shapes" or config.dataset not in datasets.NAMED else 1
    if config.kind == "dcgan":
        from genimg.learn.dcgan import Generator

        # the first layer reads the noise and, for a conditional run, the one-hot class beside it
        classes = state["generator"]["net.0.weight"].shape[0] - config.z_dim or None
        g = Generator(config.z_dim, channels, config.size, config.features, classes)
        g.load_state_dict(state["generator"])
        g.eval()
        y = _labels(request, classes)
        with torch.no_grad():
            return g(torch.randn(request.count, config.z_dim, generator=generator), y), []
    from genimg.learn.ddpm import GaussianDiffusion
    from genimg.learn.train_ddpm import build_diffusion

    classes = state["ema"]["class_emb.weight"].shape[0] - 1 if "class_emb.weight" in state["ema"] else None
    diffusion = build_diffusion(config, channels, classes)
    diffusion.model.load_state_dict(state["ema"])
    diffusion.model.eval()
    y = _labels(request, classes)
    frames: list[torch.Tensor] = []
    every = max(1, (config.timesteps if request.sampler == "ddpm" else request.steps) // 40)

    def keep(i, x):
        if request.gif and i % every == 0:
            frames.append(x.clamp(-1, 1).clone())

    images = GaussianDiffusion(diffusion.model, diffusion.schedule).sample(
        (request.count, channels, config.size, config.size), y=y, guidance=request.guidance if classes else 1.0,
        sampler=request.sampler, steps=request.steps, eta=request.eta, generator=generator, on_step=keep)
    frames.append(images)
    return images, frames


def _labels(request: SampleRequest, classes: int | None) -> torch.Tensor | None:
    """The class of each image: the one asked for, or every class in turn; None for an unconditional run."""
    if not classes:
        if request.label is not None:
            raise UsageError("this run was trained without classes; leave out --class")
        return None
    if request.label is not None and not 0 <= request.label < classes:
        raise UsageError(f"--class must be between 0 and {classes - 1} for this run")
    return torch.full((request.count,), request.label) if request.label is not None else torch.arange(request.count) % classes
