"""Where a ControlNet's weights are: a diffusers folder (``config.json``), a single ``.safetensors``
file, or a hub id already in the Hugging Face cache. Its family is its base model's."""

from __future__ import annotations

import json
from pathlib import Path

from genimg.errors import UsageError
from genimg.models.checkpoint import PICKLE_SUFFIXES
from genimg.models.resolve import HUB_ID, ModelRef

# The ControlNet classes' names in config.json, by the family they steer.
CONFIG_CLASSES = {"ControlNetModel": ("sd", "sdxl"), "ControlNetUnionModel": ("sdxl",), "FluxControlNetModel": ("flux",)}
ALIAS_FILE = Path(__file__).with_name("controlnets.toml")


def controlnet_aliases() -> dict[str, dict]:
    from genimg.datafiles import load_toml

    return load_toml(ALIAS_FILE)


def resolve_controlnet(text: str, family: str, allow_pickle: bool = False) -> ModelRef:
    table = controlnet_aliases()
    path = Path(text).expanduser()
    if text in table:
        path = Path(table[text]["path"])
        path = path if path.is_absolute() else ALIAS_FILE.parent / path
    if path.is_dir():
        config = path / "config.json"
        if not config.is_file():
            raise UsageError(f"ControlNet folder {path} has no config.json; pass a diffusers ControlNet folder "
                             "or a .safetensors file")
        settings = json.loads(config.read_text())
        _check_family(settings, family, path.name)
        return ModelRef(text, "folder", str(path.resolve()), family, path.name, variant=_variant(settings))
    if path.is_file():
        if path.suffix.lower() == ".safetensors":
            from genimg.models.checkpoint import safetensors_header

            header = safetensors_header(path)  # a damaged file: one line saying so, before any load
            if any(("x_embedder.lora_A" in k or "img_in.lora_A" in k) for k in header):
                # FLUX.1 Depth/Canny as a LoRA: it widens the image input to read the control map's latents
                return ModelRef(text, "single_file", str(path.resolve()), family, path.stem, variant="control-lora")
        if path.suffix.lower() in PICKLE_SUFFIXES and not allow_pickle:
            raise UsageError(f"ControlNet {path.name} is a pickle file, which can run arbitrary code when loaded; "
                             "convert it to .safetensors, or pass --allow-pickle if you trust its source")
        return ModelRef(text, "single_file", str(path.resolve()), family, path.stem, allow_pickle=allow_pickle)
    if HUB_ID.match(text) and path.suffix.lower() not in (".safetensors", *PICKLE_SUFFIXES):  # ids may hold dots
        from genimg.models.hub import repo_config

        config = repo_config(text, "ControlNet")
        _check_family(config, family, text)
        return ModelRef(text, "hub", text, family, text.split("/")[-1], variant=_variant(config))
    raise UsageError(f"ControlNet {text!r} is not a folder, a file or a hub id (org/name)")


def _check_family(config: dict, family: str, name: str) -> None:
    """The ControlNet's class (config.json) is one made for ``family``'s models."""
    cls = config.get("_class_name")
    made_for = CONFIG_CLASSES.get(cls, ())
    if cls == "ControlNetModel":  # SDXL's take its size and crop conditioning ("text_time"), SD's do not
        made_for = ("sdxl",) if config.get("addition_embed_type") == "text_time" else ("sd",)
    if family not in made_for:
        raise UsageError(f"{name} is a {cls or 'model of unknown class'}, not a ControlNet for this "
                         f"{family.upper()} model; use one trained for the same family")


def _variant(config: dict) -> str | None:
    """"union" for a union ControlNet (one model, many kinds of map, told apart by a mode): SDXL's have
    their own class, FLUX's are FluxControlNetModels with a mode embedding (``num_mode``)."""
    union = config.get("_class_name") == "ControlNetUnionModel" or config.get("num_mode") is not None
    return "union" if union else None


DEFAULTS_FILE = Path(__file__).with_name("controlnet_defaults.toml")


def default_controlnet(control_type: str, model) -> str:
    """The ControlNet a ``control_type`` control uses on ``model`` (a ModelRef) when none is named: the model
    alias's own when it has a table of them (a model of its own make, like the demo, takes none of its family's),
    else its family's; one line when there is none."""
    from genimg.datafiles import load_toml

    table = load_toml(DEFAULTS_FILE)
    own = table.get("alias", {}).get(model.ref)
    row = own if own is not None else table.get(model.family, {})
    if control_type in row:
        return row[control_type]
    if own is not None:
        raise UsageError(f"the {model.ref} model has ControlNets for {', '.join(sorted(own))} only (its family's "
                         f"do not fit it); for {control_type}, use a full-size model (e.g. -m sd15) or name a ControlNet "
                         f"made for it: {control_type}=IMAGE,model=NAME_OR_PATH")
    raise UsageError(f"no ControlNet is configured for {control_type} controls on {model.family.upper()} models; "
                     f"name one: {control_type}=IMAGE,model=NAME_OR_PATH (defaults: {DEFAULTS_FILE.name})")


UNION_MODES_FILE = Path(__file__).with_name("union_modes.toml")


def union_modes(family: str | None = None) -> dict[str, int]:
    """The union ControlNets' modes of ``family`` (name -> control_mode); all names without one."""
    from genimg.datafiles import load_toml

    table = load_toml(UNION_MODES_FILE)
    if family:
        return table[family]
    return {name: index for modes in table.values() for name, index in modes.items()}
