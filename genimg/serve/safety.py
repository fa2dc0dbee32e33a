"""What a server takes from a client: names, never paths; no pickle; bounded bodies and images.

A client names models, LoRAs, embeddings, ControlNets, VAEs, upscalers and adapters by alias, hub id, or a
name inside the server's configured folders (``model_dirs``, ``lora_dirs`` …); anything that is or
could be a filesystem path is refused, so no request makes the server open a file its user did not put
there. Input images come as uploads, decoded under a pixel limit (a decompression bomb is refused).
"""

from __future__ import annotations

import re
from pathlib import Path

from genimg.errors import UsageError

MAX_BODY = 64 * 2**20  # bytes of one request
MAX_PIXELS = 40_000_000  # of one uploaded image (8K × 5K)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def is_path(value: str) -> bool:
    """Whether ``value`` is (or reaches) a filesystem path rather than a name or a hub id."""
    text = str(value)
    if not text or text.startswith(("/", "~", ".")) or "\\" in text or ".." in text or ":" in text[:3]:
        return True
    if "/" in text and not _HUB_ID.match(text):
        return True
    return Path(text).exists()  # a relative name that happens to be a file or folder where the server runs


def named_paths(spec) -> list[tuple[str, str]]:
    """The (what, value) of every model-like setting of ``spec`` that is a filesystem path (see :func:`is_path`)."""
    named = [("model", spec.model), ("refiner", spec.refiner), ("vae", spec.vae), ("denoiser", spec.denoiser),
             ("model_config", spec.model_config), *(("embedding", e) for e in spec.embeddings),
             *(("ControlNet", c.model) for c in spec.controls), *(("IP-Adapter", a.model) for a in spec.ip_adapters),
             *(("Redux model", r.model) for r in spec.redux),
             ("hires upscaler", spec.hires.upscaler if spec.hires else None), ("face restorer", spec.restore_faces), *(("LoRA", lora.path) for lora in spec.loras)]
    return [(what, value) for what, value in named if value and is_path(value)]


def checked_spec(spec):
    """``spec`` as a server runs it: no model-like setting a path, LoRAs given by name found in the LoRA
    folders, pickle never allowed."""
    from dataclasses import replace

    from genimg.prompting.inline import find

    for what, value in named_paths(spec)[:1]:
        raise UsageError(f"{what} {value!r} is a filesystem path; name it by alias, hub id or a name in the "
                         "server's configured folders (the server opens no path a client names)")
    loras = tuple(replace(lora, path=str(find(lora.path))) for lora in spec.loras)
    return spec.replace(loras=loras, allow_pickle=False)


def decoded_image(data: bytes, name: str) -> bytes:
    """``data`` checked to be an image of at most :data:`MAX_PIXELS` (read from its header first)."""
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_PIXELS:
                raise UsageError(f"{name}: {image.width}x{image.height} is more than {MAX_PIXELS:,} pixels")
            image.load()
    except Image.UnidentifiedImageError:  # its own text names the BytesIO object, which says nothing to a client
        raise UsageError(f"{name} is not an image (send a PNG, JPEG or WebP, base64-encoded)") from None
    except (OSError, Image.DecompressionBombError, ValueError) as e:
        raise UsageError(f"{name} is not an image this server reads ({e})") from None
    return data


def image_fields(spec) -> list[str]:
    """The input images ``spec`` names: the task's image, references and mask, control, IP-Adapter and Redux
    images."""
    names = ([spec.image] if spec.image else []) + list(spec.references)
    if spec.mask and spec.mask.path:
        names.append(spec.mask.path)
    names += [c.image for c in spec.controls] + [a.image for a in (*spec.ip_adapters, *spec.redux)]
    return names
