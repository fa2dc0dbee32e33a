"""Output file names: a folder or a file template, with prompt-derived parts made safe."""

from __future__ import annotations

import re
import time
from pathlib import Path

from genimg.errors import UsageError

DEFAULT_TEMPLATE = "{prompt}-{seed}.png"
# Another task than txt2img is named in the file, so an img2img of the same prompt and seed never takes
# the txt2img image's name.
TASK_TEMPLATE = "{prompt}-{task}-{seed}.png"
FIELDS = ("prompt", "seed", "index", "model", "width", "height", "steps", "task", "date", "time")
_UNSAFE = re.compile(r"[^\w.-]+")  # letters and digits of any script stay: "über ñandú" is über_ñandú


def sanitize(text: str, limit: int = 60) -> str:
    """A file-name part from free text: letters and digits (any script), '.', '_' and '-', no leading dot."""
    import unicodedata

    name = _UNSAFE.sub("_", unicodedata.normalize("NFC", text)).strip("._-")[:limit].strip("._-")
    return name or "image"


def task_label(spec) -> str:
    """txt2img, img2img, inpaint or outpaint: the task as users name it."""
    return "outpaint" if spec.outpaint else spec.task


def default_output() -> Path:
    """Where images go without ``-o``: the user's ``output`` setting (environment, config file), else ./outputs/."""
    from genimg import config

    return Path(config.get("output")).expanduser()


def is_folder_target(target: str | Path) -> bool:
    text = str(target)
    path = Path(text)
    return path.is_dir() or text.endswith(("/", "\\")) or not path.suffix


def output_paths(target: str | Path | None, specs: list, model_name: str) -> list[Path]:
    """One path per image spec. ``target`` is a folder (files named by the default template), or a
    file name that may hold ``{seed}``, ``{prompt}``, ``{index}``…; several images without such a
    field in the name get ``-<seed>`` added so they never collide."""
    target = default_output() if target is None else Path(target).expanduser()
    if is_folder_target(target):
        tasks = {task_label(spec) for spec in specs}
        template = str(target / (DEFAULT_TEMPLATE if tasks == {"txt2img"} else TASK_TEMPLATE))
    else:
        template = str(target)
        if len(specs) > 1 and "{" not in target.name:
            template = str(target.with_name(f"{target.stem}-{{seed}}{target.suffix}"))
    if Path(template).suffix.lower() != ".png":
        raise UsageError(f"output {template!r} must end in .png (genimg writes PNG with its metadata)")
    now = time.localtime()
    paths = []
    for index, spec in enumerate(specs):
        # variations share their seed: the variation seed tells them apart, as A1111's seed-subseed names do
        seed = spec.seed if getattr(spec, "variation_seed", None) is None else f"{spec.seed}-{spec.variation_seed}"
        values = {"prompt": sanitize(spec.prompt), "seed": seed, "index": index,
                  "model": sanitize(model_name, 40), "width": spec.width, "height": spec.height,
                  "steps": spec.steps, "task": task_label(spec), "date": time.strftime("%Y-%m-%d", now), "time": time.strftime("%H%M%S", now)}
        try:
            paths.append(Path(template.format(**values)))
        except (KeyError, IndexError, ValueError) as e:
            raise UsageError(f"output template {template!r}: bad field {e}; fields are {{{'}, {'.join(FIELDS)}}}") from None
    if len(set(paths)) != len(paths):
        raise UsageError(f"output template {template!r} gives several images the same name; add {{seed}} or {{index}}")
    return paths
