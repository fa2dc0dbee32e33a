"""A LoRA training run's folder: the check that it may be written (or resumed), the loss log, TensorBoard,
checkpoints (everything exact resume needs: LoRA, optimizer, schedule, scaler, EMA, step) and the run's
record (``genimg_lora.json``)."""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import asdict
from pathlib import Path

import torch

from genimg.errors import UsageError

RUN_FILE = "genimg_lora.json"
CHECKPOINTS = "checkpoints"


def prepare_output(out: Path, resume: str | None, overwrite: bool, main_process: bool = True) -> Path | None:
    """The checkpoint to resume from (or None); refuses to write into another run's folder. Every
    process checks (so all stop alike on bad input); only the main one removes an overwritten run."""
    ckpts = sorted((out / CHECKPOINTS).glob("step-*.safetensors")) if out.is_dir() else []
    if resume:
        path = ckpts[-1] if resume == "latest" and ckpts else Path(resume) if resume != "latest" else None
        if path is None or not path.is_file():
            raise UsageError(f"nothing to resume in {out}: no checkpoint found; start without --resume")
        return path
    from genimg.files import check_unused

    check_unused(out, overwrite, resume_with="--resume latest")
    if out.exists() and main_process:
        shutil.rmtree(out)
    return None


def write_record(out: Path, run, result: dict) -> None:
    from genimg.files import atomic_save

    text = json.dumps({"config": asdict(run.config), "base_model": model_record(run.ref), "result": result}, indent=2)
    atomic_save(out / RUN_FILE, lambda tmp: tmp.write_text(text), overwrite=True)


def saved_result(out: Path) -> dict:
    """What the run's record says so far (a resumed run keeps its loss before training)."""
    try:
        return json.loads((out / RUN_FILE).read_text()).get("result", {})
    except (OSError, ValueError):
        return {}


def model_record(ref) -> dict:
    return {"ref": ref.ref, "kind": ref.kind, "location": ref.location, "family": ref.family, "hash": ref.model_hash()}


def named_trainable(trained):
    return [(f"{i}.{n}", p) for i, m in enumerate(trained) for n, p in m.named_parameters() if p.requires_grad]


def tensorboard_writer(out: Path):
    """A TensorBoard writer for ``OUT/tensorboard`` when tensorboard is installed (the CSV log is always written)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # torch's writer needs the tensorboard package
        return None
    return SummaryWriter(str(out / "tensorboard"))


def log_step(out: Path, step: int, epoch: int, loss: float, lr: float) -> None:
    path = out / "loss.csv"
    new = not path.exists()
    with open(path, "a", newline="") as f:
        writer = csv.writer(f)
        if new:
            writer.writerow(["step", "epoch", "loss", "lr"])
        writer.writerow([step, epoch, f"{loss:.6f}", f"{lr:.3e}"])


def trim_log(out: Path, step: int) -> None:
    """The loss log cut back to ``step``: a resumed run logs the steps after its checkpoint again."""
    path = out / "loss.csv"
    if not path.is_file():
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    kept = [rows[0], *(row for row in rows[1:] if int(row[0]) <= step)]
    from genimg.files import atomic_save

    def write(tmp):
        with open(tmp, "w", newline="") as f:
            csv.writer(f).writerows(kept)

    atomic_save(path, write, overwrite=True)


def losses(out: Path) -> list[float]:
    with open(out / "loss.csv") as f:
        return [float(row["loss"]) for row in csv.DictReader(f)]


def save_checkpoint(out, step, trained, optimizer, lr_schedule, ema, scaler, keep) -> Path:
    from genimg.state_file import save_state

    folder = out / CHECKPOINTS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"step-{step:06d}.safetensors"
    names = [n for n, _ in named_trainable(trained)]
    save_state(path, {"lora": {n: p.detach() for n, p in named_trainable(trained)}, "optimizer": optimizer.state_dict(),
                      "lr_schedule": lr_schedule.state_dict(), "scaler": scaler.state_dict() if scaler is not None else {},
                      "ema": dict(zip(names, ema.shadow_params)) if ema else {},
                      "ema_step": ema.optimization_step if ema else 0, "step": step})
    for old in sorted(folder.glob("step-*.safetensors"))[:-keep]:
        old.unlink()
    return path


def load_checkpoint(path, trained, optimizer, lr_schedule, ema, scaler) -> int:
    from genimg.state_file import load_state

    state = load_state(path)
    with torch.no_grad():
        for name, p in named_trainable(trained):
            p.copy_(state["lora"][name])
    optimizer.load_state_dict(state["optimizer"])
    lr_schedule.load_state_dict(state["lr_schedule"])
    if state.get("scaler") and scaler is not None:
        scaler.load_state_dict(state["scaler"])
    if ema is not None and state["ema"]:
        with torch.no_grad():
            for shadow, (name, _) in zip(ema.shadow_params, named_trainable(trained)):
                shadow.copy_(state["ema"][name])
        ema.optimization_step = int(state["ema_step"])
    return int(state["step"])
