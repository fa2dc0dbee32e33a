"""Upscalers run where the preset says: spandrel models on its device, in its dtype where the architecture
supports that precision, every tile sent there; the hires fix takes the plan's preset."""

import numpy as np
import pytest
import torch
from PIL import Image

from genimg.presets import get_preset
from genimg.upscale import upscalers
from genimg.upscale.models import resolve_upscaler


@pytest.fixture
def fake_cuda(monkeypatch):
    """spandrel's `.to` and the tiles' move recorded instead of done: this machine has no GPU."""
    import spandrel

    moves, tiles = [], []

    def to(self, device=None, dtype=None):
        moves.append((str(device), dtype))
        return self

    def to_model(tensor, model):
        tiles.append(tuple(tensor.shape))
        return tensor

    monkeypatch.setattr(spandrel.ImageModelDescriptor, "to", to)
    monkeypatch.setattr(upscalers, "_to_model", to_model)
    return moves, tiles


def test_a_spandrel_upscaler_and_every_tile_go_to_the_presets_gpu_in_half_precision(fake_cuda):
    moves, tiles = fake_cuda
    preset = get_preset("6gb")  # a 256 px tile on a 6 GB card
    upscaler = upscalers.load_upscaler(resolve_upscaler("demo-upscaler"), tile=preset.upscale_tile, preset=preset)
    assert upscaler.model.supports_half
    assert moves[-1] == ("cuda", torch.float16)  # (spandrel's loader puts it on the CPU first)
    upscaler.upscale(Image.new("RGB", (300, 280), "red"))
    assert len(tiles) == 4 and all(max(shape[2:]) <= 256 for shape in tiles)


def test_an_architecture_without_the_precision_runs_in_fp32(fake_cuda):
    moves, _ = fake_cuda
    model = upscalers.load_spandrel(resolve_upscaler("demo-upscaler"))
    model.supports_bfloat16 = False
    upscalers.on_preset(model, get_preset("cpu").with_overrides(dtype="bf16"))
    assert moves[-1] == ("cpu", torch.float32)


def test_bf16_on_the_cpu_upscales_close_to_fp32(tmp_path):
    ref = resolve_upscaler("demo-upscaler")
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 40, 3), dtype=np.uint8))
    full = upscalers.load_upscaler(ref, preset=get_preset("cpu"))
    half = upscalers.load_upscaler(ref, preset=get_preset("cpu").with_overrides(dtype="bf16"))
    assert half.model.dtype == torch.bfloat16 and full.model.dtype == torch.float32
    a, b = (np.asarray(u.upscale(image), dtype=np.int16) for u in (full, half))
    assert a.shape == (192, 160, 3) and np.abs(a - b).mean() < 3


def test_the_hires_fix_loads_its_upscaler_with_the_plans_preset_and_release_frees_it(tiny_models):
    from genimg.factory import PipelineFactory
    from genimg.generation import plan, run
    from genimg.spec import GenerationSpec

    factory = PipelineFactory()
    spec = GenerationSpec("a ring", model=str(tiny_models["sd"]), width=32, height=32, steps=2, seed=1,
                          preset="cpu", preset_overrides={"dtype": "bf16"}, hires={"scale": 2, "upscaler": "demo-upscaler"})
    [image] = run(plan(spec), factory)
    assert image.image.size == (64, 64)
    [(key, upscaler)] = factory.upscalers.items()
    assert upscaler.model.dtype == torch.bfloat16  # the plan's preset, not auto's (fp32 on this CPU)
    factory.release()
    assert factory.upscalers == {} and factory.current is None


def test_the_hires_fix_gives_the_sd_x4_upscaler_each_images_own_prompt(tiny_models, tmp_path, monkeypatch):
    from diffusers import StableDiffusionUpscalePipeline

    from genimg.factory import PipelineFactory
    from genimg.generation import plan, run
    from genimg.spec import GenerationSpec
    from genimg.testing.tiny_models import save_tiny_upscaler

    upscaler = save_tiny_upscaler(tmp_path / "tiny-x4")
    asked = []
    real = StableDiffusionUpscalePipeline.__call__

    def call(self, *args, **kwargs):
        asked.append((kwargs["prompt"], kwargs["negative_prompt"]))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(StableDiffusionUpscalePipeline, "__call__", call)
    spec = GenerationSpec("a red ring", negative="blurry", model=str(tiny_models["sd"]), width=16, height=16, steps=2,
                          seed=1, preset="cpu", hires={"scale": 4, "upscaler": str(upscaler), "steps": 2})
    [image] = run(plan(spec), PipelineFactory())
    assert image.image.size == (64, 64) and asked == [("a red ring", "blurry")]


def test_upscale_takes_the_users_preset_and_a_flag_wins_over_it(monkeypatch):
    from genimg.upscale.run import UpscaleSettings, load

    ref = resolve_upscaler("demo-upscaler")
    monkeypatch.setenv("GENIMG_PRESET", "cpu-bf16")
    assert load(ref, UpscaleSettings()).model.dtype == torch.bfloat16
    assert load(ref, UpscaleSettings(preset="cpu")).model.dtype == torch.float32
