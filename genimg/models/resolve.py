"""Turn what the user typed after ``--model`` into a :class:`ModelRef`.

Tried in order: an alias (``aliases.toml``, then the user's own), a local diffusers folder, a local
single-file checkpoint, a Hugging Face hub id. The family comes from the alias, from
``model_index.json``, or from the checkpoint's key names, and never needs the weights loaded.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from genimg.datafiles import load_toml, read_toml
from genimg.errors import UsageError, did_you_mean
from genimg.models.checkpoint import PICKLE_SUFFIXES, safetensors_header, short_hash
from genimg.models.families import FAMILIES, family_from_checkpoint_keys, family_from_pipeline_class
from genimg.paths import config_dir

ALIAS_FILE = Path(__file__).with_name("aliases.toml")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# Per-model settings an alias may carry besides the family defaults.
_ALIAS_SETTINGS = ("width", "height", "steps", "guidance", "scheduler", "max_sequence_length", "cpu_route")
_ALIAS_KEYS = ("family", "repo", "path", "base", "loras", "denoiser", "description", *_ALIAS_SETTINGS)


@dataclass(frozen=True)
class ModelRef:
    ref: str
    kind: str  # "hub" | "folder" | "single_file"
    location: str
    family: str
    name: str
    defaults: dict = field(default_factory=dict)
    config: str | None = None
    allow_pickle: bool = False
    variant: str | None = None  # "inpaint": dedicated inpainting models (9-channel UNet, FLUX Fill); "control":
    # models that read a control map themselves (FLUX.1 Depth/Canny)
    loras: tuple[str, ...] = ()  # LoRAs the alias always applies (few-step LoRAs), as ORG/REPO/FILE[:WEIGHT]
    denoiser: str | None = None  # a GGUF file replacing the model's UNet / transformer
    vae: str | None = None  # another VAE (--vae): a hub id, a folder or a file

    def model_hash(self) -> str | None:
        """A1111's short hash for single files; diffusers folders and hub ids have none."""
        return short_hash(Path(self.location)) if self.kind == "single_file" else None


def aliases() -> dict[str, dict]:
    """Built-in aliases, the packaged demo model, then the user's own (which win)."""
    table = {name: dict(row) for name, row in load_toml(ALIAS_FILE).items()}
    user_file = config_dir() / "aliases.toml"
    if user_file.is_file():
        user = read_toml(user_file)
        for name, row in user.items():
            _check_alias(user_file, name, row)
        table.update(user)
    return table


def _check_alias(path: Path, name: str, row) -> None:
    """A user's alias entry names a known family and says where the weights are."""
    where = f"{path}: alias [{name}]"
    if not isinstance(row, dict):
        raise UsageError(f"{where} must be a table ([{name}] with family = ... and repo = ... or path = ...)")
    if sum(key in row for key in ("repo", "path", "base")) != 1:
        raise UsageError(f"{where} needs exactly one of repo = \"org/name\", path = \"/a/folder\" or "
                         "base = \"another model\"")
    if "base" not in row and row.get("family") not in FAMILIES:
        raise UsageError(f"{where}: family = {row.get('family')!r} is not one of {', '.join(FAMILIES)}")
    unknown = set(row) - set(_ALIAS_KEYS)
    if unknown:
        raise UsageError(f"{where}: unknown key {sorted(unknown)[0]!r}; known: {', '.join(_ALIAS_KEYS)}")
    if row.get("cpu_route", "openvino") not in ("openvino", "torch"):
        raise UsageError(f"{where}: cpu_route = {row['cpu_route']!r}: use \"torch\" (auto never converts it for "
                         "OpenVINO) or \"openvino\"")


def default_model() -> str:
    """The config's ``model`` (file or ``$GENIMG_MODEL``) if set, else the built-in demo model."""
    from genimg import config

    setting = config.settings()["model"]
    if setting.source != "default":
        return setting.value
    if "demo" in aliases():
        return "demo"
    raise UsageError("no model given: pass --model with an alias (sd15, sdxl, flux-schnell), a hub id, "
                     "a diffusers folder or a .safetensors file, or set one: genimg config set model NAME")


def _defaults(family: str, overrides: dict) -> dict:
    fam = FAMILIES[family]
    base = {"width": fam.width, "height": fam.height, "steps": fam.steps, "guidance": fam.guidance,
            "scheduler": fam.scheduler, "max_sequence_length": None, "cpu_route": fam.cpu_route}
    base.update({k: overrides[k] for k in _ALIAS_SETTINGS if k in overrides})
    return base


def resolve_model(ref: str | None, *, config: str | Path | None = None, allow_pickle: bool = False,
                  _seen: tuple = ()) -> ModelRef:
    ref = ref or default_model()
    table = aliases()
    if ref in table:
        row = table[ref]
        if "base" in row:
            return _from_base(ref, row, _seen)
        family = row["family"]
        if "path" in row:
            path = Path(row["path"]).expanduser()
            if not path.is_absolute():
                path = ALIAS_FILE.parent / path
            return ModelRef(ref, "folder", str(path), family, ref, _defaults(family, {**_folder_settings(path), **row}),
                            denoiser=row.get("denoiser"))
        return ModelRef(ref, "hub", row["repo"], family, ref, _defaults(family, row), denoiser=row.get("denoiser"))

    path = Path(ref).expanduser()
    if path.is_dir():
        return _from_folder(ref, path)
    if path.is_file():
        return _from_file(ref, path, config=config, allow_pickle=allow_pickle)
    if HUB_ID.match(ref) and not ref.startswith((".", "~")) and not path.suffix in (".safetensors", *PICKLE_SUFFIXES):
        return _from_hub(ref)
    from genimg import config as settings

    found = settings.search(ref, "model_dirs", (".safetensors", *PICKLE_SUFFIXES), also=(settings.checkpoint_dir(),))
    if found is not None:
        return resolve_model(str(found), config=config, allow_pickle=allow_pickle, _seen=_seen)
    raise UsageError(f"model {ref!r} is not an alias, a folder or a file{did_you_mean(ref, table)}: "
                     f"use one of the aliases ({', '.join(table)}), a hub id like org/name, or an existing path")


def _from_base(ref: str, row: dict, seen: tuple) -> ModelRef:
    """An alias over another model: its own generation defaults and LoRAs (SDXL-Lightning = SDXL + a
    4-step LoRA + 4 steps, no guidance, trailing timesteps)."""
    from dataclasses import replace

    if ref in seen:
        raise UsageError(f"model alias {ref!r} is its own base (through {' -> '.join(seen)})")
    base = resolve_model(row["base"], _seen=(*seen, ref))
    if row.get("family", base.family) != base.family:
        raise UsageError(f"model alias {ref!r}: family = {row['family']!r} but its base {row['base']!r} is {base.family}")
    loras = row.get("loras", [])
    settings = {k: row[k] for k in _ALIAS_SETTINGS if k in row}
    return replace(base, ref=ref, name=ref, defaults={**base.defaults, **settings},
                   loras=(*base.loras, *([loras] if isinstance(loras, str) else loras)),
                   denoiser=row.get("denoiser", base.denoiser))


def _from_folder(ref: str, path: Path) -> ModelRef:
    index = path / "model_index.json"
    if not index.is_file():
        raise UsageError(f"{path} has no model_index.json, so it is not a diffusers pipeline folder; "
                         "pass the folder that holds model_index.json, or a single .safetensors file")
    family, variant = _family_from_index(index)
    return ModelRef(ref, "folder", str(path.resolve()), family, path.name, _defaults(family, _folder_settings(path)),
                    variant=variant)


def _folder_settings(path: Path) -> dict:
    """Generation defaults a model folder carries in ``genimg.toml`` (size, steps, guidance, scheduler)."""
    settings = path / "genimg.toml"
    return read_toml(settings) if settings.is_file() else {}


def _family_from_index(index: Path) -> tuple[str, str | None]:
    """The family, and "inpaint" when the folder holds a dedicated inpainting model ("refiner": SDXL's)."""
    try:
        model_index = json.loads(index.read_text())
        class_name = model_index["_class_name"]
    except (OSError, ValueError, KeyError) as e:
        raise UsageError(f"{index} is not a valid model_index.json ({e})") from None
    family = family_from_pipeline_class(class_name)
    if family is None:
        raise UsageError(f"{index.parent} holds a {class_name}, which genimg does not run "
                         f"(it runs {', '.join(f.label for f in FAMILIES.values())} pipelines)")
    unet_config = index.parent / "unet" / "config.json"
    nine_channels = unet_config.is_file() and json.loads(unet_config.read_text()).get("in_channels") == 9
    if "Fill" in class_name or nine_channels:
        return family, "inpaint"
    if model_index.get("requires_aesthetics_score"):  # SDXL's refiner: it refines a base model's latents
        return family, "refiner"
    # FLUX.1 Depth/Canny [dev] (not a ControlNet): the transformer reads a control map beside the picture
    return family, "control" if class_name.startswith("FluxControl") and "ControlNet" not in class_name else None


def _from_file(ref: str, path: Path, *, config, allow_pickle: bool) -> ModelRef:
    suffix = path.suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        if not allow_pickle:
            raise UsageError(f"{path.name} is a pickle checkpoint, which can run arbitrary code when loaded; "
                             "convert it to .safetensors, or pass --allow-pickle if you trust its source")
        family = variant = None  # keys are only known after unpickling; diffusers infers the type itself
    elif suffix == ".safetensors":
        header = safetensors_header(path)
        family = family_from_checkpoint_keys(k for k in header if k != "__metadata__")
        if family and not FAMILIES[family].single_file:
            raise UsageError(f"{path.name} is a {FAMILIES[family].label} transformer file, and diffusers sets "
                             f"{FAMILIES[family].label} up from a diffusers folder or hub id only; pass one with -m "
                             "(a quantized transformer goes in with --denoiser FILE.gguf)")
        first_conv = header.get("model.diffusion_model.input_blocks.0.0.weight", {}).get("shape", [0, 0])
        flux_input = next((header[k]["shape"] for k in ("img_in.weight", "model.diffusion_model.img_in.weight",
                                                        "x_embedder.weight") if k in header), [0, 0])
        # FLUX's image input: 64 channels, 384 for Fill (picture, masked image, mask), 128 for Depth/Canny
        variant = "inpaint" if first_conv[1] == 9 or flux_input[1] == 384 else "control" if flux_input[1] == 128 else None
        if family is None:
            raise UsageError(f"{path.name} is not a full SD1.x/2.x, SDXL or FLUX checkpoint (no known key names); "
                             "if it is a LoRA, pass it with --lora instead")
    else:
        raise UsageError(f"{path.name}: unknown model file type {suffix!r}; expected .safetensors")
    if config is not None:
        config_path = Path(config).expanduser()
        if not (config_path / "model_index.json").is_file():
            raise UsageError(f"--config {config_path} must be a diffusers folder with model_index.json "
                             "(the same architecture as the checkpoint)")
        config_family, config_variant = _family_from_index(config_path / "model_index.json")
        family, variant = family or config_family, variant or config_variant
        config = str(config_path.resolve())
    if family is None:
        raise UsageError(f"cannot tell the family of {path.name}: pass --config with a diffusers folder of its architecture")
    return ModelRef(ref, "single_file", str(path.resolve()), family, path.stem, _defaults(family, {}),
                    config=config, allow_pickle=allow_pickle, variant=variant)


def _from_hub(repo_id: str) -> ModelRef:
    from huggingface_hub import constants, hf_hub_download, try_to_load_from_cache
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError

    from genimg.models import hub

    local = hub.offline()
    if not local and (reason := hub.unreachable_reason(hub.endpoint())):
        if not isinstance(try_to_load_from_cache(repo_id, "model_index.json"), str):
            raise UsageError(
                f"model {repo_id} is not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and the hub "
                f"({hub.endpoint()}) cannot be reached ({reason}); on a machine with network run "
                f"`hf download {repo_id}`, set HF_ENDPOINT to a mirror, or pass a local folder or .safetensors file")
        local = True  # cached: used as it is, without retrying the hub for every file (loading does the same)

    try:
        index = hf_hub_download(repo_id, "model_index.json", local_files_only=local)
    except LocalEntryNotFoundError:
        raise hub.not_cached_offline(repo_id) from None
    except RepositoryNotFoundError:
        raise UsageError(f"no model {repo_id} on the Hugging Face hub (or it is gated: log in with `hf auth login`)") from None
    except EntryNotFoundError:
        raise UsageError(f"{repo_id} has no model_index.json, so it is not a diffusers pipeline; "
                         "download its .safetensors file and pass that path") from None
    family, variant = _family_from_index(Path(index))
    return ModelRef(repo_id, "hub", repo_id, family, repo_id, _defaults(family, {}), variant=variant)
