"""Face restoration — A1111's "Restore faces": each face found in an image is cut out as a square, restored
at 512 pixels by a GFPGAN, CodeFormer or RestoreFormer model (spandrel knows the architecture from the
weights), and blended back through a feathered mask. Pixels away from the faces stay as they were, bit for bit.

The faces are found by scikit-image's LBP cascade (OpenCV's frontal-face cascade, shipped inside
scikit-image): nothing to download. It finds upright, frontal faces; A1111's RetinaFace finds more, and
aligns them by their landmarks where this cuts a square around the box.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from genimg.errors import UsageError, did_you_mean
from genimg.upscale.models import UpscalerRef, weights_ref

NAMES = Path(__file__).with_name("face_restorers.toml")  # A1111's names -> the files its users have
SIZE = 512  # what the models restore: FFHQ's aligned faces
# The square cut around a detected face: the cascade's box spans about twice the eyes' distance, an FFHQ
# crop about four times it.
CROP = 2.0
# Detection: 10% steps between scales; eight overlapping hits to call it a face (fewer finds faces in
# textures); faces from a sixteenth of the image's short side up.
SCALE_STEP, NEIGHBOURS, SMALLEST = 1.1, 8, 16
# GFPGAN and CodeFormer read and write pixels in [-1, 1] (spandrel's RestoreFormer converts by itself).
SIGNED = ("GFPGAN", "CodeFormer")


def face_restorer_names() -> dict[str, list[str]]:
    from genimg.datafiles import load_toml

    return {name: row["files"] for name, row in load_toml(NAMES).items()}


def resolve_face_restorer(text: str | None, allow_pickle: bool = False) -> UpscalerRef:
    """The face restorer ``text`` names — a weights file, a file in the ``face_restorer_dirs`` folders, or
    A1111's name for one (GFPGAN, CodeFormer, RestoreFormer) whose file those folders hold; None: the
    ``face_restorer`` setting. Checked now, loaded later."""
    from genimg import config

    name = text or config.get("face_restorer")
    if not name:
        raise UsageError("no face restoration model is set: pass --restore-faces FILE (GFPGAN, CodeFormer or "
                         "RestoreFormer weights), or `genimg config set face_restorer FILE`")
    path = Path(name).expanduser()
    if path.is_file():
        return weights_ref(path.stem, path, allow_pickle, "face", "face restorer")
    names = face_restorer_names()
    for stem in (name, *names.get(name, ())):
        found = _in_folders(stem)
        if found is not None:
            return weights_ref(name, found, allow_pickle, "face", "face restorer")
    files = f" (A1111's {name} is the file {' or '.join(names[name])})" if name in names else did_you_mean(name, names)
    raise UsageError(f"face restorer {name!r} is neither a file nor in the face_restorer_dirs folders{files}; "
                     "put its .safetensors there (`genimg config set face_restorer_dirs DIR`) or pass its path")


def present_face_restorers() -> list[str]:
    """A1111's names of the face restorers whose files the face_restorer_dirs folders hold."""
    return [name for name, stems in face_restorer_names().items() if any(_in_folders(stem) for stem in stems)]


def _in_folders(stem: str) -> Path | None:
    """``stem`` (as it is, or .safetensors, or a pickle suffix) in the face_restorer_dirs folders."""
    from genimg import config
    from genimg.models.checkpoint import PICKLE_SUFFIXES

    return config.search(stem, "face_restorer_dirs", (".safetensors", *PICKLE_SUFFIXES))


def find_faces(image) -> list[tuple[int, int, int]]:
    """The faces of ``image`` (PIL) as squares (left, top, side) to restore, largest first; overlapping
    hits of one face counted once."""
    import numpy as np
    from skimage import data
    from skimage.feature import Cascade

    gray = np.asarray(image.convert("L"))
    short = min(gray.shape)
    smallest = max(24, short // SMALLEST)
    if short < smallest:
        return []
    found = Cascade(data.lbp_frontal_face_cascade_filename()).detect_multi_scale(
        img=gray, scale_factor=SCALE_STEP, step_ratio=1, min_size=(smallest, smallest), max_size=(short, short),
        min_neighbor_number=NEIGHBOURS)
    boxes: list[tuple[int, int, int]] = []
    for hit in sorted(found, key=lambda h: -h["width"]):
        left, top, side = hit["c"], hit["r"], hit["width"]
        if not any(_overlap((left, top, side), box) > 0.5 for box in boxes):
            boxes.append((left, top, side))
    return [_square(box) for box in boxes]


def _overlap(a, b) -> float:
    """The share of the smaller of two squares (left, top, side) that lies in the other."""
    width = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    height = min(a[1] + a[2], b[1] + b[2]) - max(a[1], b[1])
    return max(0, width) * max(0, height) / min(a[2], b[2]) ** 2


def _square(box) -> tuple[int, int, int]:
    left, top, side = box
    grown = round(side * CROP)
    return left + side // 2 - grown // 2, top + side // 2 - grown // 2, grown


def feather(side: int):
    """A (side, side) float mask: 1 over the middle of the square, falling smoothly to 0 at its edges — the
    restored face blends in with no seam."""
    import numpy as np

    ramp = np.clip(np.minimum(np.arange(side), np.arange(side)[::-1]) / max(1, side * 0.15), 0, 1)
    ramp = ramp * ramp * (3 - 2 * ramp)  # smoothstep
    return np.outer(ramp, ramp).astype(np.float32)


@dataclass
class FaceRestorer:
    ref: UpscalerRef
    model: object  # spandrel ImageModelDescriptor, purpose FaceSR

    def restore(self, image, strength: float = 1.0, fidelity: float = 0.5):
        """``image`` with each face restored and blended in by ``strength`` (A1111's visibility: 0 leaves the
        image as it was, 1 shows the restored face); ``fidelity``: CodeFormer's weight (0 the model's face,
        1 closest to the input's)."""
        import numpy as np
        from PIL import Image

        image = image.convert("RGB")
        faces = find_faces(image) if strength > 0 else []
        if not faces:
            return image
        out = np.asarray(image, dtype=np.float32).copy()
        for left, top, side in faces:
            crop = image.crop((left, top, left + side, top + side))  # past an edge: black, as A1111 pads
            restored = self._restored(crop.resize((SIZE, SIZE), Image.LANCZOS), fidelity)
            face = np.asarray(restored.resize((side, side), Image.LANCZOS), dtype=np.float32)
            mask = feather(side)[..., None] * strength
            # only the part of the square inside the image
            x0, y0 = max(0, left), max(0, top)
            x1, y1 = min(image.width, left + side), min(image.height, top + side)
            inner = (slice(y0 - top, y1 - top), slice(x0 - left, x1 - left))
            region = out[y0:y1, x0:x1]
            out[y0:y1, x0:x1] = region + (face[inner] - region) * mask[inner]
        return Image.fromarray(out.round().clip(0, 255).astype(np.uint8))

    def _restored(self, face, fidelity: float):
        import numpy as np
        import torch
        from PIL import Image

        x = torch.from_numpy(np.asarray(face, dtype=np.float32) / 255).permute(2, 0, 1)[None]
        signed = self.model.architecture.id in SIGNED
        x = (x * 2 - 1 if signed else x).to(self.model.device, self.model.dtype)
        with torch.inference_mode():
            if self.model.architecture.id == "CodeFormer":
                y = self.model.model(x, weight=fidelity)[0]
            else:
                y = self.model(x)
        y = y.float().cpu()
        y = (y + 1) / 2 if signed else y
        return Image.fromarray((y[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
