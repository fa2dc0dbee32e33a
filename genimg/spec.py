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
from dataclasses import dataclass, field, fields, replace

from genimg.coerce import coerce
from genimg.errors import UsageError, did_you_mean
from genimg.spec_parts import (FILL_MODES, RESIZE_MODES, SIDES, ControlSpec, HiresSpec, IPAdapterSpec, LoraSpec,
                               MaskSpec, OutpaintSpec, ReduxSpec, build_part, part_dict)

__all__ = ["DEFAULT_STRENGTH", "FILL_MODES", "RESIZE_MODES", "SIDES", "TASKS", "ControlSpec", "GenerationSpec",
           "check_face_settings",
           "HiresSpec", "IPAdapterSpec", "LoraSpec", "MaskSpec", "OutpaintSpec", "ReduxSpec", "known_keys",
           "style_names"]

TASKS = ("txt2img", "img2img", "inpaint", "edit")  # edit: an image changed by an instruction (Kontext, FLUX.2)
DEFAULT_STRENGTH = {"img2img": 0.75, "inpaint": 1.0}


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
    # A1111's variation seed (subseed): the initial noise slerped from the seed's toward this seed's by
    # variation_strength (0: the seed's image, 1: the variation seed's); its noise drawn as if the image were
    # seed_resize_from ("WxH") big, to keep a seed's composition at another size
    variation_seed: int | None = None
    variation_strength: float = 0.0
    seed_resize_from: str | None = None
    tiling: str | None = None  # A1111's "Tiling": seamless along "xy" (both axes), "x" or "y"
    # SDXL's refiner (A1111's refiner_checkpoint, refiner_switch_at): diffusers' ensemble of experts, the base
    # denoising up to the switch (a fraction of the steps) and the refiner the rest
    refiner: str | None = None
    refiner_switch: float = 0.8
    # A1111's "Restore faces": each face restored by this model (a file, a name in face_restorer_dirs, or
    # GFPGAN, CodeFormer, RestoreFormer) and blended in by face_strength (A1111's visibility); face_fidelity
    # is CodeFormer's weight (0: the model's face, 1: closest to the input's)
    restore_faces: str | None = None
    face_strength: float = 1.0
    face_fidelity: float = 0.5

    def __post_init__(self):
        # The Python API builds specs directly: the same coercion as flags and file rows, so
        # GenerationSpec("x", steps="3", loras=["a.safetensors:0.5"]) means what it says.
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "mask" and isinstance(value, dict):
                value = build_part(MaskSpec, value, "mask")
            elif f.name == "mask" and isinstance(value, (str, os.PathLike)):
                value = MaskSpec(path=str(value))
            elif f.name == "hires" and isinstance(value, dict):
                value = build_part(HiresSpec, value, "hires")
            elif f.name == "hires" and isinstance(value, (int, float, str)):
                value = build_part(HiresSpec, {"scale": value}, "hires")
            elif f.name == "outpaint" and value is not None:
                value = OutpaintSpec.parse(value)
            elif value is not None:
                value = coerce(f.name, value, _TYPES[f.name])
            object.__setattr__(self, f.name, value)

    @property
    def varied(self) -> bool:
        """Whether the initial noise is A1111's variation of the seed's (a variation or a seed resize)."""
        return bool(self.variation_strength) or self.seed_resize_from is not None

    def image_seeds(self, first: int, variation: int | None) -> list[tuple[int, int | None]]:
        """(seed, variation seed) of each of ``count`` images as A1111 numbers them: seed, seed+1, … — or, with a
        variation, the one seed and variation seeds variation, variation+1, …"""
        if not self.variation_strength:
            return [(first + i, None) for i in range(self.count)]
        return [(first, variation + i) for i in range(self.count)]

    def _validate_noise(self) -> None:
        import re

        if not 0.0 <= self.variation_strength <= 1.0:
            raise UsageError(f"--variation-strength must be between 0 and 1 (got {self.variation_strength})")
        if self.variation_seed is not None and not 0 <= self.variation_seed < 2**63:
            raise UsageError(f"--variation-seed must be between 0 and 2^63-1 (got {self.variation_seed})")
        if self.seed_resize_from is not None and not re.fullmatch(r"[1-9]\d*x[1-9]\d*", self.seed_resize_from):
            raise UsageError(f"--seed-resize-from must be WIDTHxHEIGHT, e.g. 512x512 (got {self.seed_resize_from!r})")
        if self.tiling is not None and self.tiling not in ("xy", "x", "y"):
            raise UsageError(f"--tiling-axis must be x or y, or both (xy) (got {self.tiling!r})")
        if not 0.0 < self.refiner_switch < 1.0:
            raise UsageError(f"--refiner-switch must be between 0 and 1, a fraction of the steps (got {self.refiner_switch})")
        if self.refiner and self.task != "txt2img":
            raise UsageError(f"--refiner takes over txt2img's last steps; {self.task} has none to hand over")
        check_face_settings(self.face_strength, self.face_fidelity)
        if self.varied and self.task != "txt2img":
            raise UsageError("--variation-seed and --seed-resize-from vary txt2img's initial noise; "
                             f"{self.task} starts from its input image")

    # -- serialisation ------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Only what differs from the defaults, so the JSON stays readable and stable."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != "prompt" and value == _DEFAULTS[f.name]:
                continue
            if f.name in ("mask", "outpaint", "hires"):
                value = part_dict(value)
            elif f.name == "loras":
                value = [lora.text() for lora in value]
            elif f.name == "styles":  # a name with a comma (A1111's files have them) stays one name
                value = [f'"{name}"' if "," in name else name for name in value]
            elif f.name in ("controls", "ip_adapters", "redux"):
                value = [part_dict(c) for c in value]
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
        self._validate_noise()
        if self.mask and (self.mask.blur < 0 or (self.mask.padding is not None and self.mask.padding < 0)):
            raise UsageError("--mask-blur and --mask-padding must be 0 or more")
        for control in self.controls:
            control.check()
        if self.hires:
            self.hires.check()
            if self.task != "txt2img":
                raise UsageError("--hires (the hires fix) is for txt2img; for an image you have, use img2img or upscale")


def check_face_settings(strength: float, fidelity: float) -> None:
    """--face-strength and --face-fidelity (a generation's and an upscale's) are fractions."""
    for flag, value in (("--face-strength", strength), ("--face-fidelity", fidelity)):
        if not 0.0 <= value <= 1.0:
            raise UsageError(f"{flag} must be between 0 and 1 (got {value})")


# -- the one way in --------------------------------------------------------------------------------

# Names users know from A1111, Forge, ComfyUI exports and older genimg files, as spec fields.
ALIASES = {
    "cfg": "guidance", "cfg_scale": "guidance", "guidance_scale": "guidance",
    "negative_prompt": "negative", "sampler": "scheduler", "sampler_name": "scheduler",
    "init_image": "image", "denoising_strength": "strength", "num_inference_steps": "steps",
    "lora": "loras", "embedding": "embeddings", "control": "controls", "n_iter": "count", "style": "styles",
    "ip_adapter": "ip_adapters", "ref": "references", "reference": "references",
    "face_restoration": "restore_faces", "code_former_weight": "face_fidelity",
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
        spec["mask"] = build_part(MaskSpec, mask["path"], "mask")
    elif mask and build_part(MaskSpec, mask, "mask") != MaskSpec():
        spec["mask"] = build_part(MaskSpec, mask, "mask")
    if hires:
        if "scale" not in hires:
            raise UsageError("hires_strength, hires_steps and hires_upscaler need hires (the scale)")
        spec["hires"] = build_part(HiresSpec, hires, "hires")
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
    spec["controls"] = (*spec.get("controls", ()), build_part(ControlSpec, control, "control"))
    return spec


def _size(value) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in str(value).lower().replace(" ", "").split("x"))
        return w, h
    except ValueError:
        raise UsageError(f"size must look like 512x768 (got {value!r})") from None


_TYPES = typing.get_type_hints(GenerationSpec)
_DEFAULTS = {f.name: (f.default_factory() if callable(f.default_factory) else f.default)
             for f in fields(GenerationSpec) if f.name != "prompt"}
_TYPES["mask"] = _TYPES["outpaint"] = _TYPES["hires"] = None  # parts, built by _canonical
