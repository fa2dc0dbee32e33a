"""Input images for img2img and inpaint: reading them safely and sizing them for the model."""

from __future__ import annotations

import hashlib
from pathlib import Path

from genimg.errors import UsageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")

RESIZE_MODES = ("fit", "crop", "stretch")


def load_image(path: str | Path, what: str = "image"):
    """The image at ``path`` (any mode), fully read so the file is closed; a clear error otherwise."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{what} {path} is a folder; give an image file in it")
    if not path.is_file():
        raise UsageError(f"{what} {path} does not exist")
    try:
        with Image.open(path) as im:
            im.load()
            return im.copy()
    except (UnidentifiedImageError, OSError) as e:
        raise UsageError(f"{what} {path} is not a readable image ({e})") from None


def file_hash(path: str | Path) -> str:
    """First 10 hex digits of the file's SHA-256 (recorded in metadata to identify the source)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:10]


def target_size(size: tuple[int, int], width: int | None, height: int | None, factor: int) -> tuple[int, int]:
    """The output size: the given width/height (the missing one from the aspect ratio), or the input's
    own size, rounded down to the model's factor."""
    w, h = size
    if not (width or height) and min(w, h) < factor:
        raise UsageError(f"the input is {w}x{h}, smaller than the model's {factor}-pixel grid; use a larger image, "
                         "or give --width/--height to scale it up")
    if width and not height:
        height = round(h * width / w)
    elif height and not width:
        width = round(w * height / h)
    width, height = width or w, height or h
    return max(factor, width // factor * factor), max(factor, height // factor * factor)


def resize(image, size: tuple[int, int], mode: str):
    """``crop``: fill the size and cut the overflow; ``stretch``: ignore the aspect ratio; ``fit``: keep
    all of the image and fill the margins with a blurred stretch of it (like A1111's "resize and fill").

    diffusers' ``VaeImageProcessor`` has ``crop`` and ``default`` (stretch) too, but its ``fill`` repeats
    the edge rows and columns into the margins, which the model then paints as streaks; a blurred
    stretch of the whole image gives it colours and shapes to continue instead. PIL does all three
    here, so planning a run does not import diffusers."""
    from PIL import Image, ImageFilter, ImageOps

    if mode not in RESIZE_MODES:
        raise UsageError(f"--resize must be one of {', '.join(RESIZE_MODES)} (got {mode!r})")
    if image.size == size:
        return image
    if mode == "stretch":
        return image.resize(size, Image.LANCZOS)
    if mode == "crop":
        return ImageOps.fit(image, size, Image.LANCZOS)
    inner = ImageOps.contain(image, size, Image.LANCZOS)
    canvas = image.resize(size, Image.LANCZOS).filter(ImageFilter.GaussianBlur(max(size) // 16 or 1))
    canvas.paste(inner, ((size[0] - inner.width) // 2, (size[1] - inner.height) // 2))
    return canvas


def expand_inputs(inputs) -> list[tuple[Path, bool]]:
    """(file, came from a folder) for each input: files as given, folders' images sorted by name."""
    found = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found += [(p, True) for p in sorted(path.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
        elif path.is_file():
            found.append((path, False))
        else:
            raise UsageError(f"input {path} does not exist")
    if not found:
        raise UsageError(f"no images in {', '.join(str(i) for i in inputs)} ({', '.join(IMAGE_SUFFIXES)})")
    return found
