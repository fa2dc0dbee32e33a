"""The one description of a generation: what the CLI builds from flags, a batch row builds from a
file, ``--from IMAGE`` builds from a PNG, and the metadata writer serialises.

Every way in goes through :meth:`GenerationSpec.from_dict`: one alias table (the names users know
from A1111 and other tools), one coercion step (a bad value is a one-line :class:`UsageError` naming
the field, the value and what is allowed), and composite settings (mask, outpaint, LoRAs, controls)
parsed once into typed parts. Nothing deeper re-parses text.
"""

from __future__ import annotations

import os
import typing
from dataclasses import asdict, dataclass, field, fields, replace

from genimg.coerce import coerce
from genimg.errors import UsageError, did_you_mean

TASKS = ("txt2img", "img2img", "inpaint", "edit")  # edit: an image changed by an instruction (Kontext, FLUX.2)
RESIZE_MODES = ("fit", "crop", "stretch")
FILL_MODES = ("edge", "noise")
SIDES = ("left", "right", "top", "bottom")
DEFAULT_STRENGTH = {"img2img": 0.75, "inpaint": 1.0}


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
            return _part(cls, value, "lora")
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
            return _part(cls, {k: v for k, v in value.items() if k in own} | {"settings": settings}, "control")._typed()
        text = str(value)
        head, *options = text.split(",")
        kind, sep, image = head.partition("=")
        if not sep or not image.strip():
            raise UsageError(f"--control {text!r}: write TYPE=IMAGE[,scale=S][,start=A][,end=B][,model=NAME], "
                             "e.g. canny=photo.png,scale=0.8")
        data = {"type": kind.strip(), "image": image.strip()}
        keys = "scale, start, end, model, mode, and the type's settings"
        return cls.parse(data | _options(options, f"--control {text!r}", keys))

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
            return _part(cls, value, cls.flag)
        text = str(value)
        image, *options = text.split(",")
        if not image.strip():
            raise UsageError(f"--{cls.flag} {text!r}: write IMAGE[,scale=S][,model=NAME], e.g. style.png,scale=0.6")
        return cls.parse({"image": image.strip()} | _options(options, f"--{cls.flag} {text!r}", "scale, model"))

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
            return _part(cls, {"fill": fill, **value}, "extend")
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
        return _part(cls, {"fill": fill, **{s: amount for s in names}}, "extend")


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


@dataclass(frozen=True)
class GenerationSpec:
    prompt: str
    negative: str = ""
    model: str | None = None
    task: str = "txt2img"
    width: int | None = None
    height: int | None = None
    steps: int | None = None
    guidance: float | None = None
    scheduler: str | None = None
    seed: int | None = None
    count: int = 1
    batch_size: int = 1
    preset: str | None = None  # None: the user's (config, GENIMG_PRESET), else auto
    preset_overrides: dict = field(default_factory=dict)
    model_config: str | None = None
    denoiser: str | None = None  # a quantized UNet / FLUX transformer in a .gguf file
    vae: str | None = None  # another VAE: an alias (taesd, sdxl-vae-fp16-fix), a hub id, a folder or a file
    allow_pickle: bool = False
    max_sequence_length: int | None = None
    clip_skip: int | None = None  # A1111's "Clip skip": 1 = the last CLIP layer (none skipped), 2 = the one before …
    loras: tuple[LoraSpec, ...] = ()
    fuse_lora: bool = False  # merge the LoRAs into the weights: faster steps, a moment to fuse and unfuse
    embeddings: tuple[str, ...] = ()  # textual inversion files; the file name is the word that calls each
    controls: tuple[ControlSpec, ...] = ()
    ip_adapters: tuple[IPAdapterSpec, ...] = ()  # images as prompts
    redux: tuple[ReduxSpec, ...] = ()  # FLUX: images as prompts through FLUX.1 Redux
    styles: tuple[str, ...] = ()  # named styles (A1111 styles.csv) wrapping the prompt and extending the negative
    negative_template: str | None = None  # a style used for its negative prompt; "default": the family's
    # img2img and inpaint: the input image, how much to change it and how to fit it to the size asked
    image: str | None = None
    references: tuple[str, ...] = ()  # edit: more images the instruction draws on (FLUX.2's multi-reference)
    strength: float | None = None
    resize: str = "fit"
    mask: MaskSpec | None = None
    outpaint: OutpaintSpec | None = None
    hires: HiresSpec | None = None  # txt2img: A1111's hires fix

    def __post_init__(self):
        # The Python API builds specs directly: the same coercion as flags and file rows, so
        # GenerationSpec("x", steps="3", loras=["a.safetensors:0.5"]) means what it says.
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "mask" and isinstance(value, dict):
                value = _part(MaskSpec, value, "mask")
            elif f.name == "mask" and isinstance(value, (str, os.PathLike)):
                value = MaskSpec(path=str(value))
            elif f.name == "hires" and isinstance(value, dict):
                value = _part(HiresSpec, value, "hires")
            elif f.name == "hires" and isinstance(value, (int, float, str)):
                value = _part(HiresSpec, {"scale": value}, "hires")
            elif f.name == "outpaint" and value is not None:
                value = OutpaintSpec.parse(value)
            elif value is not None:
                value = coerce(f.name, value, _TYPES[f.name])
            object.__setattr__(self, f.name, value)

    # -- serialisation ------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Only what differs from the defaults, so the JSON stays readable and stable."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != "prompt" and value == _DEFAULTS[f.name]:
                continue
            if f.name in ("mask", "outpaint", "hires"):
                value = _part_dict(value)
            elif f.name == "loras":
                value = [lora.text() for lora in value]
            elif f.name == "styles":  # a name with a comma (A1111's files have them) stays one name
                value = [f'"{name}"' if "," in name else name for name in value]
            elif f.name in ("controls", "ip_adapters", "redux"):
                value = [_part_dict(c) for c in value]
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict, where: str = "") -> "GenerationSpec":
        """A spec from settings under any name users know (``cfg``, ``sampler``, ``size``, ``mask_rect``
        …), each value coerced to its field's type; ``where`` prefixes error messages (file:line)."""
        try:
            return cls(**_canonical(data))
        except UsageError as e:
            raise UsageError(f"{where}: {e}" if where else str(e)) from None

    def replace(self, **changes) -> "GenerationSpec":
        return replace(self, **changes)

    def merged(self, data: dict) -> "GenerationSpec":
        """This spec with the settings in ``data`` (any known names) laid over it."""
        return GenerationSpec.from_dict({**self.to_dict(), **data})

    # -- checks -------------------------------------------------------------------------------------
    def validate(self, factor: int) -> None:
        """Check what can be checked before any model is loaded."""
        if self.task not in TASKS:
            raise UsageError(f"unknown task {self.task!r}: use one of {', '.join(TASKS)} "
                             "(ControlNets go with any of them as controls)")
        if self.resize not in RESIZE_MODES:
            raise UsageError(f"--resize must be one of {', '.join(RESIZE_MODES)} (got {self.resize!r})")
        if self.outpaint and self.outpaint.fill not in FILL_MODES:
            raise UsageError(f"--fill must be one of {', '.join(FILL_MODES)} (got {self.outpaint.fill!r})")
        for name in ("width", "height"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise UsageError(f"--{name} must be a positive multiple of {factor} (got {value})")
            if value is not None and value % factor:
                lower, upper = value // factor * factor, (value // factor + 1) * factor
                hint = f"{lower} or {upper}" if lower > 0 else str(upper)
                raise UsageError(f"--{name} {value} must be a multiple of {factor} for this model; try {hint}")
        if self.steps is not None and self.steps <= 0:
            raise UsageError(f"--steps must be at least 1 (got {self.steps})")
        if self.guidance is not None and self.guidance < 0:
            raise UsageError(f"--cfg must be 0 or more (got {self.guidance})")
        if self.count < 1:
            raise UsageError(f"--count must be at least 1 (got {self.count})")
        if self.batch_size < 1:
            raise UsageError(f"--batch-size must be at least 1 (got {self.batch_size})")
        if self.clip_skip is not None and not 1 <= self.clip_skip <= 12:
            raise UsageError(f"--clip-skip must be between 1 (no layer skipped) and 12 (got {self.clip_skip}); "
                             "2 is what most anime models were made with")
        if self.seed is not None and not 0 <= self.seed < 2**63:
            raise UsageError(f"--seed must be between 0 and 2^63-1 (got {self.seed})")
        if self.task != "txt2img" and not self.image:
            raise UsageError(f"{self.task} needs an input image")
        if self.task == "inpaint" and not (self.outpaint or (self.mask and self.mask.given())):
            raise UsageError("give exactly one mask: --mask FILE, --mask-from-alpha or --mask-rect x,y,w,h")
        if self.outpaint and self.mask and self.mask.given():
            raise UsageError("--extend makes its own mask; leave out --mask, --mask-from-alpha and --mask-rect")
        if self.task == "txt2img" and (self.mask or self.outpaint):
            raise UsageError("a mask or --extend needs an inpaint task with an input image")
        if self.references and self.task != "edit":
            raise UsageError("--ref images are for genimg edit (FLUX.2 edits from several images); "
                             f"{self.task} takes none")
        if self.strength is not None and not 0.0 <= self.strength <= 1.0:
            raise UsageError(f"--strength must be between 0 and 1 (got {self.strength})")
        if self.mask and (self.mask.blur < 0 or (self.mask.padding is not None and self.mask.padding < 0)):
            raise UsageError("--mask-blur and --mask-padding must be 0 or more")
        for control in self.controls:
            control.check()
        if self.hires:
            self.hires.check()
            if self.task != "txt2img":
                raise UsageError("--hires (the hires fix) is for txt2img; for an image you have, use img2img or upscale")


# -- the one way in --------------------------------------------------------------------------------

# Names users know from A1111, Forge, ComfyUI exports and older genimg files, as spec fields.
ALIASES = {
    "cfg": "guidance", "cfg_scale": "guidance", "guidance_scale": "guidance",
    "negative_prompt": "negative", "sampler": "scheduler", "sampler_name": "scheduler",
    "init_image": "image", "denoising_strength": "strength", "num_inference_steps": "steps",
    "lora": "loras", "embedding": "embeddings", "control": "controls", "n_iter": "count", "style": "styles",
    "ip_adapter": "ip_adapters", "ref": "references", "reference": "references",
}
# Flat keys (flags and file rows) for the parts of a mask.
MASK_KEYS = {"mask": "path", "mask_from_alpha": "from_alpha", "mask_rect": "rect", "invert_mask": "invert",
             "mask_blur": "blur", "mask_padding": "padding"}
# Flat keys (flags and file rows, A1111's names) for the hires fix.
HIRES_KEYS = {"hires": "scale", "hires_scale": "scale", "hires_upscale": "scale", "hires_strength": "strength",
              "hires_steps": "steps", "hires_upscaler": "upscaler"}
# The one-control shorthand of `genimg controlnet` and of older batch rows (task = controlnet).
LEGACY_CONTROL_KEYS = ("controlnet", "control_type", "control_scale")


def known_keys() -> list[str]:
    names = {f.name for f in fields(GenerationSpec)}
    return sorted(names | set(ALIASES) | set(MASK_KEYS) | set(HIRES_KEYS) | {"size", "extend", "fill", *LEGACY_CONTROL_KEYS})


def _canonical(data: dict) -> dict:
    data = {str(k).strip().lower().replace("-", "_").replace(" ", "_"): v for k, v in data.items()}
    out: dict = {}
    mask: dict = {}
    hires: dict = {}
    legacy: dict = {}
    for key, value in data.items():
        if value is None:
            continue  # not given: the field keeps its default
        if key in ("style", "styles"):
            value = style_names(value)
        if key == "control" and isinstance(value, str) and "=" not in value:
            key = "control_type"  # older rows and PNGs: `control` named the preprocessing of task = controlnet
        key = ALIASES.get(key, key)
        if key == "size":
            out["width"], out["height"] = _size(value)
        elif key in MASK_KEYS:
            mask[MASK_KEYS[key]] = value
        elif key in HIRES_KEYS:
            if isinstance(value, (dict, HiresSpec)):  # the serialised form: hires = {scale, strength, ...}
                out["hires"] = value
            else:
                hires[HIRES_KEYS[key]] = value
        elif key in LEGACY_CONTROL_KEYS:
            legacy[key] = value
        elif key not in _TYPES and key not in ("extend", "fill"):
            raise UsageError(f"unknown setting {key!r}{did_you_mean(key, known_keys())}; known: {', '.join(known_keys())}")
        elif key not in ("extend", "fill"):
            out[key] = value
    if "prompt" not in out or out["prompt"] is None or not str(out["prompt"]).strip():
        raise UsageError("the generation has no prompt")
    spec = dict(out)
    if isinstance(mask.get("path"), MaskSpec):
        spec["mask"] = mask["path"]
    elif isinstance(mask.get("path"), dict):  # the serialised form: mask = {path, rect, ...}
        spec["mask"] = _part(MaskSpec, mask["path"], "mask")
    elif mask and _part(MaskSpec, mask, "mask") != MaskSpec():
        spec["mask"] = _part(MaskSpec, mask, "mask")
    if hires:
        if "scale" not in hires:
            raise UsageError("hires_strength, hires_steps and hires_upscaler need hires (the scale)")
        spec["hires"] = _part(HiresSpec, hires, "hires")
    if isinstance(out.get("outpaint"), (dict, OutpaintSpec)):  # the serialised form
        spec["outpaint"] = OutpaintSpec.parse(out["outpaint"])
    if data.get("extend") not in (None, "", {}):
        spec["outpaint"] = OutpaintSpec.parse(data["extend"], fill=str(data.get("fill") or "edge"))
    elif data.get("fill") not in (None, "", "edge") and "outpaint" not in spec:
        raise UsageError("fill only applies with extend (outpaint)")
    if legacy or spec.get("task") == "controlnet":
        spec = _legacy_control(spec, legacy)
    return spec


def style_names(value) -> list[str]:
    """Style names from ``a,b``, repeated flags or a list: split at commas, a quoted name kept whole
    (``"Name, with comma",other``, as in a CSV row)."""
    import csv

    items = [value] if isinstance(value, str) else list(value)
    return [name.strip() for item in items for name in next(csv.reader([str(item)], skipinitialspace=True), [])
            if name.strip()]


def _legacy_control(spec: dict, legacy: dict) -> dict:
    """``task = controlnet`` with ``image``/``controlnet``/``control_type``/``control_scale``: txt2img
    with one control, the image being the control image."""
    if not legacy.get("controlnet"):
        raise UsageError("controlnet needs a ControlNet model: --controlnet PATH_OR_HUB_ID")
    if not spec.get("image"):
        raise UsageError("controlnet needs a control image")
    control = {"type": legacy.get("control_type") or "none", "image": spec.pop("image"),
               "model": legacy["controlnet"], "scale": legacy.get("control_scale", 1.0)}
    spec["task"] = "txt2img"
    spec["controls"] = (*spec.get("controls", ()), _part(ControlSpec, control, "control"))
    return spec


def _size(value) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in str(value).lower().replace(" ", "").split("x"))
        return w, h
    except ValueError:
        raise UsageError(f"size must look like 512x768 (got {value!r})") from None


def _options(options: list[str], where: str, keys: str) -> dict:
    """``KEY=VALUE`` items of a flag's comma-separated value (``--control``, ``--ip-adapter``) as a dict."""
    data = {}
    for option in options:
        key, sep, val = option.partition("=")
        if not sep:
            raise UsageError(f"{where}: {option!r} is not KEY=VALUE (keys: {keys})")
        data[key.strip()] = val.strip()
    return data


def _part(cls, data: dict, what: str):
    """A typed part (mask, outpaint, control, LoRA) from a dict, each value coerced."""
    names = {f.name for f in fields(cls)}
    hints = {k: v for k, v in typing.get_type_hints(cls).items() if k in names}
    unknown = [k for k in data if k not in hints]
    if unknown:
        raise UsageError(f"{what}: unknown key {unknown[0]!r}{did_you_mean(unknown[0], hints)}; "
                         f"known: {', '.join(hints)}")
    return cls(**{k: coerce(f"{what} {k}", v, hints[k]) for k, v in data.items()})


def _part_dict(part) -> dict:
    default = {f.name: f.default_factory() if callable(f.default_factory) else f.default for f in fields(part)}
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(part).items()
            if v is not None and (v != default[k] or k in ("type", "image", "path"))}


_TYPES = typing.get_type_hints(GenerationSpec)
_DEFAULTS = {f.name: (f.default_factory() if callable(f.default_factory) else f.default)
             for f in fields(GenerationSpec) if f.name != "prompt"}
_TYPES["mask"] = _TYPES["outpaint"] = _TYPES["hires"] = None  # parts, built by _canonical
