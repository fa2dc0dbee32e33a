"""Train the course's DCGAN (Radford et al. 2016), or its class-conditional twin, with its settings at
the top; checkpoints every epoch and resumes exactly. ``genimg learn dcgan`` runs it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from genimg.learn.runs import Progress, log_losses, open_run, read_losses, rng_state, set_rng_state
from genimg.output.plots import loss_curve


@dataclass
class GANConfig:
    dataset: str = "digits"
    size: int = 32
    epochs: int = 300
    batch: int = 64
    lr: float = 2e-4
    beta1: float = 0.5
    z_dim: int = 100
    features: int = 32
    label_smoothing: float = 0.0  # 0.1 trains D on 0.9 for real images (one-sided smoothing)
    conditional: bool = False  # a class-conditional pair (cGAN); the course's DCGAN is unconditional
    seed: int = 0
    sample_every: int = 25
    limit: int | None = None
    kind: str = field(default="dcgan", init=False)


def train_dcgan(run: Path, config: GANConfig, resume: bool = False, overwrite: bool = False,
                progress: Progress | None = None, stop_after_epoch: int | None = None) -> GANConfig:
    from genimg.learn import pictures
    from genimg.state_file import load_state, save_state
    from genimg.learn.dcgan import Discriminator, Generator, gan_step, init_weights, optimizers

    config, data, classes = open_run(run, config, resume, overwrite)
    g = Generator(config.z_dim, data.channels, config.size, config.features, classes)
    d = Discriminator(data.channels, config.size, config.features, classes)
    g.apply(init_weights)
    d.apply(init_weights)
    opt_g, opt_d = optimizers(g, d, config.lr, config.beta1)
    data_gen = torch.Generator().manual_seed(config.seed)
    # the same noise every epoch, so the grids show one sample changing; a conditional run draws a row per class
    fixed_z = torch.randn(8 * (classes or 8), config.z_dim, generator=torch.Generator().manual_seed(1))
    fixed_y = torch.arange(classes).repeat_interleave(8) if classes else None
    epoch = 0
    if resume:
        state = load_state(run / "checkpoint.safetensors")
        g.load_state_dict(state["generator"])
        d.load_state_dict(state["discriminator"])
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        set_rng_state(state["rng"], data_gen)
        epoch = state["epoch"]
    steps_per_epoch = len(data.images) // config.batch  # whole batches only: BatchNorm dislikes tiny ones
    began = time.perf_counter()
    while epoch < config.epochs:
        g.train()
        d.train()
        order = torch.randperm(len(data.images), generator=data_gen)
        rows = []
        for i in range(steps_per_epoch):
            index = order[i * config.batch:(i + 1) * config.batch]
            loss_d, loss_g = gan_step(g, d, opt_g, opt_d, data.images[index], real_label=1.0 - config.label_smoothing,
                                      labels=data.labels[index] if classes else None)
            rows.append({"epoch": epoch + 1, "step": epoch * steps_per_epoch + i + 1, "loss_d": round(loss_d, 6),
                         "loss_g": round(loss_g, 6)})
        epoch += 1
        log_losses(run, rows)
        if epoch % config.sample_every == 0 or epoch == config.epochs:
            g.eval()
            with torch.no_grad():
                pictures.save_grid(g(fixed_z, fixed_y), run / "samples" / f"epoch_{epoch:03d}.png")
        save_state(run / "checkpoint.safetensors", {
            "generator": g.state_dict(), "discriminator": d.state_dict(), "opt_g": opt_g.state_dict(),
            "opt_d": opt_d.state_dict(), "rng": rng_state(data_gen), "epoch": epoch})
        if progress:
            progress("epoch", epoch=epoch, total=config.epochs,
                     loss=sum(r["loss_g"] for r in rows) / max(1, len(rows)), seconds=time.perf_counter() - began)
        if stop_after_epoch is not None and epoch >= stop_after_epoch:
            break
    loss_curve(read_losses(run), run / "loss.png")
    return config
