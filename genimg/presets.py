"""VRAM-tier presets: how to load and run a pipeline on a given kind of device.

Each preset is a TOML file in ``presets/`` (user files in ``~/.config/genimg/presets/`` add to or
replace them). A ``[family.NAME]`` table overrides fields for one model family, since FLUX needs
more than SD1.5 on the same card. Every field can also be overridden from the command line.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from genimg.datafiles import data_dir, read_toml
from genimg.errors import UsageError, did_you_mean
from genimg.paths import config_dir

CHOICES = {
    "device": ("cpu", "cuda", "mps"),
    "dtype": ("fp32", "fp16", "bf16"),
    "offload": ("none", "model", "sequential"),
    "compile": ("off", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs", "openvino"),
    "quantize": ("none", "int8", "nf4"),
}


@dataclass(frozen=True)
class Preset:
    name: str
    description: str = ""
    device: str = "cuda"
    vram_gb: float = 0
    dtype: str = "fp16"
    attention_slicing: bool = False
    vae_slicing: bool = False
    vae_tiling: bool = False
    offload: str = "none"
    compile: str = "off"
    channels_last: bool = False
    quantize: str = "none"
    vae_fp32: bool = False
    deepcache: int = 0  # a full UNet pass every N steps, deep features reused between (0: off; see step_savers)
    tome: float = 0.0  # share of self-attention tokens merged (ToMe; 0: off)
    max_megapixels: float = 0  # largest image this tier handles without VAE tiling (0: no limit)
    tiling_lifts_limit: bool = True  # the limit is the VAE's (GPUs); on a CPU it is the denoiser's time
    upscale_tile: int = 512  # upscalers run in tiles of this many input pixels (0: whole images)
    family_overrides: dict | None = None

    def for_family(self, family: str) -> "Preset":
        """This preset with its ``[family.NAME]`` fields applied."""
        table = (self.family_overrides or {}).get(family, {})
        return self.with_overrides(**table)

    def with_overrides(self, **overrides) -> "Preset":
        """A copy with the given fields replaced; ``None`` values are ignored (flag not given)."""
        given = {k: v for k, v in overrides.items() if v is not None}
        _check(self.name, given)
        return replace(self, **given)

    def half_weights(self) -> bool:
        """Whether half-precision weight files (a model's fp16 variant) serve this preset."""
        return self.dtype in ("fp16", "bf16")

    def settings(self) -> dict:
        """The fields that change how a pipeline runs (what metadata records)."""
        d = asdict(self)
        for key in ("description", "vram_gb", "family_overrides", "max_megapixels", "tiling_lifts_limit",
                    "upscale_tile"):
            d.pop(key)
        return d


_FIELD_NAMES = {f.name for f in fields(Preset)} - {"name", "family_overrides"}
_FIELD_TYPES = {f.name: {"bool": bool, "float": (int, float), "str": str, "int": int}.get(str(f.type))
                for f in fields(Preset)}
_TYPE_WORDS = {bool: "true or false", (int, float): "a number", str: "text", int: "a whole number"}


def _check(name: str, table: dict) -> None:
    for key, value in table.items():
        if key not in _FIELD_NAMES:
            raise UsageError(f"preset {name!r}: unknown field {key!r}{did_you_mean(key, _FIELD_NAMES)}")
        if key in CHOICES and not _chosen(key, value):
            more = " (a GPU may carry its index: cuda:1)" if key == "device" else ""
            raise UsageError(f"preset {name!r}: {key} = {value!r} is not one of {', '.join(CHOICES[key])}{more}")
        expected = _FIELD_TYPES.get(key)
        if expected and (not isinstance(value, expected) or (expected is not bool and isinstance(value, bool))):
            raise UsageError(f"preset {name!r}: {key} = {value!r} must be {_TYPE_WORDS[expected]}")


def _chosen(key: str, value) -> bool:
    if key == "device" and isinstance(value, str) and ":" in value:  # cuda:1, mps:0
        kind, index = value.split(":", 1)
        return kind in CHOICES[key] and kind != "cpu" and index.isdigit()
    return value in CHOICES[key]


def preset_dirs() -> list[Path]:
    return [data_dir("presets"), config_dir() / "presets"]


def load_presets() -> dict[str, Preset]:
    presets = {}
    for folder in preset_dirs():
        for path in sorted(folder.glob("*.toml")) if folder.is_dir() else ():
            table = read_toml(path)
            family = table.pop("family", {})
            try:
                _check(path.stem, table)
                for name, fam_table in family.items():
                    _check(f"{path.stem}] [family.{name}", fam_table)
            except UsageError as e:
                raise UsageError(f"{path}: {e}") from None
            presets[path.stem] = Preset(name=path.stem, family_overrides=family, **_on_this_cpu(table))
    return dict(sorted(presets.items(), key=lambda item: (item[1].device != "cpu", item[1].vram_gb, item[0])))


def _on_this_cpu(table: dict) -> dict:
    """An OpenVINO preset's bf16 means "bf16 where the CPU has it": elsewhere torch would emulate bf16 (slower
    than fp32) for the text encoder and VAE, so the whole preset computes in fp32 there."""
    from genimg.device import cpu_has_bf16

    if table.get("compile") == "openvino" and table.get("dtype") == "bf16" and not cpu_has_bf16():
        return {**table, "dtype": "fp32"}
    return table


def get_preset(name: str) -> Preset:
    if name == "auto":
        return pick_auto()[0]
    presets = load_presets()
    if name not in presets:
        raise UsageError(f"unknown preset {name!r}{did_you_mean(name, presets)}: use auto or one of {', '.join(presets)} "
                         "(see `genimg presets`)")
    return presets[name]


def pick_auto(device: str | None = None) -> tuple[Preset, str]:
    """The preset for this machine and why: the largest GPU tier that fits the device's total memory.
    Picked once per process and kept: free memory shrinks as soon as a model is loaded, and a batch
    must not re-plan its second model for a lower tier part-way through."""
    key = (device, tuple(str(d) for d in preset_dirs()))
    if key not in _AUTO:
        _AUTO[key] = _pick_auto(device)
    return _AUTO[key]


_AUTO: dict = {}


def torch_cpu_preset(info=None) -> tuple[Preset, str]:
    """The CPU preset torch runs on this machine and why: bf16 where the CPU has bf16 instructions.
    It is also what runs a model or job the OpenVINO route cannot take."""
    from genimg.device import detect

    info = info or detect("cpu")
    presets = load_presets()
    if info.bf16 and "cpu-bf16" in presets:
        return presets["cpu-bf16"], f"no CUDA or MPS device found; the {info.name} runs bfloat16 natively"
    return presets["cpu"], "no CUDA or MPS device found"


def torch_instead(name: str, overrides: dict, family: str | None = None) -> Preset:
    """What a job the OpenVINO route cannot take runs as: the machine's torch CPU preset in place of
    ``cpu-openvino`` (or ``auto`` that picked it), else the named preset; the user's flags apply, all but
    ``--compile``."""
    named = get_preset(name)
    base = torch_cpu_preset()[0] if named.compile == "openvino" else named
    base = base.for_family(family) if family else base
    return base.with_overrides(**{k: v for k, v in overrides.items() if k != "compile"})


def _pick_auto(device: str | None) -> tuple[Preset, str]:
    from genimg.device import detect

    info = detect(device)
    presets = load_presets()
    if info.kind == "cpu":
        torch_route, why = torch_cpu_preset(info)
        if info.openvino and "cpu-openvino" in presets:
            inside = "in bfloat16" if info.bf16 else "in float32"
            return presets["cpu-openvino"], (f"no CUDA or MPS device found; OpenVINO is installed and runs UNets "
                                             f"{inside} (other models: {torch_route.name})")
        return torch_route, why
    if info.kind == "mps":
        return presets["mps"], "Apple MPS device (unified memory)"
    gpu_tiers = [p for p in presets.values() if p.device == "cuda" and p.vram_gb <= info.total_gb + 0.5]
    if not gpu_tiers:
        lowest = min((p for p in presets.values() if p.device == "cuda"), key=lambda p: p.vram_gb)
        return lowest, f"{info.name} has only {info.total_gb:.1f} GB; using the smallest GPU preset"
    chosen = max(gpu_tiers, key=lambda p: p.vram_gb)
    return chosen, f"{info.name} with {info.total_gb:.1f} GB ({info.free_gb:.1f} GB free now)"
