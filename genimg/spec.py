"""The one description of a generation: what the CLI builds from flags, a batch row builds from a
file, and the PNG metadata serialises. One object, one serialisation, so they cannot drift apart."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace

from genimg.errors import UsageError, did_you_mean

TASKS = ("txt2img", "img2img", "inpaint", "controlnet")
CONTROL_MODES = ("none", "canny")  # how the input becomes the control map: as it is, or its edges
DEFAULT_STRENGTH = {"img2img": 0.75, "inpaint": 1.0}


@dataclass
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
    preset: str = "auto"
    preset_overrides: dict = field(default_factory=dict)
    model_config: str | None = None
    allow_pickle: bool = False
    max_sequence_length: int | None = None
    loras: list = field(default_factory=list)  # "PATH" or "PATH:WEIGHT"
    # img2img and inpaint
    image: str | None = None
    strength: float | None = None
    resize: str = "fit"
    mask: str | None = None
    mask_from_alpha: bool = False
    mask_rect: str | None = None
    invert_mask: bool = False
    mask_blur: int = 4
    mask_padding: int | None = None  # set: inpaint only the masked area, cropped with this margin
    extend: dict | None = None  # outpaint: pixels to grow on each side
    fill: str = "edge"
    # controlnet: the input image steers the composition through a ControlNet model
    controlnet: str | None = None  # folder, hub id or single .safetensors file
    control: str = "none"  # preprocessing of the input image, one of CONTROL_MODES
    control_scale: float = 1.0  # the ControlNet's weight (A1111's "Weight")

    def to_dict(self) -> dict:
        """Only what differs from the defaults, so the JSON stays readable and stable."""
        default = GenerationSpec(prompt="")
        return {k: v for k, v in asdict(self).items() if k == "prompt" or v != getattr(default, k)}

    @classmethod
    def from_dict(cls, data: dict) -> "GenerationSpec":
        names = {f.name for f in fields(cls)}
        unknown = [k for k in data if k not in names]
        if unknown:
            raise UsageError(f"unknown setting {unknown[0]!r}{did_you_mean(unknown[0], names)}; "
                             f"known: {', '.join(sorted(names))}")
        if "prompt" not in data:
            raise UsageError("a generation needs a prompt")
        return cls(**data)

    def replace(self, **changes) -> "GenerationSpec":
        return replace(self, **changes)

    def validate(self, factor: int) -> None:
        """Check what can be checked before any model is loaded."""
        if self.task not in TASKS:
            raise UsageError(f"unknown task {self.task!r}: use one of {', '.join(TASKS)}")
        for name in ("width", "height"):
            value = getattr(self, name)
            if value is not None and (value <= 0 or value % factor):
                lower, upper = value // factor * factor, (value // factor + 1) * factor
                hint = f"{lower} or {upper}" if lower > 0 else str(upper)
                raise UsageError(f"--{name} {value} must be a positive multiple of {factor} for this model; try {hint}")
        if self.steps is not None and self.steps <= 0:
            raise UsageError(f"--steps must be at least 1 (got {self.steps})")
        if self.guidance is not None and self.guidance < 0:
            raise UsageError(f"--cfg must be 0 or more (got {self.guidance})")
        if self.count < 1:
            raise UsageError(f"--count must be at least 1 (got {self.count})")
        if self.batch_size < 1:
            raise UsageError(f"--batch-size must be at least 1 (got {self.batch_size})")
        if self.seed is not None and not 0 <= self.seed < 2**63:
            raise UsageError(f"--seed must be between 0 and 2^63-1 (got {self.seed})")
        if self.task != "txt2img" and not self.image:
            raise UsageError(f"{self.task} needs an input image")
        if self.task == "controlnet" and not self.controlnet:
            raise UsageError("controlnet needs a ControlNet model: --controlnet PATH_OR_HUB_ID")
        if self.control not in CONTROL_MODES:
            raise UsageError(f"--control must be one of {', '.join(CONTROL_MODES)} (got {self.control!r})")
        if self.control_scale < 0:
            raise UsageError(f"--control-scale must be 0 or more (got {self.control_scale})")
        if self.strength is not None and not 0.0 <= self.strength <= 1.0:
            raise UsageError(f"--strength must be between 0 and 1 (got {self.strength})")
        if self.mask_blur < 0 or (self.mask_padding is not None and self.mask_padding < 0):
            raise UsageError("--mask-blur and --mask-padding must be 0 or more")
