"""Training loops for the teaching models, with checkpoints, exact resume and pictures per epoch.

A run folder holds ``config.json``, ``checkpoint.safetensors`` (weights, EMA, optimizer, RNG and
counters), ``loss.csv`` and ``loss.png``, ``samples/epoch_NNN.png``, and for diffusion
``forward_noising.png``; ``genimg learn sample`` adds the reverse-process GIF.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch

from genimg.errors import UsageError

Progress = Callable[..., None]


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


CONFIGS = {"ddpm": DDPMConfig, "dcgan": GANConfig}


def config_from_dict(data: dict):
    data = dict(data)
    kind = data.pop("kind")
    if "mults" in data:
        data["mults"] = tuple(data["mults"])
    return CONFIGS[kind](**data)


def prepare_run(run: Path, config, resume: bool, overwrite: bool):
    """Check the run folder: a fresh one, one to resume (its own config wins), or one to replace."""
    import shutil

    from genimg.learn.datasets import LABELLED

    if config.conditional and config.dataset not in LABELLED:
        raise UsageError(f"dataset {config.dataset} has no labels; pass --unconditional, or use a labelled one "
                         f"({', '.join(LABELLED)})")

    config_file = run / "config.json"
    if resume:
        if not (run / "checkpoint.safetensors").is_file():
            raise UsageError(f"{run} has no checkpoint to resume; start a new run without --resume")
        saved = config_from_dict(json.loads(config_file.read_text()))
        if config.epochs > saved.epochs:
            saved.epochs = config.epochs  # resuming may extend a run, never change what it is
        return saved
    from genimg.output.write import check_folder

    check_folder(run, "run folder")
    if run.exists() and any(run.iterdir()):
        if not overwrite:
            raise UsageError(f"{run} already holds a run; pass --resume to continue it or --overwrite to start again")
        shutil.rmtree(run)
    (run / "samples").mkdir(parents=True, exist_ok=True)
    config_file.write_text(json.dumps(asdict(config), indent=2))
    return config


def _log_losses(run: Path, rows: list[dict]) -> None:
    path = run / "loss.csv"
    new = not path.exists()
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        if new:
            writer.writeheader()
        writer.writerows(rows)


def read_losses(run: Path) -> dict[str, list[float]]:
    with open(run / "loss.csv") as f:
        rows = list(csv.DictReader(f))
    keys = [k for k in rows[0] if k not in ("epoch", "step")] if rows else []
    return {k: [float(r[k]) for r in rows] for k in keys}


def _rng_state(data_gen: torch.Generator) -> dict:
    return {"torch": torch.get_rng_state(), "data": data_gen.get_state()}


def _set_rng_state(state: dict, data_gen: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    data_gen.set_state(state["data"])


def build_diffusion(config: DDPMConfig, channels: int, num_classes: int | None):
    from genimg.learn.ddpm import GaussianDiffusion
    from genimg.learn.schedule import SCHEDULES
    from genimg.learn.unet import UNet

    model = UNet(channels=channels, base=config.base, mults=config.mults,
                 num_classes=num_classes if config.conditional else None)
    return GaussianDiffusion(model, SCHEDULES[config.schedule](config.timesteps), config.label_dropout)


def train_ddpm(run: Path, config: DDPMConfig, resume: bool = False, overwrite: bool = False,
               progress: Progress | None = None, stop_after_epoch: int | None = None) -> DDPMConfig:
    from genimg.learn import datasets, pictures
    from genimg.learn.checkpoint import load_state, save_state
    from genimg.learn.ema import EMA

    config = prepare_run(run, config, resume, overwrite)
    torch.manual_seed(config.seed)
    data = datasets.load(config.dataset, config.size, config.limit, config.seed)
    classes = len(data.class_names) if config.conditional else None
    diffusion = build_diffusion(config, data.channels, classes)
    ema = EMA(diffusion.model, config.ema_decay)
    opt = torch.optim.AdamW(diffusion.model.parameters(), lr=config.lr)
    steps_per_epoch = (len(data.images) + config.batch - 1) // config.batch
    total_steps = steps_per_epoch * config.epochs
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=total_steps, pct_start=0.05)
    data_gen = torch.Generator().manual_seed(config.seed)
    epoch = 0
    if resume:
        state = load_state(run / "checkpoint.safetensors")
        diffusion.model.load_state_dict(state["model"])
        ema.model.load_state_dict(state["ema"])
        ema.updates = state["ema_updates"]
        opt.load_state_dict(state["optimizer"])
        fresh = sched.total_steps, sched._schedule_phases
        sched.load_state_dict(state["lr_schedule"])
        if sched.total_steps != fresh[0]:
            # --epochs lengthened the run: the one-cycle schedule is rebuilt for the new length and
            # continues from the current step on it (the saved one would end at the old length).
            sched.total_steps, sched._schedule_phases = fresh
        _set_rng_state(state["rng"], data_gen)
        epoch = state["epoch"]
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
        _log_losses(run, rows)
        if epoch % config.sample_every == 0 or epoch == config.epochs:
            _ddpm_epoch_grid(diffusion, ema, classes, data, run / "samples" / f"epoch_{epoch:03d}.png")
        save_state(run / "checkpoint.safetensors", {
            "model": diffusion.model.state_dict(), "ema": ema.model.state_dict(), "ema_updates": ema.updates,
            "optimizer": opt.state_dict(), "lr_schedule": sched.state_dict(), "rng": _rng_state(data_gen),
            "epoch": epoch})
        if progress:
            progress("epoch", epoch=epoch, total=config.epochs, loss=sum(r["loss"] for r in rows) / len(rows),
                     seconds=time.perf_counter() - began)
        if stop_after_epoch is not None and epoch >= stop_after_epoch:
            break
    pictures.loss_curve(read_losses(run), run / "loss.png")
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


def train_dcgan(run: Path, config: GANConfig, resume: bool = False, overwrite: bool = False,
                progress: Progress | None = None, stop_after_epoch: int | None = None) -> GANConfig:
    from genimg.learn import datasets, pictures
    from genimg.learn.checkpoint import load_state, save_state
    from genimg.learn.dcgan import Discriminator, Generator, gan_step, init_weights, optimizers

    config = prepare_run(run, config, resume, overwrite)
    torch.manual_seed(config.seed)
    data = datasets.load(config.dataset, config.size, config.limit, config.seed)
    classes = len(data.class_names) if config.conditional else None
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
        _set_rng_state(state["rng"], data_gen)
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
        _log_losses(run, rows)
        if epoch % config.sample_every == 0 or epoch == config.epochs:
            g.eval()
            with torch.no_grad():
                pictures.save_grid(g(fixed_z, fixed_y), run / "samples" / f"epoch_{epoch:03d}.png")
        save_state(run / "checkpoint.safetensors", {
            "generator": g.state_dict(), "discriminator": d.state_dict(), "opt_g": opt_g.state_dict(),
            "opt_d": opt_d.state_dict(), "rng": _rng_state(data_gen), "epoch": epoch})
        if progress:
            progress("epoch", epoch=epoch, total=config.epochs,
                     loss=sum(r["loss_g"] for r in rows) / max(1, len(rows)), seconds=time.perf_counter() - began)
        if stop_after_epoch is not None and epoch >= stop_after_epoch:
            break
    pictures.loss_curve(read_losses(run), run / "loss.png")
    return config
