"""Control maps for ControlNet: what an input image becomes before the ControlNet sees it.

The types are data (``preprocessors.toml``): genimg's own ``none`` (the image as it is) and ``canny``
(OpenCV edges at A1111's thresholds, 100 and 200), controlnet-aux's detectors (HED, PiDiNet, line art,
M-LSD, normals, OpenPose, MiDaS, shuffle, MediaPipe face) and depth through a transformers
depth-estimation model in safetensors. Annotator weights are looked up in ``annotators/`` of the
config folder, then in the Hugging Face cache; most are pickle files, loaded only when the user allows
pickle, and then by torch's ``weights_only`` loader (controlnet-aux calls ``torch.load``, whose
default since torch 2.6 refuses anything but tensors).
"""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path

from genimg.errors import UsageError, is_out_of_memory, weight_file_errors
from genimg.preprocessors import Preprocessor, preprocessors


def preprocess(image, mode: str, allow_pickle: bool = False, detect_resolution: int = 512, seed: int = 0,
               settings: dict | None = None):
    """``image`` (RGB PIL) as the control map of type ``mode``, at the image's own size; ``settings``
    change the type's own (canny's thresholds, …), ``resolution`` among them overrides ``detect_resolution``."""
    from PIL import Image

    entry = preprocessors()[mode]
    values = entry.resolve({"resolution": detect_resolution} | (settings or {}) if entry.kind == "aux" else settings)
    if entry.name == "none":
        return image
    if entry.name == "tile":
        rate = values["down_sampling_rate"]
        if rate <= 1:
            return image
        small = image.resize((max(1, round(image.width / rate)), max(1, round(image.height / rate))), Image.BICUBIC)
        return small.resize(image.size, Image.BICUBIC)
    if entry.name == "canny":
        import cv2
        import numpy as np

        edges = cv2.Canny(np.asarray(image.convert("L")), values["low"], values["high"])
        return Image.fromarray(edges).convert("RGB")
    if entry.kind == "segment":
        return _segment(image, entry.repo, allow_pickle)
    with _LOADING:
        detector = _depth_estimator(entry.repo) if entry.kind == "depth" else _detector(entry, allow_pickle)
    if entry.kind == "depth":
        depth = detector(image)["depth"]
        out = depth.convert("RGB")
    else:
        resolution = values.pop("resolution")
        out = _seeded(seed, lambda: detector(image, detect_resolution=resolution, image_resolution=min(image.size),
                                             output_type="pil", **entry.options, **values))
    return out.convert("RGB").resize(image.size, Image.BICUBIC) if out.size != image.size else out.convert("RGB")


_MAPS: dict = {}  # (source hash, size, type, settings) -> map: the last few made
_MAPS_KEPT = 8
# A server's device lanes make maps at once: the table, numpy's global generator and the loading of a
# detector (one copy, not one per lane) are each taken under a lock.
_MAPS_LOCK, _NUMPY_RNG, _LOADING = threading.Lock(), threading.Lock(), threading.Lock()


def forget_maps() -> None:
    """Drop the remembered control maps (the next generation makes its maps anew)."""
    with _MAPS_LOCK:
        _MAPS.clear()


def control_map(image, source_hash: str, mode: str, settings: dict, allow_pickle: bool = False):
    """:func:`preprocess` of ``image`` (a fitted control image whose file hashes to ``source_hash``),
    remembered for the next generation that asks for the same map."""
    key = (source_hash, image.size, mode, tuple(sorted(settings.items())))
    with _MAPS_LOCK:
        if key in _MAPS:
            return _MAPS[key]
    made = preprocess(image, mode, allow_pickle, settings=settings)  # outside the lock: lanes work side by side
    with _MAPS_LOCK:
        while len(_MAPS) >= _MAPS_KEPT:
            _MAPS.pop(next(iter(_MAPS)))
        return _MAPS.setdefault(key, made)


def check_preprocessor(mode: str, allow_pickle: bool) -> None:
    """The weights a control type's preprocessor needs are here (and not refused pickle): one line if not,
    before anything loads. Running the detector is left for when the map is made."""
    entry = preprocessors()[mode]
    if entry.kind == "aux":
        weights_folder(entry, allow_pickle)
    elif entry.kind in ("depth", "segment"):
        _require_cached(entry.repo, mode)


def _require_cached(repo: str, mode: str) -> None:
    """``repo`` (a transformers model a preprocessor runs) is in the Hugging Face cache, or one line saying how
    to fetch it."""
    from huggingface_hub import try_to_load_from_cache

    if not isinstance(try_to_load_from_cache(repo, "config.json"), str):
        raise UsageError(f"the {mode} preprocessor needs {repo}; fetch it with: hf download {repo}")


def _seeded(seed: int, call):
    """``call()`` with numpy's global generator seeded (shuffle draws its flow field from it), then restored."""
    import numpy as np

    with _NUMPY_RNG:  # the generator is the process's: another lane's draws would change this map
        state = np.random.get_state()
        np.random.seed(seed % 2**32)
        try:
            return call()
        finally:
            np.random.set_state(state)


def weights_folder(entry: Preprocessor, allow_pickle: bool) -> Path | None:
    """The folder holding all of ``entry``'s weight files: the config folder's ``annotators/``, else the
    Hugging Face cache; a missing file or an unallowed pickle file is a one-line error."""
    from huggingface_hub import try_to_load_from_cache

    from genimg.models.checkpoint import PICKLE_SUFFIXES
    from genimg.paths import config_dir

    if not entry.files:
        return None
    own = config_dir() / "annotators"
    if all((own / f).is_file() for f in entry.files):
        folder = own
    else:  # what is missing is said first: allowing pickle would not make the files appear
        found = {f: try_to_load_from_cache(entry.repo, f) for f in entry.files}
        missing = [f for f, path in found.items() if not isinstance(path, str)]
        if missing:
            raise UsageError(f"the {entry.name} preprocessor needs {', '.join(missing)} from {entry.repo}; fetch "
                             f"{'them' if len(missing) > 1 else 'it'} with: hf download {entry.repo} {' '.join(missing)} "
                             f"(or put the files in {own})")
        folder = Path(next(iter(found.values()))).parent
    pickles = [f for f in entry.files if Path(f).suffix in PICKLE_SUFFIXES]
    if pickles and not allow_pickle:
        raise UsageError(f"the {entry.name} preprocessor's weights ({', '.join(pickles)}) are pickle files; pass "
                         "--allow-pickle to load them (tensors only: torch's weights_only loader)")
    return folder


def _detector(entry: Preprocessor, allow_pickle: bool):
    import importlib.util

    for package in ("controlnet_aux", entry.requires):
        if package and importlib.util.find_spec(package) is None:
            raise UsageError(f"the {entry.name} preprocessor needs the {package} package: pip install {package.replace('_', '-')}")
    folder = weights_folder(entry, allow_pickle)
    return _load_detector(entry.cls, str(folder) if folder else None)


@lru_cache(maxsize=4)
def _load_detector(class_name: str, folder: str | None):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # controlnet-aux's imports warn about timm, mediapipe and torch.jit
        import controlnet_aux

    cls = getattr(controlnet_aux, class_name)
    if folder is None:
        return cls()
    try:
        return cls.from_pretrained(folder)
    except weight_file_errors() as e:  # a damaged or refused file: one line
        if is_out_of_memory(e):
            raise
        raise UsageError(f"cannot load the {class_name} weights from {folder}: {(str(e).splitlines() or [type(e).__name__])[0]}") from None


@lru_cache(maxsize=2)
def _depth_estimator(repo: str):
    """transformers' depth-estimation pipeline on ``repo`` from the cache (safetensors only)."""
    from transformers import pipeline

    _require_cached(repo, "depth")
    return pipeline("depth-estimation", model=repo, model_kwargs={"use_safetensors": True})


@lru_cache(maxsize=1)
def _segmenter(repo: str, allow_pickle: bool):
    from transformers import AutoImageProcessor, UperNetForSemanticSegmentation

    _require_cached(repo, "seg")
    try:
        model = UperNetForSemanticSegmentation.from_pretrained(repo, use_safetensors=None if allow_pickle else True)
    except OSError:
        raise UsageError(f"{repo} in the cache has only pickle weights; convert them to safetensors, or pass "
                         "--allow-pickle if you trust the source") from None
    return AutoImageProcessor.from_pretrained(repo), model.eval()


def _segment(image, repo: str, allow_pickle: bool):
    """Each pixel's ADE20K class, painted in that class's colour (what segmentation ControlNets read)."""
    import numpy as np
    import torch
    from PIL import Image

    from genimg.datafiles import load_toml

    with _LOADING:
        processor, model = _segmenter(repo, allow_pickle)
    with torch.inference_mode():
        outputs = model(**processor(image, return_tensors="pt"))
    labels = processor.post_process_semantic_segmentation(outputs, target_sizes=[image.size[::-1]])[0].numpy()
    palette = np.asarray(load_toml(PALETTE)["colours"], dtype=np.uint8)
    return Image.fromarray(palette[labels % len(palette)])


PALETTE = Path(__file__).with_name("ade20k_palette.toml")
