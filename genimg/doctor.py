"""What a bug report needs: versions, devices and their memory, the preset ``auto`` picks and why,
optional accelerators, folders with their free space, and the hub settings. Never fails: whatever
cannot be found or asked is reported as missing, with the reason."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import platform
import shutil
import sys
from pathlib import Path

PACKAGES = ("torch", "diffusers", "transformers", "accelerate", "peft", "safetensors", "huggingface_hub",
            "spandrel", "typer", "rich")
# Optional: each speeds up or unlocks something when present.
ACCELERATORS = {"xformers": "memory-efficient attention", "bitsandbytes": "int8/nf4 quantization (CUDA)",
                "torchao": "quantization and fp8", "triton": "torch.compile on CUDA", "gguf": "GGUF denoisers (--denoiser)"}


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _guarded(what):
    """``what()``, or ``{"error": …}`` if it raises: the doctor reports, it does not crash."""
    try:
        return what()
    except Exception as e:  # noqa: BLE001 - any failure is a finding
        return {"error": f"{type(e).__name__}: {(str(e).splitlines() or [''])[0]}"}


def _devices() -> dict:
    import torch

    from genimg.device import compiler_missing, cpu_has_bf16, cpu_kind, openvino_missing
    from genimg.openvino_unet import RECIPES

    out = {"cuda": torch.cuda.is_available(), "cuda_version": torch.version.cuda, "rocm": torch.version.hip,
           "mps": bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()),
           "cpu": {"threads": torch.get_num_threads(), "bf16_instructions": cpu_has_bf16(), "kind": cpu_kind(),
                   "openvino_recipe": RECIPES[cpu_kind()].why,
                   "compiler_for_compile": compiler_missing("cpu") or "found", "openvino": openvino_missing() or "found"},
           "gpus": []}
    if out["cuda"]:
        for index in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(index)
            out["gpus"].append({"index": index, "name": torch.cuda.get_device_name(index),
                                "total_gb": round(total / 2**30, 1), "free_gb": round(free / 2**30, 1),
                                "capability": ".".join(map(str, torch.cuda.get_device_capability(index)))})
    return out


def _auto() -> dict:
    from genimg.presets import pick_auto

    preset, reason = pick_auto()
    return {"preset": preset.name, "reason": reason}


def _folder(path: Path) -> dict:
    """The folder, whether it exists, and the free space where it is (or would be created)."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    return {"path": str(path), "exists": path.exists(), "free_gb": round(shutil.disk_usage(existing).free / 2**30, 1)}


def _folders() -> dict:
    from huggingface_hub import constants

    from genimg.paths import cache_dir, config_dir

    return {"config": _folder(config_dir()), "cache": _folder(cache_dir()),
            "hf_cache": _folder(Path(constants.HF_HUB_CACHE))}


def _hub() -> dict:
    from huggingface_hub import constants, get_token

    return {"endpoint": constants.ENDPOINT, "offline": bool(constants.HF_HUB_OFFLINE),
            "token": "set" if get_token() else "not set"}


def report() -> dict:
    """Everything above as one dict (what ``genimg doctor --json`` prints)."""
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": {name: _version(name) or "missing" for name in PACKAGES},
        "accelerators": {name: ("found" if importlib.util.find_spec(name) else "missing") + f" ({use})"
                         for name, use in ACCELERATORS.items()},
        "devices": _guarded(_devices),
        "auto_preset": _guarded(_auto),
        "folders": _guarded(_folders),
        "hub": _guarded(_hub),
    }
