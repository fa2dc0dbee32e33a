"""From rows to jobs: defaults applied, names users know mapped to spec fields, paths made
absolute, wildcards expanded, and a stable id and seed for every job so a resumed run makes the
same images as an uninterrupted one."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields
from pathlib import Path

from genimg.batch.files import Row
from genimg.errors import UsageError
from genimg.spec import GenerationSpec

ALIASES = {"lora": "loras", "cfg": "guidance", "cfg_scale": "guidance", "negative_prompt": "negative", "sampler": "scheduler",
           "init_image": "image", "denoising_strength": "strength"}
PATH_FIELDS = ("image", "mask", "model_config")
MODEL_FIELDS = ("model", "controlnet")  # a path if one exists beside the file, else an alias or hub id
_SPEC_FIELDS = {f.name for f in fields(GenerationSpec)}
ALLOWED = sorted((_SPEC_FIELDS - {"preset_overrides"}) | set(ALIASES) | {"size"})


@dataclass
class BatchJob:
    id: str
    row: Row
    spec: GenerationSpec  # seed set; count images with seeds seed, seed+1, ...

    def seeds(self) -> list[int]:
        return [self.spec.seed + i for i in range(self.spec.count)]


def normalise(data: dict, where: str, base: Path) -> dict:
    """A row's keys as GenerationSpec fields, with relative paths resolved against the batch file."""
    out = {}
    for key, value in data.items():
        key = key.strip().lower().replace("-", "_")
        if key not in ALLOWED:
            raise UsageError(f"{where}: unknown column {key!r}; allowed: {', '.join(ALLOWED)}")
        if key == "size":
            try:
                out["width"], out["height"] = (int(v) for v in str(value).lower().split("x"))
            except ValueError:
                raise UsageError(f"{where}: size must look like 512x768 (got {value!r})") from None
            continue
        key = ALIASES.get(key, key)
        if key == "loras":
            items = value if isinstance(value, list) else [v for v in str(value).split(";") if v.strip()]
            value = [_relative_lora(str(v).strip(), base) for v in items]
        if key in PATH_FIELDS and value:
            path = Path(str(value)).expanduser()
            value = str(path if path.is_absolute() else (base / path).resolve())
        out[key] = value
    for key in MODEL_FIELDS:
        # A relative model path is relative to the file too; an alias or hub id is left alone.
        if value := out.get(key):
            candidate = base / str(value)
            if not Path(str(value)).is_absolute() and candidate.exists():
                out[key] = str(candidate.resolve())
    return out


def build_jobs(rows: list[Row], file_defaults: dict, cli_defaults: dict, base: Path, source: str,
               base_seed: int, combinatorial: bool = False, repeat: int = 1, wildcard_dirs=()) -> list[BatchJob]:
    """Jobs of every row: command-line defaults, then the file's ``defaults``, then the row itself."""
    from genimg.batch.wildcards import expand

    file_defaults = normalise(file_defaults, f"{source}: defaults", base)
    jobs = []
    for row in rows:
        where = f"{source}:{row.line}"
        settings = {**cli_defaults, **file_defaults, **normalise(row.data, where, base)}
        if not str(settings.get("prompt", "")).strip():
            raise UsageError(f"{where}: the row has no prompt")
        prompts = expand(str(settings["prompt"]), combinatorial, repeat, seed=_mix(base_seed, f"row{row.line}"),
                         wildcard_dirs=wildcard_dirs, where=where)
        for k, prompt in enumerate(prompts):
            job_id = f"r{row.line:04d}-{k:03d}"
            row_seed = settings.get("seed")
            seed = int(row_seed) + (k if repeat > 1 or combinatorial else 0) if row_seed is not None \
                else _mix(base_seed, job_id)
            try:
                spec = GenerationSpec.from_dict({**settings, "prompt": prompt, "seed": seed})
            except TypeError as e:
                raise UsageError(f"{where}: {e}") from None
            jobs.append(BatchJob(job_id, row, spec))
    return jobs


def _relative_lora(text: str, base: Path) -> str:
    """A row's LoRA path (``PATH[:WEIGHT]``) resolved against the batch file's folder."""
    path, sep, weight = text.rpartition(":") if ":" in text else (text, "", "")
    try:
        float(weight)
    except ValueError:
        path, sep, weight = text, "", ""
    full = Path(path).expanduser()
    full = full if full.is_absolute() else (base / full).resolve()
    return f"{full}{sep}{weight}"


def _mix(seed: int, text: str) -> int:
    """A seed for one job, fixed by the batch seed and the job's id alone."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{text}".encode()).digest()[:4], "little")
