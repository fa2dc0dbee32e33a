"""Loaded upscalers, one class per kind, all with ``upscale(image, seed) -> image`` at their native scale.

GAN and transformer upscalers load through spandrel from the weights alone (it detects the
architecture from the key names and shapes); the Stable Diffusion upscalers through their diffusers
pipelines, with the memory settings of a preset. Every kind runs tile by tile when ``tile`` is set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from genimg.errors import UsageError, is_out_of_memory, weight_file_errors
from genimg.upscale.models import NATIVE_SCALE, UpscalerRef
from genimg.upscale.tiling import tiled

Progress = Callable[..., None]


@dataclass
class Resampler:
    """Plain resampling: no model, any scale; native scale 1 means "resize to what is asked"."""

    ref: UpscalerRef
    scale: int = 1

    def upscale(self, image, seed: int = 0, progress: Progress | None = None, target=None):
        from PIL import Image

        method = Image.BICUBIC if self.ref.name == "bicubic" else Image.LANCZOS
        return image.resize(target, method)


@dataclass
class SpandrelUpscaler:
    ref: UpscalerRef
    model: object  # spandrel ImageModelDescriptor
    tile: int = 0
    overlap: int = 32

    @property
    def scale(self) -> int:
        return self.model.scale

    def upscale(self, image, seed: int = 0, progress: Progress | None = None, target=None):
        import numpy as np
        import torch
        from PIL import Image

        x = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1)[None]

        def run(tile):  # each tile to the model's device and dtype; the blend stays on the CPU in float32
            return self.model(_to_model(tile, self.model)).float().cpu()

        with torch.inference_mode():
            y = tiled(x, run, self.scale, self.tile, self.overlap, progress)
        pixels = (y[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        return Image.fromarray(pixels)


def _to_model(tensor, model):
    """``tensor`` on ``model``'s device in its dtype (the one place tiles move: a test fakes a GPU here)."""
    return tensor.to(model.device, model.dtype)


def on_preset(model, preset):
    """A spandrel model moved to ``preset``'s device, in its dtype where the architecture supports that
    precision (spandrel says which do), else in float32."""
    import torch

    from genimg.pipeline_setup import torch_dtype

    dtype = torch_dtype(preset.dtype)
    supported = {torch.float16: model.supports_half, torch.bfloat16: model.supports_bfloat16}.get(dtype, True)
    return model.to(preset.device, dtype if supported else torch.float32)


@dataclass
class DiffusionUpscaler:
    """The SD x4 upscaler (prompt-guided, noise level) or the SD latent x2 upscaler."""

    ref: UpscalerRef
    pipe: object
    prompt: str = ""
    negative: str = ""
    steps: int = 20
    guidance: float = 7.5
    noise_level: int = 20
    tile: int = 0
    overlap: int = 32

    @property
    def scale(self) -> int:
        return NATIVE_SCALE[self.ref.kind]

    def upscale(self, image, seed: int = 0, progress: Progress | None = None, target=None):
        import numpy as np
        import torch
        from PIL import Image

        x = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255).permute(2, 0, 1)[None]
        count = [0]

        def run(tile):
            count[0] += 1
            kwargs = dict(prompt=self.prompt or "", image=Image.fromarray(
                (tile[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)),
                num_inference_steps=self.steps, guidance_scale=self.guidance, output_type="np",
                # each tile draws its own noise, fixed by the seed and the tile's place
                generator=torch.Generator("cpu").manual_seed(seed + count[0] - 1))
            if self.ref.kind == "sd-x4":
                kwargs.update(noise_level=self.noise_level, negative_prompt=self.negative or None)
            else:
                kwargs.update(negative_prompt=self.negative or None)
            with torch.inference_mode():
                out = self.pipe(**kwargs).images
            return torch.from_numpy(np.asarray(out, dtype=np.float32)).permute(0, 3, 1, 2)

        y = tiled(x, run, self.scale, self.tile, self.overlap, progress)
        pixels = (y[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        return Image.fromarray(pixels)


def load_upscaler(ref: UpscalerRef, *, tile: int = 0, overlap: int = 32, preset=None, prompt: str = "",
                  negative: str = "", steps: int = 20, guidance: float = 7.5, noise_level: int = 20):
    if ref.kind == "resample":
        return Resampler(ref)
    if ref.kind in ("spandrel", "face"):
        model = load_spandrel(ref)
        model = on_preset(model, preset) if preset is not None else model
        if ref.kind == "face":
            from genimg.upscale.faces import FaceRestorer

            return FaceRestorer(ref, model)
        return SpandrelUpscaler(ref, model, tile, overlap)
    return DiffusionUpscaler(ref, load_diffusion(ref, preset), prompt, negative, steps, guidance, noise_level,
                             tile, overlap)


# What spandrel calls the models each kind takes: upscalers (and restorers at scale 1), face restorers.
PURPOSES = {"spandrel": ("SR", "Restoration"), "face": ("FaceSR",)}
A_KIND = {"spandrel": "an upscaler", "face": "a face restorer"}
KNOWN = {"spandrel": "an upscaler spandrel supports (ESRGAN, Real-ESRGAN, SwinIR, HAT, DAT, SPAN …)",
         "face": "GFPGAN or RestoreFormer (CodeFormer after `pip install spandrel-extra-arches`)"}


def load_spandrel(ref: UpscalerRef):
    """The spandrel model of ``ref``: an upscaler, or a face restorer (kind "face"), from its weights alone."""
    from pathlib import Path

    import spandrel
    import torch

    path = Path(ref.location)
    what = A_KIND[ref.kind].split(" ", 1)[1]
    try:  # CodeFormer's architecture lives apart, under its own non-commercial licence: used when installed
        import spandrel_extra_arches

        spandrel_extra_arches.install(ignore_duplicates=True)
    except ImportError:
        pass
    loader = spandrel.ModelLoader()
    try:
        if path.suffix.lower() == ".safetensors":
            model = loader.load_from_file(str(path))
        else:
            # Pickle, allowed by the user: weights only, no code (where the file permits it).
            state = torch.load(str(path), map_location="cpu", weights_only=True)
            model = loader.load_from_state_dict(state)
    except spandrel.UnsupportedModelError:
        raise UsageError(f"{path.name}: spandrel does not recognise this {what}'s architecture from its weights; "
                         f"use {KNOWN[ref.kind]}") from None
    except weight_file_errors() as e:
        if is_out_of_memory(e):
            raise
        raise UsageError(f"{path.name} cannot be loaded as {A_KIND[ref.kind]} ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    if not isinstance(model, spandrel.ImageModelDescriptor) or model.purpose not in PURPOSES[ref.kind]:
        raise UsageError(f"{path.name} is a {model.architecture.name} model, not {A_KIND[ref.kind]}")
    return model.eval()


def load_diffusion(ref: UpscalerRef, preset):
    import diffusers

    from genimg.pipeline_setup import apply_preset, quiet_libraries, torch_dtype

    quiet_libraries()
    cls = getattr(diffusers, {"sd-x4": "StableDiffusionUpscalePipeline",
                              "sd-latent-x2": "StableDiffusionLatentUpscalePipeline"}[ref.kind])
    try:
        pipe = cls.from_pretrained(ref.location, dtype=torch_dtype(preset.dtype), use_safetensors=True)
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot load upscaler {ref.name} ({str(e).splitlines()[0]})") from None
    apply_preset(pipe, preset)
    return pipe
