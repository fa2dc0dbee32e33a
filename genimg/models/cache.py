"""What the Hugging Face cache holds, model by model, and freeing it (huggingface_hub's own scan and
delete, so its bookkeeping stays right)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from genimg.errors import UsageError


# The variant marker diffusers writes: name.fp16.safetensors, name.fp16-00001-of-00002.safetensors,
# name.safetensors.index.fp16.json.
FP16_VARIANT = re.compile(r"\.fp16(\.|-)")


def is_fp16_variant(name: str) -> bool:
    return bool(FP16_VARIANT.search(name))


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

    from huggingface_hub.errors import CacheNotFound

    try:
        info = scan_cache_dir(constants.HF_HUB_CACHE)
    except CacheNotFound:
        raise UsageError(f"{repo_id} is not in the Hugging Face cache ({constants.HF_HUB_CACHE} does not exist yet)") from None
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
