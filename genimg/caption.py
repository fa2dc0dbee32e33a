"""Captions for images — A1111's interrogate, and what LoRA trainers run before training: a BLIP or Florence-2
sentence, or WD14's booru tags, written as ``NAME.txt`` beside each image (kohya's layout)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from genimg.errors import UsageError

ALIASES = Path(__file__).with_name("captioners.toml")
MAX_TOKENS = 40  # BLIP's one sentence
FLORENCE_TOKENS = 256  # Florence-2's detailed caption: a few sentences
FLORENCE_TASK = "<DETAILED_CAPTION>"
# WD14's thresholds, as SmilingWolf's own tagger app sets them: general tags from 0.35, characters from 0.85
GENERAL, CHARACTER = 0.35, 0.85
WD14_FILES = ("config.json", "model.safetensors", "selected_tags.csv")


@dataclass
class BlipCaptioner:
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


@dataclass
class FlorenceCaptioner:
    name: str
    processor: object
    model: object
    task: str = FLORENCE_TASK  # <CAPTION>, <DETAILED_CAPTION> or <MORE_DETAILED_CAPTION>

    def caption(self, image) -> str:
        """Florence-2's answer to its caption task, decoded as its model card decodes it (three beams)."""
        import torch

        inputs = self.processor(images=image.convert("RGB"), text=self.task, return_tensors="pt")
        with torch.inference_mode():
            ids = self.model.generate(**inputs, max_new_tokens=FLORENCE_TOKENS, do_sample=False, num_beams=3)
        return self.processor.batch_decode(ids, skip_special_tokens=True)[0].strip()


@dataclass
class TagCaptioner:
    """SmilingWolf's WD14 taggers (v3, in timm's format): booru tags above their thresholds, most likely first."""

    name: str
    model: object  # a timm model
    transform: object  # timm's input transform for it
    tags: list[str]
    categories: list[int]  # 0 general, 4 character, 9 rating (never written)

    def caption(self, image) -> str:
        import torch

        square = _on_white_square(image)
        x = self.transform(square)[None][:, [2, 1, 0]]  # the taggers were trained on BGR input
        with torch.inference_mode():
            probabilities = torch.sigmoid(self.model(x))[0].tolist()
        picked = [(p, tag) for p, tag, kind in zip(probabilities, self.tags, self.categories)
                  if (kind == 0 and p > GENERAL) or (kind == 4 and p > CHARACTER)]
        return ", ".join(_readable(tag) for _, tag in sorted(picked, key=lambda pair: -pair[0]))


Captioner = BlipCaptioner | FlorenceCaptioner | TagCaptioner


def _on_white_square(image):
    """``image`` centred on a white square (transparency on white too), as the taggers read images."""
    from PIL import Image

    image = image.convert("RGBA")
    side = max(image.size)
    square = Image.new("RGBA", (side, side), (255, 255, 255, 255))
    square.alpha_composite(image, ((side - image.width) // 2, (side - image.height) // 2))
    return square.convert("RGB")


def _readable(tag: str) -> str:
    """A booru tag as a caption writes it: ``long_hair`` → ``long hair``; kaomoji (``^_^``, ``>_<``) kept."""
    return tag if len(tag) <= 3 else tag.replace("_", " ")


def captioner_aliases() -> dict:
    from genimg.datafiles import load_toml

    return load_toml(ALIASES)


def load_captioner(name: str | None = None):
    """The captioner ``name`` names (an alias, a hub id in the cache, a folder; default: the ``captioner``
    setting): BLIP or Florence-2 through transformers, a WD14 tagger through timm; weights from safetensors,
    never remote code."""
    from genimg import config

    name = name or config.get("captioner")
    row = captioner_aliases().get(name, {})
    location = row.get("repo", name)
    folder = Path(location).expanduser()
    folder = folder if folder.is_dir() else None
    kind = _model_kind(folder, location)
    if kind not in LOADERS:
        raise UsageError(f"captioner {name!r} is a {kind} model; genimg captions with BLIP, Florence-2 and WD14 "
                         f"models (aliases: {', '.join(captioner_aliases())})")
    try:
        return LOADERS[kind](name, str(folder) if folder else location, row)
    except OSError as e:
        raise UsageError(f"cannot load captioner {name!r} ({str(e).splitlines()[0]})") from None


def _load_blip(name: str, where: str, row: dict) -> BlipCaptioner:
    from transformers import BlipForConditionalGeneration, BlipProcessor

    return BlipCaptioner(name, BlipProcessor.from_pretrained(where),
                         BlipForConditionalGeneration.from_pretrained(where, use_safetensors=True).eval())


def _load_florence(name: str, where: str, row: dict) -> FlorenceCaptioner:
    from transformers import Florence2ForConditionalGeneration, Florence2Processor

    return FlorenceCaptioner(name, Florence2Processor.from_pretrained(where),
                             Florence2ForConditionalGeneration.from_pretrained(where, use_safetensors=True).eval(),
                             row.get("task", FLORENCE_TASK))


def _load_wd14(name: str, where: str, row: dict) -> TagCaptioner:
    import csv

    import timm
    from timm.data import create_transform, resolve_data_config

    folder = Path(where) if Path(where).is_dir() else _hub_folder(where, WD14_FILES)
    missing = [f for f in WD14_FILES if not (folder / f).is_file()]
    if missing:  # timm would fall back to a pickled checkpoint: only its safetensors are read
        raise UsageError(f"captioner {name!r}: a WD14 tagger needs {', '.join(WD14_FILES)}; {missing[0]} is missing")
    model = timm.create_model(f"local-dir:{folder}", pretrained=True).eval()
    with open(folder / "selected_tags.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return TagCaptioner(name, model, create_transform(**resolve_data_config(model.pretrained_cfg, model=model)),
                        [r["name"] for r in rows], [int(r["category"]) for r in rows])


LOADERS = {"blip": _load_blip, "florence2": _load_florence, "wd14": _load_wd14}


def _hub_folder(repo: str, files: tuple[str, ...]) -> Path:
    """The snapshot folder of ``repo`` holding ``files``, fetched unless offline."""
    from huggingface_hub import hf_hub_download

    return [Path(hf_hub_download(repo, name)) for name in files][0].parent  # one snapshot holds them all


def _model_kind(folder: Path | None, repo: str) -> str:
    """A captioner's kind from its config: transformers' ``model_type``, or ``wd14`` for a timm config with a
    tag list beside it; read in its folder, else in the Hugging Face cache."""
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
        raise UsageError(f"captioner {folder} has no config.json (a transformers or WD14 model folder is needed)")
    data = json.loads(config.read_text())
    if "architecture" in data and (config.parent / "selected_tags.csv").is_file():
        return "wd14"
    return data.get("model_type", "unknown")


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
