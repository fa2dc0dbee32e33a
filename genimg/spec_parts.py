"""The typed parts of a :class:`~genimg.spec.GenerationSpec`: LoRAs, controls, image prompts, masks,
outpaint sides, the hires fix. Each parses once, at the boundary, from a flag's text (``--control
canny=IMAGE,scale=0.5``) or a row's or a PNG's dict, every value coerced; nothing deeper re-parses text."""

from __future__ import annotations

import typing
from dataclasses import asdict, dataclass, field, fields, replace

from genimg.coerce import coerce
from genimg.errors import UsageError, did_you_mean

RESIZE_MODES = ("fit", "crop", "stretch")
FILL_MODES = ("edge", "noise")
SIDES = ("left", "right", "top", "bottom")


@dataclass(frozen=True)
class LoraSpec:
    path: str
    weight: float = 1.0

    @classmethod
    def parse(cls, value) -> "LoraSpec":
        """``PATH``, ``PATH:WEIGHT`` or ``{"path", "weight"}``; a ``:`` that belongs to an existing path
        (or a Windows drive) stays in the path."""
        from pathlib import Path

        if isinstance(value, LoraSpec):
            return value
        if isinstance(value, dict):
            return build_part(cls, value, "lora")
        text = str(value).strip()
        head, sep, tail = text.rpartition(":")
        if not sep or not head or Path(text).expanduser().exists() or _is_drive(head, tail):
            return cls(text)
        try:
            return cls(head, float(tail))
        except ValueError:
            if Path(head).expanduser().exists():
                raise UsageError(f"--lora {text}: the weight {tail!r} is not a number; write PATH:WEIGHT, "
                                 f"e.g. {head}:0.8") from None
            return cls(text)

    def text(self) -> str:
        return self.path if self.weight == 1.0 else f"{self.path}:{self.weight:g}"


def _is_drive(head: str, tail: str) -> bool:
    """``C:\\loras\\x`` on Windows: the colon belongs to the path."""
    return len(head) == 1 and head.isalpha() and tail.startswith(("\\", "/"))


@dataclass(frozen=True)
class ControlSpec:
    """One ControlNet steering a generation: its control image, how that image becomes the map, the
    ControlNet model, its weight, and the part of the schedule it acts on (A1111's Guidance Start/End)."""

    type: str
    image: str
    model: str | None = None
    scale: float = 1.0
    start: float = 0.0
    end: float = 1.0
    mode: str | None = None  # union ControlNets: the kind of map (default: the type's, see union_modes.toml)
    settings: dict = field(default_factory=dict)  # the preprocessor's own (canny: low, high; …)

    @classmethod
    def parse(cls, value) -> "ControlSpec":
        """``TYPE=IMAGE[,scale=S][,start=A][,end=B][,model=NAME][,mode=M][,SETTING=V…]`` or a dict with
        those keys; any other key is a setting of the type's preprocessor (``canny=x.png,low=50,high=150``)."""
        if isinstance(value, ControlSpec):
            return value
        if isinstance(value, dict):
            if "weight" in value and "scale" not in value:  # A1111's name for the ControlNet's scale
                value = {("scale" if k == "weight" else k): v for k, v in value.items()}
            own = {f.name for f in fields(cls)}
            settings = {**value.get("settings", {}), **{k: v for k, v in value.items() if k not in own}}
            return build_part(cls, {k: v for k, v in value.items() if k in own} | {"settings": settings}, "control")._typed()
        text = str(value)
        head, *options = text.split(",")
        kind, sep, image = head.partition("=")
        if not sep or not image.strip():
            raise UsageError(f"--control {text!r}: write TYPE=IMAGE[,scale=S][,start=A][,end=B][,model=NAME], "
                             "e.g. canny=photo.png,scale=0.8")
        data = {"type": kind.strip(), "image": image.strip()}
        keys = "scale, start, end, model, mode, and the type's settings"
        return cls.parse(data | parse_options(options, f"--control {text!r}", keys))

    def _typed(self) -> "ControlSpec":
        """Settings checked against the type's and typed like their defaults (``low="50"`` from a flag
        is 50); an unknown type is left for :meth:`check` to report."""
        from genimg.preprocessors import preprocessors

        entry = preprocessors().get(self.type)
        if entry is None or not self.settings:
            return self
        settable = entry.settable()
        for key in self.settings:
            if key not in settable:
                own = [f.name for f in fields(self) if f.name not in ("type", "image", "settings")]
                theirs = f", and {self.type}'s settings {', '.join(settable)}" if settable else ""
                raise UsageError(f"control {self.type}={self.image}: unknown key {key!r}"
                                 f"{did_you_mean(key, [*own, *settable])}; known: {', '.join(own)}{theirs}")
        values = entry.resolve(self.settings, f"control {self.type}={self.image}")
        return replace(self, settings={k: values[k] for k in self.settings})

    def check(self) -> None:
        from genimg.preprocessors import preprocessors

        types = preprocessors()
        if self.type not in types:
            raise UsageError(f"unknown control type {self.type!r}{did_you_mean(self.type, types)}; "
                             f"use one of {', '.join(types)} (see `genimg preprocess --help`)")
        if not 0 <= self.scale <= 2:
            raise UsageError(f"control scale must be between 0 and 2 (got {self.scale:g})")
        if not 0 <= self.start < self.end <= 1:
            raise UsageError(f"control start/end must satisfy 0 <= start < end <= 1 (got {self.start:g}, {self.end:g})")
        types[self.type].resolve(self.settings, f"control {self.type}={self.image}")


@dataclass(frozen=True)
class IPAdapterSpec:
    """An image as a prompt: the image, how strongly it steers, and which IP-Adapter (default: the
    family's, from models/ip_adapters.toml)."""

    image: str
    scale: float = 1.0
    model: str | None = None
    flag: typing.ClassVar[str] = "ip-adapter"
    label: typing.ClassVar[str] = "IP-Adapter"

    @classmethod
    def parse(cls, value) -> "IPAdapterSpec":
        """``IMAGE[,scale=S][,model=NAME|PATH]`` or a dict with those keys (A1111's ``weight`` for scale)."""
        if isinstance(value, cls):
            return value
        if isinstance(value, dict):
            value = {("scale" if k == "weight" else k): v for k, v in value.items()}
            return build_part(cls, value, cls.flag)
        text = str(value)
        image, *options = text.split(",")
        if not image.strip():
            raise UsageError(f"--{cls.flag} {text!r}: write IMAGE[,scale=S][,model=NAME], e.g. style.png,scale=0.6")
        return cls.parse({"image": image.strip()} | parse_options(options, f"--{cls.flag} {text!r}", "scale, model"))

    def check(self) -> None:
        if not 0 <= self.scale <= 2:
            raise UsageError(f"{self.label} scale must be between 0 and 2 (got {self.scale:g})")


@dataclass(frozen=True)
class ReduxSpec(IPAdapterSpec):
    """An image as FLUX's prompt through FLUX.1 Redux: the image, the scale of its embedding (and of the
    prompt's, as diffusers' prior scales both), and the Redux model (default: the family's, families.toml)."""

    flag: typing.ClassVar[str] = "redux"
    label: typing.ClassVar[str] = "Redux"


@dataclass(frozen=True)
class MaskSpec:
    """Where to repaint (white = repaint): a mask file, the image's transparency, or a rectangle."""

    path: str | None = None
    from_alpha: bool = False
    rect: tuple[int, int, int, int] | None = None  # x, y, w, h in pixels
    invert: bool = False
    blur: int = 4
    padding: int | None = None  # set: inpaint only the masked area, cropped with this margin

    def given(self) -> bool:
        return bool(self.path or self.from_alpha or self.rect)


@dataclass(frozen=True)
class OutpaintSpec:
    """Pixels to grow on each side, and what the new area starts from."""

    left: int = 0
    right: int = 0
    top: int = 0
    bottom: int = 0
    fill: str = "edge"

    def sides(self) -> dict[str, int]:
        return {side: getattr(self, side) for side in SIDES}

    @classmethod
    def parse(cls, value, fill: str = "edge") -> "OutpaintSpec":
        """``"left,right:64"``, ``("left,right", 64)`` or ``{"left": 64, ...}``."""
        if isinstance(value, OutpaintSpec):
            return value
        if isinstance(value, dict):
            return build_part(cls, {"fill": fill, **value}, "extend")
        if isinstance(value, (tuple, list)) and len(value) == 2:
            sides, pixels = value
        else:
            sides, _, pixels = str(value).rpartition(":")
        names = [s.strip().lower() for s in str(sides).split(",") if s.strip()]
        if not names or any(s not in SIDES for s in names):
            raise UsageError(f"extend {value!r}: give sides from {', '.join(SIDES)} (comma-separated) and pixels, "
                             "e.g. --extend left,right 64 (in a batch file: \"left,right:64\")")
        amount = coerce("extend", pixels, int)
        if amount <= 0:
            raise UsageError(f"--extend needs a positive number of pixels (got {amount})")
        return build_part(cls, {"fill": fill, **{s: amount for s in names}}, "extend")


@dataclass(frozen=True)
class HiresSpec:
    """A1111's hires fix: generate at the base size, upscale by ``scale``, then repaint at the larger
    size with img2img at ``strength`` for ``steps`` steps (default: the base run's)."""

    scale: float
    strength: float = 0.5
    steps: int | None = None
    upscaler: str = "lanczos"

    def check(self) -> None:
        if not 1 < self.scale <= 4:
            raise UsageError(f"--hires must be a scale above 1 and at most 4 (got {self.scale:g})")
        if not 0 < self.strength <= 1:
            raise UsageError(f"--hires-strength must be above 0 and at most 1 (got {self.strength:g})")
        if self.steps is not None and self.steps < 1:
            raise UsageError(f"--hires-steps must be at least 1 (got {self.steps})")


def parse_options(options: list[str], where: str, keys: str) -> dict:
    """``KEY=VALUE`` items of a flag's comma-separated value (``--control``, ``--ip-adapter``) as a dict."""
    data = {}
    for option in options:
        key, sep, val = option.partition("=")
        if not sep:
            raise UsageError(f"{where}: {option!r} is not KEY=VALUE (keys: {keys})")
        data[key.strip()] = val.strip()
    return data


def build_part(cls, data: dict, what: str):
    """A typed part (mask, outpaint, control, LoRA) from a dict, each value coerced."""
    names = {f.name for f in fields(cls)}
    hints = {k: v for k, v in typing.get_type_hints(cls).items() if k in names}
    unknown = [k for k in data if k not in hints]
    if unknown:
        raise UsageError(f"{what}: unknown key {unknown[0]!r}{did_you_mean(unknown[0], hints)}; "
                         f"known: {', '.join(hints)}")
    return cls(**{k: coerce(f"{what} {k}", v, hints[k]) for k, v in data.items()})


def part_dict(part) -> dict:
    default = {f.name: f.default_factory() if callable(f.default_factory) else f.default for f in fields(part)}
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(part).items()
            if v is not None and (v != default[k] or k in ("type", "image", "path"))}
