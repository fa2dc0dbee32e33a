"""What accelerator this process can use and how much memory it has free."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DeviceInfo:
    kind: str  # "cuda" | "mps" | "cpu"
    name: str
    total_gb: float = 0.0
    free_gb: float = 0.0


def detect(device: str | None = None) -> DeviceInfo:
    """Describe ``device`` (e.g. ``cuda:1``), or the best available one when ``None``."""
    import torch

    if device is None:
        if torch.cuda.is_available():
            device = "cuda"
        elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            device = "mps"
        else:
            device = "cpu"
    kind = device.split(":")[0]
    if kind == "cuda":
        index = torch.device(device).index or 0
        free, total = torch.cuda.mem_get_info(index)
        return DeviceInfo("cuda", torch.cuda.get_device_name(index), total / 2**30, free / 2**30)
    if kind == "mps":
        return DeviceInfo("mps", "Apple MPS")
    return DeviceInfo("cpu", "CPU")
