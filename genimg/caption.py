"""Captions for images — A1111's interrogate, and what LoRA trainers run before training: a BLIP model
through transformers, its caption written as ``NAME.txt`` beside each image (kohya's layout)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from genimg.errors import UsageError

ALIASES = Path(__file__).with_name("captioners.toml")
MAX_TOKENS = 40


@dataclass
class Captioner:
    name: str
    processor: object
    model: object

    def caption(self, image) -> str:
        """One caption of ``image`` (PIL): greedy decoding, as A1111's interrogate reads BLIP."""
        import torch

        with torch.inference_mode():
            ids = self.model.generate(**self.processor(images=image.convert("RGB"), return_tensors="pt"),
                                      max_new_tokens=MAX_TOKENS, do_sample=False, num_beams=1)
        return self.processor.decode(ids[0], skip_special_tokens=True).strip()


def captioner_aliases() -> dict:
    from genimg.datafiles import load_toml

    return load_toml(ALIASES)


def load_captioner(name: str | None = None) -> Captioner:
    """The captioner ``name`` names (an alias, a hub id in the cache, a folder; default: the ``captioner``
    setting), loaded from safetensors, never with remote code."""
    from genimg import config

    name = name or config.get("captioner")
    location = captioner_aliases().get(name, {}).get("repo", name)
    folder = Path(location).expanduser()
    kind = _model_type(folder if folder.is_dir() else None, location)
    if kind != "blip":
        raise UsageError(f"captioner {name!r} is a {kind} model; genimg captions with BLIP models "
                         f"(aliases: {', '.join(captioner_aliases())})")
    from transformers import BlipForConditionalGeneration, BlipProcessor

    where = str(folder) if folder.is_dir() else location
    try:
        processor = BlipProcessor.from_pretrained(where)
        model = BlipForConditionalGeneration.from_pretrained(where, use_safetensors=True).eval()
    except OSError as e:
        raise UsageError(f"cannot load captioner {name!r} ({str(e).splitlines()[0]})") from None
    return Captioner(name, processor, model)


def _model_type(folder: Path | None, repo: str) -> str:
    """The ``model_type`` of a captioner's config: in its folder, else in the Hugging Face cache."""
    if folder is not None:
        config = folder / "config.json"
    else:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(repo, "config.json")
        if not isinstance(cached, str):
            from genimg.models.hub import offline

            if offline():
                raise UsageError(f"captioner {repo} is not in the Hugging Face cache; on a machine with network run "
                                 f"`hf download {repo}` and copy the cache, or pass a folder")
            from huggingface_hub import hf_hub_download

            cached = hf_hub_download(repo, "config.json")
        config = Path(cached)
    if not config.is_file():
        raise UsageError(f"captioner {folder} has no config.json (a transformers model folder is needed)")
    return json.loads(config.read_text()).get("model_type", "unknown")


@dataclass(frozen=True)
class Captioned:
    image: Path
    text_file: Path
    caption: str | None  # None: skipped, it had a caption already


def images_of(folder: Path) -> list[Path]:
    """Every image under ``folder`` (kohya's ``N_name`` subfolders too), in order."""
    from genimg.inputs import IMAGE_SUFFIXES

    if not folder.is_dir():
        raise UsageError(f"{folder} is not a folder of images")
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def caption_folder(folder: Path, captioner: Captioner, prefix: str = "", overwrite: bool = False) -> Iterator[Captioned]:
    """A caption file beside every image of ``folder`` that has none (every image with ``overwrite``),
    ``prefix`` first (a trigger word: ``sks dog, ...``); each written whole (a temporary file renamed)."""
    from PIL import Image

    from genimg.files import atomic_save

    for image_path in images_of(folder):
        text_file = image_path.with_suffix(".txt")
        if text_file.exists() and not overwrite:
            yield Captioned(image_path, text_file, None)
            continue
        with Image.open(image_path) as image:
            caption = captioner.caption(image)
        caption = f"{prefix}, {caption}" if prefix and caption else (prefix or caption)
        atomic_save(text_file, lambda tmp: tmp.write_text(caption + "\n", encoding="utf-8"), overwrite=True)
        yield Captioned(image_path, text_file, caption)
