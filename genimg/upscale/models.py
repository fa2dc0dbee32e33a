"""Which upscaler ``--model`` names: an alias (``upscalers.toml``), a weights file spandrel knows, a
diffusers upscaler folder, or a hub id in the Hugging Face cache. Nothing is loaded here."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from genimg.errors import UsageError, did_you_mean
from genimg.models.checkpoint import PICKLE_SUFFIXES, safetensors_header

ALIAS_FILE = Path(__file__).with_name("upscalers.toml")
A1111_NAMES = Path(__file__).with_name("a1111_names.toml")  # A1111's upscaler names -> file names
MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
DEFAULT = "demo-upscaler"
# model_index.json classes of the diffusion upscalers.
PIPELINE_KINDS = {"StableDiffusionUpscalePipeline": "sd-x4", "StableDiffusionLatentUpscalePipeline": "sd-latent-x2"}
NATIVE_SCALE = {"sd-x4": 4, "sd-latent-x2": 2}


@dataclass(frozen=True)
class UpscalerRef:
    name: str
    kind: str  # "spandrel" | "resample" | "sd-x4" | "sd-latent-x2" | "face" (a face restorer, genimg.upscale.faces)
    location: str | None = None  # file, folder or hub id
    allow_pickle: bool = False

    @property
    def diffusion(self) -> bool:
        return self.kind in NATIVE_SCALE


def upscaler_aliases() -> dict[str, dict]:
    from genimg.datafiles import load_toml

    return load_toml(ALIAS_FILE)


def folder_upscalers() -> list[str]:
    """The safetensors upscalers in the upscaler folders (config ``upscaler_dirs``), by name (file stem)."""
    from genimg import config

    return sorted({p.stem for folder in config.get("upscaler_dirs") for p in Path(folder).expanduser().glob("*.safetensors")})


def a1111_upscaler(name: str) -> str | None:
    """The upscaler an A1111 name (``R-ESRGAN 4x+``, ``ESRGAN_4x`` …) means here: the file its users have
    for it, when an upscaler folder holds it as safetensors; else None."""
    from genimg.datafiles import load_toml

    present = folder_upscalers()
    return next((stem for stem in load_toml(A1111_NAMES).get(name, ()) if stem in present), None)


def a1111_names_present() -> list[str]:
    """A1111's upscaler names whose files an upscaler folder holds."""
    from genimg.datafiles import load_toml

    present = folder_upscalers()
    return [name for name, stems in load_toml(A1111_NAMES).items() if any(s in present for s in stems)]


def a1111_file_of(name: str) -> str | None:
    """The file A1111 keeps for its upscaler ``name``, when it is one of A1111's."""
    from genimg.datafiles import load_toml

    stems = load_toml(A1111_NAMES).get(name)
    return stems[0] if stems else None


def resolve_upscaler(text: str | None, allow_pickle: bool = False) -> UpscalerRef:
    if not text:
        from genimg import config

        text = config.get("upscaler") or DEFAULT
    table = upscaler_aliases()
    if text in table:
        row = table[text]
        if row["kind"] == "resample":
            return UpscalerRef(text, "resample")
        if "path" in row:
            return _from_path(text, MODELS_DIR / row["path"], allow_pickle)
        return _from_hub(text, row["repo"], row["kind"])
    path = Path(text).expanduser()
    if path.exists():
        return _from_path(path.name, path, allow_pickle)
    from genimg import config

    found = config.search(text, "upscaler_dirs", (".safetensors", *PICKLE_SUFFIXES))
    if found is not None:
        return _from_path(found.name, found, allow_pickle)
    from genimg.models.resolve import HUB_ID

    if HUB_ID.match(text) and not path.suffix:
        return _from_hub(text, text, None)
    raise UsageError(f"upscaler {text!r} is not an alias, a file, a folder or a hub id{did_you_mean(text, table)}; "
                     f"aliases: {', '.join(table)}")


def _from_path(name: str, path: Path, allow_pickle: bool) -> UpscalerRef:
    if path.is_dir():
        index = path / "model_index.json"
        if index.is_file():
            return UpscalerRef(name, _pipeline_kind(index), str(path.resolve()))
        weights = sorted(path.glob("*.safetensors"))
        if len(weights) == 1:  # a folder with one upscaler file (`genimg learn demo-upscaler -o DIR` writes one)
            return _from_path(name, weights[0], allow_pickle)
        raise UsageError(f"upscaler folder {path} has no model_index.json and "
                         f"{'several' if weights else 'no'} .safetensors files; give a weights file or a diffusers "
                         "upscaler folder")
    return weights_ref(name, path, allow_pickle)


def weights_ref(name: str, path: Path, allow_pickle: bool, kind: str = "spandrel", what: str = "upscaler") -> UpscalerRef:
    """A weights file spandrel loads (an upscaler, or a face restorer with ``kind`` "face"), checked now: a
    pickle only when allowed, a damaged safetensors header said before any work."""
    suffix = path.suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        if not allow_pickle:
            raise UsageError(f"{what} {path.name} is a pickle file, which can run code when loaded; convert it to "
                             ".safetensors, or pass --allow-pickle if you trust its source")
    elif suffix == ".safetensors":
        safetensors_header(path)  # a damaged file says so now, before any work
    else:
        raise UsageError(f"{what} {path.name}: unknown weights file type {suffix!r}; expected .safetensors "
                         "(or .pth with --allow-pickle)")
    return UpscalerRef(name, kind, str(path.resolve()), allow_pickle)


def _pipeline_kind(index: Path) -> str:
    try:
        cls = json.loads(index.read_text())["_class_name"]
    except (OSError, ValueError, KeyError) as e:
        raise UsageError(f"{index} is not a valid model_index.json ({e})") from None
    if cls not in PIPELINE_KINDS:
        raise UsageError(f"{index.parent} holds a {cls}, not an upscaler pipeline "
                         f"({', '.join(PIPELINE_KINDS)})")
    return PIPELINE_KINDS[cls]


def _from_hub(name: str, repo: str, kind: str | None) -> UpscalerRef:
    from huggingface_hub import constants, try_to_load_from_cache

    index = try_to_load_from_cache(repo, "model_index.json")
    if not isinstance(index, str):
        raise UsageError(f"upscaler {repo} is not in the Hugging Face cache ({constants.HF_HUB_CACHE}); on a machine "
                         f"with network run `hf download {repo}`, or pass a local folder or weights file")
    return UpscalerRef(name, kind or _pipeline_kind(Path(index)), repo)
