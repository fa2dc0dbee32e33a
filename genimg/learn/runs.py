"""What the course's training loops share: the run folder (config, checkpoint, loss log) and exact resume.

A run folder holds ``config.json``, ``checkpoint.safetensors`` (weights, EMA, optimizer, RNG and
counters), ``loss.csv`` and ``loss.png``, ``samples/epoch_NNN.png``, and for diffusion
``forward_noising.png``; ``genimg learn sample`` adds the reverse-process GIF.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import torch

from genimg.errors import UsageError

Progress = Callable[..., None]


def config_from_dict(data: dict, kinds: dict):
    """A run's config from its ``config.json``: ``kinds`` maps its ``kind`` to the trainer's config class."""
    data = dict(data)
    kind = data.pop("kind")
    if kind not in kinds:
        raise UsageError(f"the run is a {kind} run, not a {' or '.join(kinds)} run; give its own command")
    if "mults" in data:
        data["mults"] = tuple(data["mults"])
    return kinds[kind](**data)


def open_run(run: Path, config, resume: bool, overwrite: bool):
    """Start or resume a run: (its config, the dataset, the class count or None). Seeds torch first."""
    from genimg.learn import datasets

    config = check_run(run, config, resume, overwrite)
    torch.manual_seed(config.seed)
    data = datasets.load(config.dataset, config.size, config.limit, config.seed)  # a bad dataset: nothing written
    if not resume:
        start_run(run, config)
    return config, data, len(data.class_names) if config.conditional else None


# What a run folder holds before its first checkpoint: a folder of only these was a run that never got
# going (stopped, or failed at once), and a new run may take its place.
_BEFORE_A_CHECKPOINT = {"config.json", "samples", "forward_noising.png", "loss.csv", "loss.png",
                        "vae"}  # latent diffusion's first stage


def check_run(run: Path, config, resume: bool, overwrite: bool):
    """Check the run folder, writing nothing: a fresh one, one to resume (its own config wins), or one to
    replace. A folder with no checkpoint is no run to resume, and a new run may replace it."""
    from genimg.learn.datasets import LABELLED, check_dataset

    check_dataset(config.dataset)  # what it is comes before whether it has labels
    if config.conditional and config.dataset not in LABELLED:
        raise UsageError(f"dataset {config.dataset} has no labels; pass --unconditional, or use a labelled one "
                         f"({', '.join(LABELLED)})")

    config_file = run / "config.json"
    if resume:
        if not (run / "checkpoint.safetensors").is_file():
            raise UsageError(f"{run} has no checkpoint to resume; start a new run without --resume")
        saved = config_from_dict(json.loads(config_file.read_text()), {config.kind: type(config)})
        if config.epochs > saved.epochs:
            saved.epochs = config.epochs  # resuming may extend a run, never change what it is
        return saved
    from genimg.files import check_unused

    unfinished = run.is_dir() and {p.name for p in run.iterdir()} <= _BEFORE_A_CHECKPOINT
    check_unused(run, overwrite or unfinished, resume_with="--resume")
    return config


def start_run(run: Path, config) -> None:
    """A fresh run folder (replacing what :func:`check_run` allowed) with the run's config."""
    import shutil

    from genimg.files import atomic_save

    if run.exists():
        shutil.rmtree(run)
    (run / "samples").mkdir(parents=True, exist_ok=True)
    text = json.dumps(asdict(config), indent=2)
    atomic_save(run / "config.json", lambda tmp: tmp.write_text(text))


def log_losses(run: Path, rows: list[dict]) -> None:
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


def rng_state(data_gen: torch.Generator) -> dict:
    return {"torch": torch.get_rng_state(), "data": data_gen.get_state()}


def set_rng_state(state: dict, data_gen: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    data_gen.set_state(state["data"])


def one_cycle(opt, max_lr: float, total_steps: int):
    """The trainers' learning-rate schedule: one cycle (Smith 2018), warming up over the first 5%."""
    return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=total_steps, pct_start=0.05)


def resume_one_cycle(schedule, saved: dict, opt, max_lr: float, total_steps: int):
    """The schedule as a checkpoint left it (call after loading the optimizer's state). When --epochs
    lengthened the run, it is built anew for the new length and continues from the saved step on it
    (the saved one would end at the old length)."""
    if saved["total_steps"] == total_steps:
        schedule.load_state_dict(saved)
        return schedule
    return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=total_steps, pct_start=0.05,
                                               last_epoch=saved["last_epoch"] - 1)


def training_state(model, ema, opt, sched, data_gen: torch.Generator, epoch: int, **extra) -> dict:
    """What a checkpoint of a model trained with an EMA copy holds: both weights, the optimizer, the learning
    rate schedule, both random generators and the epoch (and ``extra``), so a resumed run equals an
    uninterrupted one."""
    return {"model": model.state_dict(), "ema": ema.model.state_dict(), "ema_updates": ema.updates,
            "optimizer": opt.state_dict(), "lr_schedule": sched.state_dict(), "rng": rng_state(data_gen),
            "epoch": epoch, **extra}


def resume_training(run: Path, model, ema, opt, sched, data_gen: torch.Generator, max_lr: float, total_steps: int):
    """Load what :func:`training_state` saved into the run's objects: (the schedule to go on with, the epoch)."""
    from genimg.state_file import load_state

    state = load_state(run / "checkpoint.safetensors")
    model.load_state_dict(state["model"])
    ema.model.load_state_dict(state["ema"])
    ema.updates = state["ema_updates"]
    opt.load_state_dict(state["optimizer"])
    sched = resume_one_cycle(sched, state["lr_schedule"], opt, max_lr, total_steps)
    set_rng_state(state["rng"], data_gen)
    return sched, state["epoch"]


def end_epoch(run: Path, state: dict, rows: list[dict], progress: Progress | None, total: int, began: float) -> None:
    """Save the epoch's checkpoint (``state`` names its ``epoch``), then report it: the mean loss of ``rows``."""
    from genimg.state_file import save_state

    save_state(run / "checkpoint.safetensors", state)
    if progress:
        progress("epoch", epoch=state["epoch"], total=total, loss=sum(r["loss"] for r in rows) / len(rows),
                 seconds=time.perf_counter() - began)


def train_steps(loss_of, params, steps: int, lr: float, progress: Progress | None) -> list[float]:
    """``steps`` AdamW steps at ``lr`` on ``params``, each on the loss ``loss_of(step)`` returns (the adapter
    trainers: LoRA, ControlNet), reported every 50 steps; returns the losses."""
    opt = torch.optim.AdamW(params, lr=lr)
    began, losses = time.perf_counter(), []
    for step in range(1, steps + 1):
        loss = loss_of(step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if progress and (step % 50 == 0 or step == steps):
            progress("epoch", epoch=step, total=steps, loss=sum(losses[-50:]) / len(losses[-50:]),
                     seconds=time.perf_counter() - began)
    return losses


def loss_summary(losses: list[float]) -> dict:
    """The mean loss of the first and of the last 50 steps (what an adapter's record keeps)."""
    return {"loss_first_50": sum(losses[:50]) / len(losses[:50]), "loss_last_50": sum(losses[-50:]) / len(losses[-50:])}
