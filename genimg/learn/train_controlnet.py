"""Train a ControlNet (controlnet.py) for a trained course DDPM, with its settings at the top: the base
run's EMA weights locked, the copy of its encoder and the zero convolutions trained to follow the digits'
edge maps. ``genimg learn controlnet`` runs it; the run folder keeps the ControlNet alone
(``controlnet.safetensors``), its record, and a figure of maps, samples with them and samples without."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from genimg.learn.runs import Progress, loss_summary, train_steps
from genimg.learn.sampling import load_base

HELD_OUT = 200  # the last images of the dataset: their maps measure the ControlNet, never trained on


@dataclass
class ControlNetConfig:
    steps: int = 800
    batch: int = 64
    lr: float = 5e-4
    label_dropout: float = 0.5  # the paper drops half the prompts, so the copy learns to read the map alone
    seed: int = 0


def train_controlnet(base_run: Path, run: Path, config: ControlNetConfig, progress: Progress | None = None) -> dict:
    """Train the ControlNet; returns its record (trainable parameters, seconds, losses)."""
    from genimg.files import atomic_save, save_safetensors
    from genimg.learn import datasets
    from genimg.learn.controlnet import ControlledUNet, ControlNet, edge_map
    from genimg.learn.ddpm import GaussianDiffusion

    diffusion, base_config, classes = load_base(base_run, "a ControlNet steers")
    data = datasets.load(base_config.dataset, base_config.size)
    images, labels = data.images[:-HELD_OUT], None if data.labels is None else data.labels[:-HELD_OUT]
    maps = edge_map(images)
    torch.manual_seed(config.seed)
    controlnet = ControlNet(diffusion.model, maps.shape[1])
    controlled = ControlledUNet(diffusion.model, controlnet)
    trainer = GaussianDiffusion(controlled, diffusion.schedule, config.label_dropout)
    generator = torch.Generator().manual_seed(config.seed)
    run.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    controlnet.train()

    def loss_of(step):
        index = torch.randint(len(images), (config.batch,), generator=generator)
        controlled.control = maps[index]
        return trainer(images[index], labels[index] if classes and labels is not None else None)

    losses = train_steps(loss_of, controlnet.parameters(), config.steps, config.lr, progress)
    save_safetensors(run / "controlnet.safetensors", controlnet.state_dict())
    trainable = sum(p.numel() for p in controlnet.parameters())
    record = {"base_run": str(base_run), "config": asdict(config), "trainable": trainable,
              "base": sum(p.numel() for p in diffusion.model.parameters()),
              "seconds": round(time.perf_counter() - began, 1), **loss_summary(losses)}
    atomic_save(run / "controlnet.json", lambda tmp: tmp.write_text(json.dumps(record, indent=2)), overwrite=True)
    return record


def load_controlled(diffusion, config, run: Path):
    """A base run's model (its ``GaussianDiffusion`` and config, from ``load_base``) steered by the run's
    ControlNet: a ``GaussianDiffusion`` over a ``ControlledUNet`` sharing the base's weights."""
    from safetensors.torch import load_file

    from genimg.learn import datasets
    from genimg.learn.controlnet import ControlledUNet, ControlNet
    from genimg.learn.ddpm import GaussianDiffusion

    controlnet = ControlNet(diffusion.model, datasets.channels(config.dataset))
    controlnet.load_state_dict(load_file(str(run / "controlnet.safetensors")))
    return GaussianDiffusion(ControlledUNet(diffusion.model, controlnet.eval()), diffusion.schedule)


@torch.no_grad()
def compare(base_run: Path, run: Path, count: int = 100, steps: int = 20, seed: int = 0) -> dict:
    """Samples with no class asked for, from the same noise, with the edge maps of ``count`` held-out
    digits and without them: how many the course's digit classifier reads as the digit the map was made
    from (without a map, a tenth by chance), and how well their ink overlaps that digit's (intersection
    over union of the pixels above mid-grey).
    Saved as ``control.png``: maps, samples with them, samples without (rows of 16)."""
    from genimg.learn import datasets
    from genimg.learn.controlnet import edge_map
    from genimg.learn.metrics import train_digit_features
    from genimg.learn.pictures import save_grid

    base, config, classes = load_base(base_run, "a ControlNet steers")
    steered = load_controlled(base, config, run)  # the base's weights, loaded once, serve both
    data = datasets.load(config.dataset, config.size)
    source = data.images[-HELD_OUT:][:count]
    wanted = None if data.labels is None else data.labels[-HELD_OUT:][:count]
    maps = edge_map(source)
    steered.model.control = maps
    y = torch.full((len(maps),), classes) if classes else None  # "no class": the map alone says what to draw
    shape = (len(maps), *source.shape[1:])
    out = {}
    digits = config.dataset.startswith("digits")
    judge = train_digit_features(data.images, data.labels) if digits else None
    rows = [maps[:16]]
    for name, model in (("with the map", steered), ("without", base)):
        images = model.sample(shape, y=y, sampler="ddim", steps=steps, generator=torch.Generator().manual_seed(seed))
        rows.append(images[:16])
        if judge is not None:
            out[f"read as the map's digit, {name}"] = round(float((judge(images).argmax(1) == wanted).float().mean()), 3)
        drawn, meant = images > 0, source > 0  # the ink of the sample and of the digit the map came from
        out[f"ink overlap with the map's digit, {name}"] = round(float((drawn & meant).sum() / (drawn | meant).sum()), 3)
    save_grid(torch.cat(rows), run / "control.png", nrow=16)
    return out
