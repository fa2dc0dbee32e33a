"""Schedulers by the names users know (``Euler a``, ``DPM++ 2M Karras``), from ``schedulers.toml``."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

from genimg.datafiles import load_toml
from genimg.errors import UsageError, did_you_mean
from genimg.models.families import FAMILIES

SCHEDULER_FILE = Path(__file__).with_name("schedulers.toml")


@dataclass(frozen=True)
class SchedulerSpec:
    name: str
    class_name: str
    config: dict = field(default_factory=dict)
    families: tuple[str, ...] = ()
    requires: str | None = None


def schedulers() -> dict[str, SchedulerSpec]:
    return {
        name: SchedulerSpec(name, row["class"], dict(row.get("config", {})), tuple(row["families"]), row.get("requires"))
        for name, row in load_toml(SCHEDULER_FILE).items()
    }


def lookup(name: str, family: str) -> SchedulerSpec:
    """The scheduler called ``name`` (case-insensitive), checked against the model family."""
    table = schedulers()
    by_lower = {k.lower(): v for k, v in table.items()}
    spec = by_lower.get(name.strip().lower())
    if spec is None:
        raise UsageError(f"unknown scheduler {name!r}{did_you_mean(name, table)}; `genimg schedulers` lists them")
    if family not in spec.families:
        usable = ", ".join(k for k, v in table.items() if family in v.families)
        kind = "a flow-matching model" if FAMILIES[family].scheduler.startswith("FlowMatch") else "a noise-prediction model"
        raise UsageError(f"scheduler {spec.name!r} cannot drive {FAMILIES[family].label} ({kind}); use one of: {usable}")
    if spec.requires and importlib.util.find_spec(spec.requires) is None:
        raise UsageError(f"scheduler {spec.name!r} needs the {spec.requires} package: pip install {spec.requires}")
    return spec


def build(spec: SchedulerSpec, base_config):
    """A scheduler of ``spec``'s class configured from the model's own scheduler config."""
    import diffusers

    cls = getattr(diffusers, spec.class_name)
    return cls.from_config(base_config, **spec.config)
