"""Training checkpoints in safetensors (no pickle): tensors in the file, everything else as JSON metadata.

A nested state (model, optimizer, RNG, counters) is flattened: each tensor is stored under its path,
and a JSON skeleton with ``{"__tensor__": path}`` placeholders rebuilds the structure on load.
Writes go to a temporary file renamed into place, so an interrupted save never leaves a broken one.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from genimg.files import save_safetensors

SKELETON_KEY = "genimg_state"


def _flatten(obj, prefix: str, tensors: dict, seen: dict):
    if isinstance(obj, torch.Tensor):
        # One tensor held in several places (bitsandbytes' 8-bit optimizers share their quantization
        # maps across parameters) is stored once: safetensors refuses two names for one memory.
        if id(obj) not in seen:
            seen[id(obj)] = prefix
            tensors[prefix] = obj.detach().cpu().contiguous()
        return {"__tensor__": seen[id(obj)]}
    if isinstance(obj, dict):
        return {"__dict__": [[_flatten(k, f"{prefix}.k{i}", tensors, seen), _flatten(v, f"{prefix}.{i}", tensors, seen)]
                             for i, (k, v) in enumerate(obj.items())]}
    if isinstance(obj, (list, tuple)):
        return {"__list__": [_flatten(v, f"{prefix}.{i}", tensors, seen) for i, v in enumerate(obj)]}
    return obj


def _unflatten(obj, tensors: dict):
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__dict__" in obj:
            return {_unflatten(k, tensors): _unflatten(v, tensors) for k, v in obj["__dict__"]}
        if "__list__" in obj:
            return [_unflatten(v, tensors) for v in obj["__list__"]]
    return obj


def save_state(path: Path, state: dict) -> None:
    tensors: dict = {}
    skeleton = _flatten(state, "s", tensors, {})
    save_safetensors(path, tensors, {SKELETON_KEY: json.dumps(skeleton)})


def load_state(path: Path) -> dict:
    from safetensors import safe_open
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    with safe_open(str(path), "pt") as f:
        skeleton = json.loads(f.metadata()[SKELETON_KEY])
    return _unflatten(skeleton, tensors)
