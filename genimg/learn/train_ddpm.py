"""Train the course's DDPM (Ho et al. 2020, Algorithm 1) with its settings at the top; checkpoints
every epoch and resumes exactly. ``genimg learn ddpm`` runs it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from genimg.learn.runs import (Progress, end_epoch, log_losses, one_cycle, open_run, read_losses, resume_training,
                               training_state)
from genimg.output.plots import loss_curve


@dataclass
class DDPMConfig:
    dataset: str = "digits"
    size: int = 16
    epochs: int = 150
    batch: int = 128
    lr: float = 2e-3
    schedule: str = "cosine"
    timesteps: int = 1000
    conditional: bool = True
    label_dropout: float = 0.1
    base: int = 32
    mults: tuple = (1, 2)
    ema_decay: float = 0.995
    seed: int = 0
    sample_every: int = 25
    limit: int | None = None
    kind: str = field(default="ddpm", init=False)


def build_diffusion(config: DDPMConfig, channels: int, num_classes: int | None):
    from genimg.learn.ddpm import GaussianDiffusion
    from genimg.learn.schedule import SCHEDULES
    from genimg.learn.unet import UNet

    model = UNet(channels=channels, base=config.base, mults=config.mults,
                 num_classes=num_classes if config.conditional else None)
    return GaussianDiffusion(model, SCHEDULES[config.schedule](config.timesteps), config.label_dropout)


def train_ddpm(run: Path, config: DDPMConfig, resume: bool = False, overwrite: bool = False,
               progress: Progress | None = None, stop_after_epoch: int | None = None) -> DDPMConfig:
    from genimg.learn import pictures
    from genimg.learn.ema import EMA

    config, data, classes = open_run(run, config, resume, overwrite)
    diffusion = build_diffusion(config, data.channels, classes)
    ema = EMA(diffusion.model, config.ema_decay)
    opt = torch.optim.AdamW(diffusion.model.parameters(), lr=config.lr)
    steps_per_epoch = (len(data.images) + config.batch - 1) // config.batch
    total_steps = steps_per_epoch * config.epochs
    sched = one_cycle(opt, config.lr, total_steps)
    data_gen = torch.Generator().manual_seed(config.seed)
    epoch = 0
    if resume:
        sched, epoch = resume_training(run, diffusion.model, ema, opt, sched, data_gen, config.lr, total_steps)
    else:
        pictures.forward_noising_strip(diffusion.schedule, data.images[:8], run / "forward_noising.png")
    began = time.perf_counter()
    while epoch < config.epochs:
        diffusion.model.train()
        order = torch.randperm(len(data.images), generator=data_gen)
        rows = []
        for i in range(steps_per_epoch):
            index = order[i * config.batch:(i + 1) * config.batch]
            y = data.labels[index] if classes else None
            loss = diffusion(data.images[index], y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            ema.update(diffusion.model)
            rows.append({"epoch": epoch + 1, "step": epoch * steps_per_epoch + i + 1, "loss": round(loss.item(), 6)})
        epoch += 1
        log_losses(run, rows)
        if epoch % config.sample_every == 0 or epoch == config.epochs:
            _ddpm_epoch_grid(diffusion, ema, classes, data, run / "samples" / f"epoch_{epoch:03d}.png")
        end_epoch(run, training_state(diffusion.model, ema, opt, sched, data_gen, epoch), rows, progress,
                  config.epochs, began)
        if stop_after_epoch is not None and epoch >= stop_after_epoch:
            break
    loss_curve(read_losses(run), run / "loss.png")
    return config


def _ddpm_epoch_grid(diffusion, ema, classes, data, path: Path) -> None:
    from genimg.learn.ddpm import GaussianDiffusion
    from genimg.learn.pictures import save_grid

    sampler = GaussianDiffusion(ema.model, diffusion.schedule)
    n = 8 * (classes or 8)
    y = torch.arange(classes).repeat_interleave(8) if classes else None
    images = sampler.sample((n, *data.images.shape[1:]), y=y, guidance=2.0 if classes else 1.0, sampler="ddim",
                            steps=50, generator=torch.Generator().manual_seed(0))
    save_grid(images, path, nrow=8)
