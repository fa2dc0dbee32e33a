"""A user setting checked for what it names before it is saved (`genimg config set`): the model resolves,
the preset exists, the sampler is one genimg knows, the device is one torch names. Above the layers whose
tables it reads; the config module below them only knows types."""

from __future__ import annotations

import re

from genimg.errors import UsageError

_DEVICE = re.compile(r"^(cpu|mps|cuda(:\d+)?)$")


def check_setting(key: str, value) -> None:
    """Raise a one-line UsageError when ``value`` is no valid ``key``; keys without a table pass."""
    if value in (None, ""):
        return
    if key == "model":
        from genimg.models import resolve_model

        resolve_model(value)
    elif key == "preset" and value != "auto":
        from genimg.presets import get_preset

        get_preset(value)
    elif key == "scheduler":
        from genimg.errors import did_you_mean
        from genimg.schedulers import schedulers

        table = schedulers()
        if value.strip().lower() not in {name.lower() for name in table}:
            raise UsageError(f"unknown scheduler {value!r}{did_you_mean(value, table)}; `genimg schedulers` lists them")
    elif key == "device" and not _DEVICE.match(value):
        raise UsageError(f"device {value!r} is not one torch names: use cpu, cuda, cuda:N or mps")
    elif key == "upscaler":
        from genimg.upscale.models import resolve_upscaler

        resolve_upscaler(value)
