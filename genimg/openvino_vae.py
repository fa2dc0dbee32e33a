"""The rest of the image on the `cpu-openvino` route: the VAE's decoder (every image) and encoder (img2img,
inpainting, the hires fix) run by OpenVINO, as the UNet is (``openvino_unet``).

On few-step models the VAE is most of the picture — sd-turbo's one step costs less than its decode — so a
route that sped up only the UNet left the rest on torch. Each part is converted once per weights and input
shape (a new size, a new conversion of a few seconds; the IR and OpenVINO's compiled graph kept in the same
cache as the UNet's, listed and freed with it), computed in the preset's precision, with the torch module
kept for what the graph cannot take: a tiled decode (its tiles' shapes vary) and a decoder's extra inputs.
The convolutions are converted as they are: at a VAE's sizes and widths Winograd does not pay
(``genimg.winograd.pays``).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from genimg.openvino_cache import compiled_folder, ir_name, mark_used, record
from genimg.openvino_unet import Recipe, WeightsKey, compiled_request, free_conversion_garbage, in_float32, save_ir
from genimg.third_party import convert_traced, replace_forward

KEPT_GRAPHS = 2  # compiled graphs kept in memory per part (two sizes: an image and its hires pass)


def install_vae(vae, cache: Path, recipe: Recipe, note=None, model: str = "", scale: int = 8) -> None:
    """Run ``vae``'s encoder and decoder with OpenVINO from their next call, on this instance only (the
    pipelines sharing the VAE all go through them). ``scale``: pixels per latent, for the cache's listing."""
    vae.eval()
    for part, module, pixels_per_input in (("decoder", vae.decoder, scale), ("encoder", vae.encoder, 1)):
        replace_forward(module, PartForward(vae, module, f"{model} (VAE {part})", cache, recipe, note, pixels_per_input))


class PartForward:
    """The forward of one part of a VAE (one tensor in, one out), run by OpenVINO."""

    def __init__(self, vae, module, model: str, cache: Path, recipe: Recipe, note=None, scale: int = 8):
        self.vae, self.module, self.model, self.cache, self.recipe, self.note = vae, module, model, Path(cache), recipe, note
        self.scale = scale
        self.torch_forward = type(module).forward.__get__(module)
        self.precision = "bf16" if _dtype(module) == torch.bfloat16 else "f32"
        self.requests: dict = {}
        self.key = WeightsKey(module)
        self.noted = False

    def __call__(self, sample, *rest, **kwargs):
        if rest or any(value is not None for value in kwargs.values()) or getattr(self.vae, "use_tiling", False):
            if not self.noted and self.note:
                self.note(f"OpenVINO: {self.model} runs on torch for this call (tiled, or with extra inputs)")
            self.noted = True
            return self.torch_forward(sample, *rest, **kwargs)
        x = sample.detach().float()
        out = self._request((x,)).infer([x.numpy()])[0]
        return torch.from_numpy(out.copy()).to(sample.dtype)

    def traced(self) -> torch.nn.Module:
        """The module as OpenVINO traces it: float32 tensors in and out."""
        return _Traced(self.module, self.torch_forward).eval()

    def _request(self, example: tuple):
        """The compiled graph for inputs shaped as ``example``'s: converted (``traced``) and saved once per
        weights and shapes, compiled once per process."""
        shapes = tuple(tuple(x.shape) for x in example)
        key = self.key()
        if (key, shapes) in self.requests:
            return self.requests[(key, shapes)]
        f32_graph = self.recipe.f32_graph and self.precision == "bf16"
        xml = self.cache / f"{ir_name(key, False, shapes, f32_graph)}.xml"
        if not xml.is_file():
            self._convert(example, xml, f32_graph)
            record(xml, self.model, shapes, self.scale)
        mark_used(xml)
        while len(self.requests) >= KEPT_GRAPHS:
            self.requests.pop(next(iter(self.requests)))
        request = self.requests[(key, shapes)] = compiled_request(xml, compiled_folder(self.cache, key), self.precision)
        return request

    def _convert(self, example: tuple, xml: Path, f32_graph: bool) -> None:
        from genimg.files import check_room

        self.cache.mkdir(parents=True, exist_ok=True)
        needed = 2 * sum(t.nbytes for t in self.module.state_dict().values()) * (2 if f32_graph else 1)
        check_room(self.cache, needed, f"converting the {self.model} for OpenVINO", "set GENIMG_CACHE_DIR to a bigger disk")
        traced = self.traced()
        with torch.no_grad(), warnings.catch_warnings(), in_float32(self.module, f32_graph):
            warnings.simplefilter("ignore")  # the tracer's notes on shape checks it keeps as constants
            converted = convert_traced(traced, example)
            converted.reshape({port: list(x.shape) for port, x in zip(converted.inputs, example)})
            save_ir(converted, xml, needed, f"the converted {self.model}")
            del converted
        del traced
        free_conversion_garbage()


class _Traced(torch.nn.Module):
    """The part with a float32 tensor in and out (numpy feeds the graph and has no bf16)."""

    def __init__(self, module, torch_forward):
        super().__init__()
        self.module, self.torch_forward = module, torch_forward

    def forward(self, sample):
        return self.torch_forward(sample.to(_dtype(self.module))).float()


def _dtype(module) -> torch.dtype:
    return next(module.parameters()).dtype
