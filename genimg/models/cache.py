"""What the Hugging Face cache holds, model by model, and freeing it (huggingface_hub's own scan and
delete, so its bookkeeping stays right)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from genimg.errors import UsageError


@dataclass(frozen=True)
class CachedRepo:
    repo: str
    size_bytes: int
    family: str | None  # from model_index.json; None for LoRAs, upscalers, annotators …
    dtype: str | None  # of the denoiser's weights, read from a safetensors header
    fp16_variant: bool  # the repository's *.fp16.safetensors files are here
    path: str


def cached_repos() -> list[CachedRepo]:
    from huggingface_hub import constants, scan_cache_dir

    from genimg.models.download import is_fp16_variant

    try:
        info = scan_cache_dir(constants.HF_HUB_CACHE)
    except Exception:  # noqa: BLE001 - no cache folder yet: nothing cached
        return []
    out = []
    for repo in sorted(info.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model":
            continue
        snapshot = max(repo.revisions, key=lambda r: r.last_modified).snapshot_path
        out.append(CachedRepo(repo.repo_id, repo.size_on_disk, _family(snapshot), _dtype(snapshot),
                              any(is_fp16_variant(f.file_name) for rev in repo.revisions for f in rev.files),
                              str(repo.repo_path)))
    return out


def _family(snapshot: Path) -> str | None:
    from genimg.models.families import family_from_pipeline_class

    index = snapshot / "model_index.json"
    try:
        return family_from_pipeline_class(json.loads(index.read_text())["_class_name"])
    except (OSError, ValueError, KeyError):
        return None


def _dtype(snapshot: Path) -> str | None:
    from genimg.models.checkpoint import safetensors_header

    for folder in ("unet", "transformer"):
        for file in sorted((snapshot / folder).glob("*.safetensors")):
            header = safetensors_header(file)
            first = next((v for k, v in header.items() if k != "__metadata__"), None)
            if first:
                return {"F32": "fp32", "F16": "fp16", "BF16": "bf16"}.get(first["dtype"], first["dtype"].lower())
    return None


def remove_repo(repo_id: str) -> int:
    """Delete every cached revision of ``repo_id``; returns the bytes freed."""
    from huggingface_hub import constants, scan_cache_dir

    info = scan_cache_dir(constants.HF_HUB_CACHE)
    found = [r for r in info.repos if r.repo_id == repo_id and r.repo_type == "model"]
    if not found:
        held = ", ".join(r.repo_id for r in info.repos) or "nothing"
        raise UsageError(f"{repo_id} is not in the Hugging Face cache (it holds {held})")
    strategy = info.delete_revisions(*(rev.commit_hash for rev in found[0].revisions))
    strategy.execute()
    return strategy.expected_freed_size


def cached_file_bytes(repo_id: str, revision: str, files) -> int:
    """How many bytes of ``files`` (of ``repo_id`` at ``revision``) the cache already holds."""
    from huggingface_hub import try_to_load_from_cache

    found = (try_to_load_from_cache(repo_id, name, revision=revision) for name in files)
    return sum(Path(path).stat().st_size for path in found if isinstance(path, str))


def cached_variant(repo_id: str) -> str | None:
    """"fp16" when the cached snapshot holds a component's weights only as the fp16 variant (what
    `genimg models download` fetches for half-precision presets); diffusers then has to be asked for
    that variant. A pipeline's components are its folders; a single model (a ControlNet) is the snapshot."""
    from huggingface_hub import try_to_load_from_cache

    from genimg.models.download import is_fp16_variant

    index = try_to_load_from_cache(repo_id, "model_index.json")
    if isinstance(index, str):
        folders = [f for f in Path(index).parent.iterdir() if f.is_dir()]
    else:
        config = try_to_load_from_cache(repo_id, "config.json")
        if not isinstance(config, str):
            return None
        folders = [Path(config).parent]
    for folder in folders:
        weights = [f.name for f in folder.glob("*.safetensors")]
        if weights and all(is_fp16_variant(name) for name in weights):
            return "fp16"
    return None


@dataclass(frozen=True)
class LocalFile:
    """A weights file in one of the user's folders (downloaded checkpoints, LoRA folders)."""
    path: str
    kind: str  # "checkpoint" | "lora"
    size_bytes: int
    family: str | None


def local_files() -> list[LocalFile]:
    """The .safetensors files in the configured model, checkpoint and LoRA folders, with what each is for
    (read from the file's header: a checkpoint's key names, a LoRA's metadata and keys)."""
    from genimg import config
    from genimg.adapters import lora_family
    from genimg.models.checkpoint import safetensors_header
    from genimg.models.families import family_from_checkpoint_keys
    from genimg.prompting.inline import lora_dirs

    checkpoints = [*(Path(p).expanduser() for p in config.get("model_dirs")), config.checkpoint_dir()]
    out = []
    for kind, folders in (("checkpoint", checkpoints), ("lora", lora_dirs())):
        for folder in folders:
            for file in sorted(folder.glob("*.safetensors")) if folder.is_dir() else []:
                try:
                    family = (family_from_checkpoint_keys(safetensors_header(file)) if kind == "checkpoint"
                              else lora_family(file))
                except UsageError:
                    family = None  # damaged: listed, so the user can see and remove it
                out.append(LocalFile(str(file), kind, file.stat().st_size, family))
    return out
