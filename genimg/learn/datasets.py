"""Small image datasets that work offline, as tensors in [−1, 1] shaped (N, C, H, W).

- ``digits``: scikit-learn's 1,797 handwritten 8x8 digits with labels, upsampled;
- ``digits-bold``: the same digits drawn with bolder strokes (a grey dilation): a style to fine-tune to;
- ``faces``: scikit-image's 200-face LFW subset (25x25 greyscale), resized;
- ``shapes``: genimg's procedural coloured shapes, labelled by shape;
- any folder of images (RGB, centre-cropped and resized; no labels).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from genimg.errors import UsageError

NAMED = ("digits", "digits-bold", "faces", "shapes")
LABELLED = ("digits", "digits-bold", "shapes")


@dataclass
class ImageSet:
    images: torch.Tensor
    labels: torch.Tensor | None
    class_names: list[str] | None
    name: str

    @property
    def channels(self) -> int:
        return self.images.shape[1]


def channels(name: str) -> int:
    """The channels of a dataset's images, without loading it: the named grey ones 1, the rest RGB."""
    return 1 if name in ("digits", "digits-bold", "faces") else 3


def _require(module: str, package: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise UsageError(f"this dataset needs {package}: pip install {package} (or pip install 'genimg[learn]')") from None


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def load(name: str, size: int = 32, limit: int | None = None, seed: int = 0) -> ImageSet:
    if name in ("digits", "digits-bold"):
        datasets = _require("sklearn.datasets", "scikit-learn")
        digits = datasets.load_digits()
        x = _resize(torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16.0, size)
        if name == "digits-bold":  # every stroke a pixel wider on each side: the brightest neighbour's value
            x = F.max_pool2d(x, 3, stride=1, padding=1)
        data = ImageSet(x * 2 - 1, torch.tensor(digits.target), [str(i) for i in range(10)], name)
    elif name == "faces":
        skdata = _require("skimage.data", "scikit-image")
        faces = skdata.lfw_subset()
        x = torch.tensor(np.asarray(faces), dtype=torch.float32)[:, None]
        x = (x - x.min()) / (x.max() - x.min())
        data = ImageSet(_resize(x, size) * 2 - 1, None, None, name)
    elif name == "shapes":
        from genimg.demo.shapes import SHAPES, dataset

        pairs = list(dataset(limit or 4000, seed=seed, side=size))
        x = torch.tensor(np.stack([np.asarray(im) for im, _ in pairs]), dtype=torch.float32).permute(0, 3, 1, 2) / 255
        labels = torch.tensor([SHAPES.index(scene.shape) for _, scene in pairs])
        data = ImageSet(x * 2 - 1, labels, list(SHAPES), name)
    else:
        data = _folder(Path(name), size)
    if limit:
        data = ImageSet(data.images[:limit], None if data.labels is None else data.labels[:limit], data.class_names, data.name)
    return data


def check_dataset(name: str) -> None:
    """``name`` is a dataset the course has, or a folder."""
    if name not in NAMED and not Path(name).is_dir():
        raise UsageError(f"dataset {name!r} is neither one of {', '.join(NAMED)} nor a folder of images")


def _folder(folder: Path, size: int) -> ImageSet:
    from PIL import Image, ImageOps

    check_dataset(str(folder))
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp", ".bmp"))
    if not files:
        raise UsageError(f"{folder} holds no images (.png, .jpg, .jpeg, .webp, .bmp)")
    arrays = []
    for path in files:
        try:
            with Image.open(path) as im:
                arrays.append(np.asarray(ImageOps.fit(im.convert("RGB"), (size, size))))
        except OSError:
            continue  # an unreadable file among hundreds should not stop a lesson
    x = torch.tensor(np.stack(arrays), dtype=torch.float32).permute(0, 3, 1, 2) / 255
    return ImageSet(x * 2 - 1, None, None, folder.name)
