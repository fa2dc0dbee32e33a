"""Fine-tune a trained course DDPM with the hand-written LoRA of ``lora.py``: the base run's EMA weights
frozen, only the low-rank adapters trained on a few hundred images of a new style (by default the
digits drawn with bold strokes), the same DDPM loss. ``genimg learn lora`` runs it; the run folder keeps
the adapter alone (``lora.safetensors``), its settings and losses, and sample grids before and after."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from genimg.learn.runs import Progress, loss_summary, train_steps
from genimg.learn.sampling import load_base


@dataclass
class LoRAConfig:
    dataset: str = "digits-bold"  # the new style (any dataset name of datasets.py, or a folder)
    images: int = 300  # how many of its images the fine-tune sees
    steps: int = 600
    batch: int = 64
    lr: float = 1e-3  # LoRA trains at a higher rate than full fine-tuning (only A and B move)
    rank: int = 4
    alpha: float = 4.0
    seed: int = 0


def train_lora(base_run: Path, run: Path, config: LoRAConfig, progress: Progress | None = None) -> dict:
    """Train the adapter; returns what was measured (trainable share, seconds, last loss)."""
    from genimg.files import atomic_save, save_safetensors
    from genimg.learn import datasets
    from genimg.learn.lora import inject, lora_state, trainable_share

    diffusion, base_config, classes = load_base(base_run, "LoRA fine-tunes")
    data = datasets.load(config.dataset, base_config.size, limit=config.images, seed=config.seed)
    torch.manual_seed(config.seed)
    adapted = inject(diffusion.model, rank=config.rank, alpha=config.alpha)
    trainable, total = trainable_share(diffusion.model)
    params = [p for p in diffusion.model.parameters() if p.requires_grad]
    generator = torch.Generator().manual_seed(config.seed)
    run.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    diffusion.model.train()

    def loss_of(step):
        index = torch.randint(len(data.images), (config.batch,), generator=generator)
        return diffusion(data.images[index], data.labels[index] if classes and data.labels is not None else None)

    losses = train_steps(loss_of, params, config.steps, config.lr, progress)
    diffusion.model.eval()
    save_safetensors(run / "lora.safetensors", lora_state(diffusion.model))
    record = {"base_run": str(base_run), "config": asdict(config), "layers": adapted, "trainable": trainable,
              "total": total, "seconds": round(time.perf_counter() - began, 1), **loss_summary(losses)}
    atomic_save(run / "lora.json", lambda tmp: tmp.write_text(json.dumps(record, indent=2)), overwrite=True)
    return record


def load_adapted(base_run: Path, run: Path, merged: bool = True):
    """The base model with the run's adapter put back (merged into the weights, or beside them)."""
    from safetensors.torch import load_file

    from genimg.learn.lora import inject, lora_layers

    diffusion, base_config, classes = load_base(base_run, "LoRA fine-tunes")
    record = json.loads((run / "lora.json").read_text())
    inject(diffusion.model, record["layers"], record["config"]["rank"], record["config"]["alpha"])
    missing, unexpected = diffusion.model.load_state_dict(load_file(str(run / "lora.safetensors")), strict=False)
    assert not unexpected and not [k for k in missing if "lora_" in k], (unexpected, missing)
    if merged:
        for layer in lora_layers(diffusion.model):
            layer.merge()
    return diffusion.eval(), base_config, classes


def ink(images: torch.Tensor) -> float:
    """The share of pixels drawn (above mid-grey): bolder strokes, more ink."""
    return float((images > 0).float().mean())


@torch.no_grad()
def compare(base_run: Path, run: Path, per_class: int = 8, steps: int = 20, seed: int = 0) -> dict:
    """Samples of the base model and of the adapted one from the same noise (DDIM, guidance 3), saved as
    ``before.png`` and ``after.png`` in ``run``; how much ink each draws against the style's own images,
    and how many the course's digit classifier reads as the digit asked for."""
    from genimg.learn import datasets
    from genimg.learn.metrics import train_digit_features
    from genimg.learn.pictures import save_grid

    record = json.loads((run / "lora.json").read_text())
    out = {}
    digits = datasets.load("digits", 16)
    judge = train_digit_features(digits.images, digits.labels)
    for name, merged in (("before", None), ("after", True)):
        diffusion, base_config, classes = load_base(base_run, "LoRA fine-tunes") if merged is None else load_adapted(base_run, run)
        y = torch.arange(classes).repeat_interleave(per_class) if classes else None
        n = len(y) if y is not None else 8 * per_class
        images = diffusion.sample((n, datasets.channels(base_config.dataset), base_config.size, base_config.size),
                                  y=y, guidance=3.0 if classes else 1.0,
                                  sampler="ddim", steps=steps, generator=torch.Generator().manual_seed(seed))
        save_grid(images, run / f"{name}.png", nrow=per_class)
        out[f"ink {name}"] = round(ink(images), 4)
        if y is not None and images.shape[1] == 1:
            out[f"read as asked {name}"] = round(float((judge(images).argmax(1) == y).float().mean()), 3)
    style = datasets.load(record["config"]["dataset"], base_config.size)
    out["ink of the style's images"] = round(ink(style.images), 4)
    out["ink of the base's data"] = round(ink(datasets.load(base_config.dataset, base_config.size).images), 4)
    return out
