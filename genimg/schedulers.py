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
    sampling: tuple[str, ...] = ()  # the families' kinds it drives: "noise", "flow"
    only: tuple[str, ...] = ()  # where given, only these families of those kinds
    requires: str | None = None

    def drives(self, family: str) -> bool:
        return FAMILIES[family].sampling in self.sampling and (not self.only or family in self.only)

    @property
    def families(self) -> tuple[str, ...]:
        """The families it can drive."""
        return tuple(name for name in FAMILIES if self.drives(name))


def schedulers() -> dict[str, SchedulerSpec]:
    return {
        name: SchedulerSpec(name, row["class"], dict(row.get("config", {})), tuple(row["sampling"]),
                            tuple(row.get("families", ())), row.get("requires"))
        for name, row in load_toml(SCHEDULER_FILE).items()
    }


def lookup(name: str, family: str) -> SchedulerSpec:
    """The scheduler called ``name`` (case-insensitive), checked against the model family."""
    table = schedulers()
    by_lower = {k.lower(): v for k, v in table.items()}
    spec = by_lower.get(name.strip().lower())
    if spec is None:
        raise UsageError(f"unknown scheduler {name!r}{did_you_mean(name, table)}; `genimg schedulers` lists them")
    if not spec.drives(family):
        usable = ", ".join(k for k, v in table.items() if v.drives(family))
        kind = {"flow": "a flow-matching model"}.get(FAMILIES[family].sampling, "a noise-prediction model")
        raise UsageError(f"scheduler {spec.name!r} cannot drive {FAMILIES[family].label} ({kind}); use one of: {usable}")
    if spec.requires and importlib.util.find_spec(spec.requires) is None:
        raise UsageError(f"scheduler {spec.name!r} needs the {spec.requires} package: pip install {spec.requires}")
    return spec


def build(spec: SchedulerSpec, base_config):
    """A scheduler of ``spec``'s class configured from the model's own scheduler config."""
    import diffusers

    cls = getattr(diffusers, spec.class_name)
    return cls.from_config(base_config, **spec.config)
