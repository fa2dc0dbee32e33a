"""`genimg models download`: fetch a hub repository into the Hugging Face cache, only what loads.

A diffusers repository typically holds each weight several times: ``.safetensors`` and pickle
``.bin`` copies, fp32 and ``.fp16`` variants, and a single-file checkpoint at the top (SDXL base:
~14 GB of fp32 safetensors, 7 GB in fp16, 30+ GB in all). What a pipeline loads is its
``model_index.json``, the configs and tokenizer files of the components it names, and one set of
safetensors per component: the fp16 variant when the preset runs in half precision and the
repository has one. Files come through ``hf_hub_download`` one by one, so ``HF_ENDPOINT`` (mirrors),
``HF_TOKEN``, the cache layout and resuming an interrupted file are huggingface_hub's own.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import PurePosixPath

from genimg.errors import UsageError
from genimg.files import free_space
from genimg.models.cache import cached_file_bytes, is_fp16_variant
from genimg.models.hub import endpoint, hub_error, why_unreachable

# Files a component folder needs besides its weights: configs, tokenizer vocabularies and merges.
SMALL_SUFFIXES = (".json", ".txt", ".model")
# What a single diffusers model's from_pretrained reads: diffusion_pytorch_model[.fp16][-0000N-of-0000M].safetensors
_DIFFUSERS_WEIGHTS = re.compile(r"diffusion_pytorch_model(\.fp16)?(-\d+-of-\d+)?\.safetensors$")
SPACE_MARGIN = 1.05  # the cache must hold the files and a little more
DOWNLOAD_WORKERS = 8  # files fetched at once (huggingface_hub's snapshot_download default)


@dataclass(frozen=True)
class DownloadPlan:
    repo: str
    revision: str  # what was asked for (a branch: the cache records it, so loads find the files)
    commit: str
    files: tuple[str, ...]
    sizes: dict
    fp16: bool  # the fp16 variant was chosen

    @property
    def total(self) -> int:
        return sum(self.sizes.get(f, 0) for f in self.files)


def choose_files(files: list[str], half: bool, components: set[str] | None = None) -> tuple[tuple[str, ...], bool]:
    """The files a pipeline (or a single model) loads from a repository listing ``files``, and whether
    the fp16 variant was taken: ``half`` and the repository has one. ``components``: the folders a
    pipeline's ``from_pretrained`` reads (see :func:`loaded_components`); files in others are left."""
    pipeline = "model_index.json" in files
    # A single diffusers model (a ControlNet): config.json and diffusion_pytorch_model weights. Other
    # weights at its top are what from_pretrained never reads (xinsir's union repository keeps its
    # 2.5 GB ProMax file there, beside the model).
    single_model = not pipeline and "config.json" in files and any(_DIFFUSERS_WEIGHTS.match(f) for f in files)
    wanted = []
    for name in files:
        path = PurePosixPath(name)
        in_folder = len(path.parts) > 1
        if pipeline and not in_folder and name != "model_index.json" and path.suffix != ".json":
            continue  # a single-file checkpoint beside the diffusers folders: a second copy of everything
        if single_model and path.suffix == ".safetensors" and not _DIFFUSERS_WEIGHTS.match(name):
            continue
        if pipeline and in_folder and components is not None and path.parts[0] not in components:
            continue  # a folder model_index.json does not name, or a component loaded as None
        if path.suffix == ".safetensors" or (path.suffix == ".json" and ".safetensors.index" in name):
            wanted.append(name)
        elif path.suffix in SMALL_SUFFIXES:
            wanted.append(name)
    fp16 = half and any(is_fp16_variant(f) and f.endswith(".safetensors") for f in wanted)
    by_folder: dict[str, list[str]] = {}
    for name in wanted:
        by_folder.setdefault(str(PurePosixPath(name).parent), []).append(name)
    chosen = []
    for names in by_folder.values():
        weights = [n for n in names if n.endswith(".safetensors") or ".safetensors.index" in n]
        variant = [n for n in weights if is_fp16_variant(n)]
        plain = [n for n in weights if not is_fp16_variant(n)]
        keep = (variant or plain) if fp16 else (plain or variant)  # a folder with only one kind keeps it
        chosen += [n for n in names if n not in weights or n in keep]
    return tuple(sorted(chosen)), fp16


def loaded_components(model_index: dict) -> set[str]:
    """The component folders ``from_pretrained`` reads for a pipeline with this ``model_index.json``:
    those it names with a class, less those genimg passes as None (its family's skipped components)."""
    from genimg.models.families import FAMILIES, family_from_pipeline_class

    family = family_from_pipeline_class(model_index.get("_class_name", ""))
    skipped = set(FAMILIES[family].skipped_components) if family else set()
    return {name for name, value in model_index.items() if not name.startswith("_") and isinstance(value, list)
            and len(value) == 2 and value[0] is not None and name not in skipped}


def plan_download(repo: str, half: bool, revision: str | None = None) -> DownloadPlan:
    """List ``repo`` on the hub and choose its files; hub errors (missing, gated, unreachable) as one line."""
    from huggingface_hub import HfApi


    reason = why_unreachable()
    if reason:
        raise UsageError(f"cannot download {repo} from {endpoint()}: {reason}; run it where there is a connection "
                         "(without HF_HUB_OFFLINE), or set HF_ENDPOINT to a mirror")
    try:
        info = HfApi(endpoint=endpoint()).model_info(repo, revision=revision, files_metadata=True)
    except Exception as e:  # noqa: BLE001 - translated below
        raise hub_error(repo, e) from None
    sizes = {s.rfilename: s.size or 0 for s in info.siblings or []}
    components = None
    if "model_index.json" in sizes:  # a few hundred bytes that say which folders load
        import json

        from huggingface_hub import hf_hub_download

        try:
            index = hf_hub_download(repo, "model_index.json", revision=info.sha, endpoint=endpoint())
        except Exception as e:  # noqa: BLE001 - translated below
            raise hub_error(repo, e, "model_index.json") from None
        with open(index, encoding="utf-8") as f:
            components = loaded_components(json.load(f))
    files, fp16 = choose_files(sorted(sizes), half, components)
    if not files:
        raise UsageError(f"{repo} holds no safetensors weights or configs genimg can load")
    return DownloadPlan(repo, revision or "main", info.sha, files, sizes, fp16)


def download(plan: DownloadPlan, progress=None) -> str:
    """Fetch the plan's files into the cache (those already there are not fetched again); returns the
    snapshot folder. A file cut off part-way stays as huggingface_hub's ``.incomplete`` blob, which the
    next run resumes; nothing unfinished ever sits where a load would take it."""
    from pathlib import Path

    from huggingface_hub import constants, hf_hub_download


    check_space(plan, Path(constants.HF_HUB_CACHE))

    def fetch(name: str) -> tuple[str, str]:
        try:
            return name, hf_hub_download(plan.repo, name, revision=plan.revision, endpoint=endpoint())
        except Exception as e:  # noqa: BLE001 - translated below
            raise hub_error(plan.repo, e, name) from None

    done, path = 0, None
    # Several files at once, as snapshot_download fetches them; progress is reported as each one lands.
    with ThreadPoolExecutor(max_workers=DOWNLOAD_WORKERS) as pool:
        for name, path in pool.map(fetch, plan.files):
            done += plan.sizes.get(name, 0)
            if progress:
                progress("download", file=name, done=done, total=plan.total)
    return str(Path(path).parents[len(PurePosixPath(plan.files[-1]).parts) - 1])


def check_space(plan: DownloadPlan, cache) -> None:
    needed = plan.total - cached_file_bytes(plan.repo, plan.commit, plan.files)
    free = free_space(cache)
    if needed * SPACE_MARGIN > free:
        raise UsageError(f"{plan.repo} needs {needed / 1e9:.2f} GB but {cache} has {free / 1e9:.2f} GB free; "
                         "free some space (`genimg models rm NAME`) or point HF_HUB_CACHE at a larger disk")
