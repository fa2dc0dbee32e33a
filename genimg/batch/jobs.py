"""From rows to jobs: defaults applied, relative paths made absolute, wildcards expanded, each row
turned into a spec through the one way in (:meth:`GenerationSpec.from_dict`), and a stable id and
seed for every job.

A job is "the same job" when it comes from the same file name with the same resolved settings (the
row after defaults, its prompt before wildcard expansion) and the same repeat index. Its id and its
seed derive from that content, not from the line it stands on: editing other lines, adding comments,
reordering rows or sharing an output folder between files never remakes or renames finished images.
A row that cannot become a spec is reported with its file and line; the other rows still run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from genimg.batch.files import Row
from genimg.errors import UsageError, did_you_mean
from genimg.spec import GenerationSpec, known_keys

PATH_FIELDS = ("image", "init_image", "mask", "model_config")
MODEL_FIELDS = ("model", "controlnet", "vae", "denoiser")  # a path if one exists beside the file, else an alias or hub id


@dataclass(frozen=True)
class BatchJob:
    id: str
    row: Row
    spec: GenerationSpec  # seed set; count images with seeds seed, seed+1, ...
    template: str  # the row's prompt before wildcards: what a contact sheet groups by

    def seeds(self) -> list[int]:
        return [seed for seed, _ in self.spec.image_seeds(self.spec.seed, self.spec.variation_seed)]

    def variation_seed(self, index: int) -> int | None:
        """Image ``index``'s variation seed, when the row varies its noise (A1111's subseed)."""
        return self.spec.image_seeds(self.spec.seed, self.spec.variation_seed)[index][1]


@dataclass(frozen=True)
class UpscaleRow:
    """A ``task = upscale`` row: its input image and the upscale settings."""

    row: Row
    image: Path
    settings: object  # genimg.upscale.run.UpscaleSettings


# The keys an upscale row may set (and the UpscaleSettings field each one sets).
UPSCALE_KEYS = {"task": None, "image": None, "init_image": None, "scale": "scale", "upscaler": "model",
                "prompt": "prompt", "negative": "negative", "negative_prompt": "negative", "noise_level": "noise_level",
                "steps": "steps", "cfg": "guidance", "guidance": "guidance", "seed": "seed", "tile": "tile",
                "tile_overlap": "tile_overlap", "allow_pickle": "allow_pickle"}


def upscale_row(row: Row, data: dict, where: str, base: Path) -> UpscaleRow:
    from genimg.upscale.run import UpscaleSettings

    data = {str(k).strip().lower().replace("-", "_"): v for k, v in data.items()}
    unknown = [k for k in data if k not in UPSCALE_KEYS]
    if unknown:
        raise UsageError(f"{where}: an upscale row takes {', '.join(k for k in UPSCALE_KEYS if k != 'task')}; "
                         f"not {unknown[0]!r}")
    image = data.get("image") or data.get("init_image")
    if not image:
        raise UsageError(f"{where}: an upscale row needs an image")
    settings = UpscaleSettings.from_dict({UPSCALE_KEYS[k]: v for k, v in data.items() if UPSCALE_KEYS[k]})
    try:
        settings.check()
    except UsageError as e:
        raise UsageError(f"{where}: {e}") from None
    return UpscaleRow(row, _relative(str(image), base), settings)


@dataclass(frozen=True)
class PlotRow:
    """A row with ``xyz``: an X/Y/Z plot of its settings (every combination and a grid per Z value), made
    into a folder of its own named from the row's content, so editing other rows never remakes it."""

    row: Row
    spec: GenerationSpec  # seed set: every cell's, as A1111 keeps it unless seed is an axis
    axes: tuple[str, ...]  # as --xyz writes them: "steps=10,20"
    name: str

    @property
    def cells(self) -> int:
        from genimg.xyz import cells, parse_axis

        return len(cells(self.spec, [parse_axis(text) for text in self.axes]))


def plot_row(row: Row, settings: dict, axes, where: str, source: str, base_seed: int) -> PlotRow:
    """A row's plot: its settings (defaults applied) and its ``xyz`` axes, each checked now."""
    from genimg.xyz import cells, parse_axis

    texts = tuple(axes) if isinstance(axes, list) else tuple(t.strip() for t in str(axes).split(";") if t.strip())
    try:
        parsed = [parse_axis(text) for text in texts]
    except UsageError as e:
        raise UsageError(f"{where}: xyz: {str(e).removeprefix('--xyz ')}") from None
    content = _content_key(source, {**settings, "xyz": list(texts)})
    seed = int(settings["seed"]) if settings.get("seed") is not None else _mix(base_seed, content)
    spec = GenerationSpec.from_dict({**settings, "seed": seed}, where)
    try:
        cells(spec, parsed)
    except UsageError as e:
        raise UsageError(f"{where}: {e}") from None
    return PlotRow(row, spec, texts, f"xyz-{_mix_hex(content)[:10]}")


@dataclass(frozen=True)
class RowProblem:
    where: str  # file:line
    message: str


def normalise(data: dict, where: str, base: Path) -> dict:
    """A row's settings with relative paths resolved against the batch file's folder."""
    out = {}
    for key, value in data.items():
        key = str(key).strip().lower().replace("-", "_")
        if key not in known_keys():
            raise UsageError(f"{where}: unknown column {key!r}{did_you_mean(key, known_keys())}; "
                             f"allowed: {', '.join(known_keys())}")
        if key in ("lora", "loras") and value:
            items = value if isinstance(value, list) else [v for v in str(value).split(";") if v.strip()]
            value = [_relative_lora(str(v).strip(), base) for v in items]
        elif key in ("embedding", "embeddings", "ref", "reference", "references") and value:
            items = value if isinstance(value, list) else [v for v in str(value).split(";") if v.strip()]
            value = [str(_relative(str(v).strip(), base)) for v in items]
        elif key in ("control", "controls") and value and not _is_type_name(value):
            items = value if isinstance(value, list) else [v for v in str(value).split(";") if v.strip()]
            value = [_relative_control(v, base) for v in items]
        elif key in ("ip_adapter", "ip_adapters", "redux") and value:
            items = value if isinstance(value, list) else [v for v in str(value).split(";") if v.strip()]
            value = [_relative_image_prompt(v, base, key) for v in items]
        elif key in PATH_FIELDS and isinstance(value, str) and value:
            value = str(_relative(value, base))
        elif key in MODEL_FIELDS and isinstance(value, str) and value:
            value = _relative_model(value, base)
        out[key] = value
    return out


def build_jobs(rows: list[Row], file_defaults: dict, cli_defaults: dict, base: Path, source: str,
               base_seed: int, combinatorial: bool = False, repeat: int = 1,
               wildcard_dirs=(), upscales: list | None = None,
               plots: list | None = None) -> tuple[list[BatchJob], list[RowProblem]]:
    """Jobs of every row (command-line defaults, then the file's ``defaults``, then the row itself)
    and the rows that could not become one; ``task = upscale`` rows go to ``upscales``, rows with ``xyz``
    (an X/Y/Z plot) to ``plots``."""
    from genimg.batch.wildcards import Wildcards

    jobs: list[BatchJob] = []
    problems: list[RowProblem] = []
    try:
        file_defaults = normalise(file_defaults, f"{source}: defaults", base)
    except UsageError as e:
        return [], [RowProblem(f"{source}: defaults", str(e).split(": ", 1)[-1])]
    seen: dict[str, int] = {}
    with Wildcards(wildcard_dirs) as wildcards:
        for row in rows:
            where = f"{source}:{row.line}"
            try:
                if str(row.data.get("task", "")).strip().lower() == "upscale":
                    if upscales is None:
                        raise UsageError(f"{where}: upscale rows run only in `genimg batch`")
                    upscales.append(upscale_row(row, row.data, where, base))
                    continue
                if row.data.get("xyz"):
                    if plots is None:
                        raise UsageError(f"{where}: X/Y/Z plot rows run only in `genimg batch`")
                    own = normalise({k: v for k, v in row.data.items() if k != "xyz"}, where, base)
                    plots.append(plot_row(row, {**cli_defaults, **file_defaults, **own}, row.data["xyz"], where,
                                          source, base_seed))
                    continue
                settings = {**cli_defaults, **file_defaults, **normalise(row.data, where, base)}
                template = str(settings.get("prompt") or "")
                GenerationSpec.from_dict({**settings, "seed": settings.get("seed", 0)}, where)  # checks every value
                content = _content_key(source, settings)
                seen[content] = seen.get(content, 0) + 1  # identical rows are still separate jobs
                content = f"{content}#{seen[content]}"
                prompts = wildcards.expand(template, combinatorial, repeat, seed=_mix(base_seed, content), where=where)
                for k, prompt in enumerate(prompts):
                    job_id = _mix_hex(f"{content}|{k}")
                    row_seed = settings.get("seed")
                    seed = int(row_seed) + (k if repeat > 1 or combinatorial else 0) if row_seed is not None \
                        else _mix(base_seed, job_id)
                    spec = GenerationSpec.from_dict({**settings, "prompt": prompt, "seed": seed}, where)
                    jobs.append(BatchJob(job_id, row, spec, template))
            except UsageError as e:
                message = str(e)
                message = message[len(where) + 2:] if message.startswith(where) else message
                problems.append(RowProblem(f"{source}:{row.line_of(message)}", message))  # the setting's own line
    return jobs, problems


def _content_key(source: str, settings: dict) -> str:
    return json.dumps({"file": source, **{k: v for k, v in settings.items() if k != "seed" or v is not None}},
                      sort_keys=True, default=str)


def _is_type_name(value) -> bool:
    from genimg.control import preprocessors

    return isinstance(value, str) and value in preprocessors()


def _relative(text: str, base: Path) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else (base / path).resolve()


def _relative_lora(text: str, base: Path) -> str:
    """A row's LoRA (``PATH[:WEIGHT]``) with its path resolved against the batch file's folder."""
    head, sep, tail = text.rpartition(":")
    try:
        float(tail)
        path, weight = (head, sep + tail) if sep and head else (text, "")
    except ValueError:
        path, weight = text, ""
    return f"{_relative(path, base)}{weight}"


def _relative_control(value, base: Path):
    from genimg.spec import ControlSpec

    control = ControlSpec.parse(value)
    return {"type": control.type, "image": str(_relative(control.image, base)),
            "model": _relative_model(control.model, base),
            "scale": control.scale, "start": control.start, "end": control.end, "mode": control.mode,
            "settings": control.settings}


def _relative_image_prompt(value, base: Path, key: str) -> dict:
    """An IP-Adapter's or Redux's image (and a model file) beside the batch file, made absolute."""
    from genimg.spec import IPAdapterSpec, ReduxSpec

    adapter = (ReduxSpec if key == "redux" else IPAdapterSpec).parse(value)
    return {"image": str(_relative(adapter.image, base)), "scale": adapter.scale,
            "model": _relative_model(adapter.model, base)}


def _relative_model(model: str | None, base: Path) -> str | None:
    """A model named in a row: a path that exists beside the batch file becomes absolute; an alias or
    hub id stays as it is."""
    if model and not Path(model).is_absolute() and (base / model).exists():
        return str((base / model).resolve())
    return model


def _mix(seed: int, text: str) -> int:
    """A seed for one job, fixed by the batch seed and the job's content alone."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{text}".encode()).digest()[:4], "little")


def _mix_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:10]
