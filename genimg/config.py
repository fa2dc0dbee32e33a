"""The user's defaults: ``config.toml`` in the config folder (``GENIMG_CONFIG`` names another file),
each key also as ``GENIMG_<KEY>`` in the environment. Flags win over both, the environment over the
file, the file over genimg's own defaults.

Only keys that something reads are here; each says what reads it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from genimg.errors import UsageError, did_you_mean


@dataclass(frozen=True)
class Key:
    kind: type  # str, bool, float or list (of str)
    help: str
    default: object = None


KEYS = {
    "model": Key(str, "default --model of the generating commands (an alias, hub id, folder or file)", "demo"),
    "preset": Key(str, "default --preset", "auto"),
    "device": Key(str, "default --device (cpu, cuda, cuda:1, mps); empty: the preset's"),
    "scheduler": Key(str, "default --sampler; empty: the model's"),
    "output": Key(str, "default -o: a folder, or a file-name template with {prompt} {seed} …", "outputs"),
    "upscaler": Key(str, "default --model of genimg upscale", "demo-upscaler"),
    "captioner": Key(str, "default --model of genimg caption (and lora-train --caption auto, the server's interrogate)", "blip"),
    "tagger": Key(str, "the server's interrogate with model deepdanbooru: a WD14 tagger (an alias, hub id or folder)", "wd14"),
    "lora_dirs": Key(list, "folders searched for <lora:NAME> in prompts (besides the config folder's loras/)", []),
    "checkpoint_dir": Key(str, "where `genimg models download URL` saves checkpoints; empty: the data folder's checkpoints/"),
    "model_dirs": Key(list, "folders searched for -m NAME (NAME or NAME.safetensors; checkpoint_dir always is)", []),
    "embedding_dirs": Key(list, "folders searched for --embedding NAME (besides the config folder's embeddings/)", []),
    "upscaler_dirs": Key(list, "folders searched for genimg upscale --model NAME", []),
    "face_restorer": Key(str, "the face restorer of --restore-faces without a name and the server's restore_faces "
                         "(a file, a name in face_restorer_dirs, or GFPGAN, CodeFormer, RestoreFormer)"),
    "face_restorer_dirs": Key(list, "folders searched for --restore-faces NAME", []),
    "hf_endpoint": Key(str, "Hugging Face hub or mirror URL (sets HF_ENDPOINT when that is not set)"),
    "hf_offline": Key(bool, "never reach the hub, use the cache only (sets HF_HUB_OFFLINE)", False),
    "server": Key(str, "a genimg server the generating commands use (URL); auto: the one this machine runs, started "
                  "in the background when none is; empty: the one this machine runs, if any"),
    "server_idle_exit": Key(float, "minutes without work after which a server started by server = auto exits", 10.0),
    "server_token": Key(str, "the token of that server (genimg serve --token)"),
}


@dataclass(frozen=True)
class Setting:
    key: str
    value: object
    source: str  # "default", "FILE:LINE", "environment GENIMG_KEY" or "flag"


def config_file() -> Path:
    from genimg.paths import config_dir

    return Path(os.environ["GENIMG_CONFIG"]).expanduser() if os.environ.get("GENIMG_CONFIG") else config_dir() / "config.toml"


def env_name(key: str) -> str:
    return f"GENIMG_{key.upper()}"


def _coerce(key: str, value, where: str):
    """``value`` as the key's type, or a one-line error naming the key, the value, what is allowed and where."""
    kind = KEYS[key].kind
    if kind is list:
        if isinstance(value, str):  # environment and `config set`: separated like PATH (or commas)
            value = [part for part in re.split(rf"[{re.escape(os.pathsep)},]", value) if part]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
        raise UsageError(f"{where}: {key} = {value!r} must be a list of folders, e.g. [\"~/loras\"]")
    if kind is bool:
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return value.lower() in ("1", "true", "yes", "on")
        if isinstance(value, bool):
            return value
        raise UsageError(f"{where}: {key} = {value!r} must be true or false")
    if kind is float:
        try:
            number = float(value) if not isinstance(value, bool) else None
        except (TypeError, ValueError):
            number = None
        if number is not None and number >= 0:
            return number
        raise UsageError(f"{where}: {key} = {value!r} must be a number of minutes, 0 or more")
    if isinstance(value, str):
        return value
    raise UsageError(f"{where}: {key} = {value!r} must be text (in quotes)")


def _file_settings(path: Path) -> dict[str, Setting]:
    from genimg.datafiles import read_toml

    if not path.is_file():
        return {}
    table = read_toml(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    out = {}
    for key, value in table.items():
        line = next((i + 1 for i, text in enumerate(lines) if re.match(rf"\s*{re.escape(key)}\s*=", text)), 0)
        where = f"{path}:{line}"
        if key not in KEYS:
            raise UsageError(f"{where}: unknown key {key!r}{did_you_mean(key, KEYS)}; known keys: {', '.join(KEYS)}")
        out[key] = Setting(key, _coerce(key, value, where), where)
    return out


def settings() -> dict[str, Setting]:
    """Every key with its value and where the value came from (flags are applied by the commands)."""
    found = {key: Setting(key, spec.default, "default") for key, spec in KEYS.items()}
    found.update(_file_settings(config_file()))
    for key in KEYS:
        name = env_name(key)
        if os.environ.get(name):
            found[key] = Setting(key, _coerce(key, os.environ[name], f"environment {name}"), f"environment {name}")
    return found


def get(key: str):
    return settings()[key].value


def search(name: str, key: str, suffixes: tuple[str, ...], also=()) -> Path | None:
    """``name`` (as it is, or with one of ``suffixes``) in the folders of the list setting ``key`` and
    ``also``: what lets users write ``-m mymodel`` for ``~/models/mymodel.safetensors``."""
    if not name or "/" in name or "\\" in name:
        return None
    for folder in (*(Path(p).expanduser() for p in get(key)), *also):
        for candidate in (folder / name, *(folder / f"{name}{suffix}" for suffix in suffixes)):
            if candidate.exists():
                return candidate
    return None


GENERATION_KEYS = ("model", "preset", "scheduler", "preset_overrides")  # what generation_defaults fills in


def generation_defaults(given: dict) -> dict:
    """The user's defaults for a generation under ``given`` (spec field -> value, None where not given):
    ``model``, ``preset`` and ``scheduler`` filled from the environment, else the config file, else
    genimg's own; ``device`` as a preset override. Flags and batch rows, being ``given``, win. The one place
    the precedence flag > environment > file > built-in is applied, for every command, batch row and the API."""
    found = settings()
    out = {key: given.get(key) if given.get(key) is not None else found[key].value
           for key in ("model", "preset", "scheduler")}
    overrides = dict(given.get("preset_overrides") or {})
    if "device" not in overrides and found["device"].value:
        overrides["device"] = found["device"].value
    out["preset_overrides"] = overrides
    return out


def checkpoint_dir() -> Path:
    from genimg.paths import data_dir

    return Path(get("checkpoint_dir") or data_dir() / "checkpoints").expanduser()


def apply_hub_settings() -> None:
    """The hub keys as the environment variables huggingface_hub reads at import (its own variables,
    when the user set them, win)."""
    found = settings()
    if found["hf_endpoint"].value and "HF_ENDPOINT" not in os.environ:
        os.environ["HF_ENDPOINT"] = found["hf_endpoint"].value
    if found["hf_offline"].value and "HF_HUB_OFFLINE" not in os.environ:
        os.environ["HF_HUB_OFFLINE"] = "1"


def typed_value(key: str, text: str):
    """``text`` as the key's type, or a one-line error naming the key."""
    _known(key)
    return _coerce(key, text, f"genimg config set {key}")


def set_value(key: str, text: str) -> Path:
    """Write ``key = text`` (parsed as the key's type) into the config file; returns the file."""
    return _write({**_raw(), key: typed_value(key, text)})


def unset(key: str) -> tuple[Path, bool]:
    """Remove ``key`` from the config file: (the file, whether the key was there)."""
    _known(key)
    raw = _raw()
    if key not in raw:
        return config_file(), False
    return _write({k: v for k, v in raw.items() if k != key}), True


def source_of(key: str) -> str:
    """Where the user's ``key`` comes from, for error messages: the file and line, or the environment."""
    return settings()[key].source


def _known(key: str) -> None:
    if key not in KEYS:
        raise UsageError(f"unknown config key {key!r}{did_you_mean(key, KEYS)}; known keys: {', '.join(KEYS)}")


def _raw() -> dict:
    from genimg.datafiles import read_toml

    path = config_file()
    return read_toml(path) if path.is_file() else {}


def _write(table: dict) -> Path:
    from genimg.files import atomic_save

    def literal(value) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, list):
            return "[" + ", ".join(literal(v) for v in value) + "]"
        if isinstance(value, float):
            return repr(value)
        return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'

    text = "# genimg settings: `genimg config show` lists every key and where its value comes from.\n"
    text += "".join(f"{key} = {literal(value)}\n" for key, value in table.items())
    path = config_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_save(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), overwrite=True)
