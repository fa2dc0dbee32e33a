"""The control types as data (``preprocessors.toml``): what each preprocessor is, the settings users may
give it and their defaults. Reading the table loads nothing; running a preprocessor is ``genimg.control``'s."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from genimg.coerce import coerce
from genimg.errors import UsageError, did_you_mean

TABLE = Path(__file__).with_name("preprocessors.toml")


@dataclass(frozen=True)
class Preprocessor:
    name: str
    kind: str  # "builtin" | "aux" | "depth"
    description: str = ""
    cls: str | None = None  # the controlnet-aux detector class
    repo: str | None = None
    files: tuple[str, ...] = ()
    options: dict = field(default_factory=dict)
    requires: str | None = None
    settings: dict = field(default_factory=dict)  # what users may set, with its default
    union_mode: str | None = None  # the kind of map it is to a union ControlNet

    def settable(self) -> dict:
        """Every setting this type takes, with its default (controlnet-aux detectors: also ``resolution``)."""
        return self.settings | ({"resolution": 512} if self.kind == "aux" else {})

    def resolve(self, given: dict | None, where: str = "") -> dict:
        """``given`` checked against :meth:`settable` and typed like each default; the defaults filled in."""
        settable, where = self.settable(), where or self.name
        for key in given or {}:
            if key not in settable:
                takes = f"it takes {', '.join(settable)}" if settable else "it takes no settings"
                raise UsageError(f"{where}: {self.name} has no setting {key!r}{did_you_mean(key, settable)}; {takes}")
        values = {k: coerce(f"{where} {k}", (given or {}).get(k, default), type(default))
                  for k, default in settable.items()}
        if "resolution" in values and values["resolution"] < 64:
            raise UsageError(f"{where}: resolution must be at least 64 (got {values['resolution']})")
        return values


@lru_cache(maxsize=1)
def preprocessors() -> dict[str, Preprocessor]:
    from genimg.datafiles import load_toml

    return {name: Preprocessor(name, row["kind"], row.get("description", ""), row.get("class"), row.get("repo"),
                               tuple(row.get("files", ())), dict(row.get("options", {})), row.get("requires"),
                               dict(row.get("settings", {})), row.get("union_mode"))
            for name, row in load_toml(TABLE).items()}
