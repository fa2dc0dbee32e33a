"""A1111's variation seeds, seed resize and seamless tiling, through the CLI as users type them, and back
from the PNG's A1111 text."""

from __future__ import annotations

import json

import numpy as np
import pytest

from genimg.output.metadata import read_metadata
from genimg.testing.images import FAMILIES, pixels

SMALL = ("-W", "64", "-H", "64", "--steps", "3", "--preset", "cpu")


def _make(cli, tiny_models, family, out, *args):
    size = ("-H", "32") if family == "flux" else ()
    result = cli("txt2img", "a red circle", "--model", tiny_models[family], *SMALL, *size, "-o", out, "--json", *args)
    assert result.code == 0, result
    return [json.loads(line) for line in result.out.splitlines()]


@pytest.mark.parametrize("family", FAMILIES)
def test_strength_0_is_the_seeds_image_and_1_the_variation_seeds_bit_for_bit(cli, tmp_path, tiny_models, family):
    _make(cli, tiny_models, family, tmp_path / "seed.png", "--seed", "3")
    _make(cli, tiny_models, family, tmp_path / "other.png", "--seed", "9")
    # the noise drawn by genimg (a seed resize to the image's own size) equals the pipeline's own draw
    width, height = (64, 32) if family == "flux" else (64, 64)
    _make(cli, tiny_models, family, tmp_path / "zero.png", "--seed", "3", "--seed-resize-from", f"{width}x{height}")
    _make(cli, tiny_models, family, tmp_path / "one.png", "--seed", "3", "--variation-seed", "9",
          "--variation-strength", "1")
    _make(cli, tiny_models, family, tmp_path / "half.png", "--seed", "3", "--variation-seed", "9",
          "--variation-strength", "0.5")
    assert np.array_equal(pixels(tmp_path / "zero.png"), pixels(tmp_path / "seed.png"))
    assert np.array_equal(pixels(tmp_path / "one.png"), pixels(tmp_path / "other.png"))
    half = pixels(tmp_path / "half.png")
    assert not np.array_equal(half, pixels(tmp_path / "seed.png")) and not np.array_equal(half, pixels(tmp_path / "other.png"))


def test_a_variation_is_written_as_a1111_writes_it_and_remade_from_its_png(cli, tmp_path, tiny_models):
    [made] = _make(cli, tiny_models, "sd", tmp_path / "v.png", "--seed", "3", "--variation-seed", "9",
                   "--variation-strength", "0.25")
    meta = read_metadata(made["path"])["parameters"]
    assert (meta["Seed"], meta["Variation seed"], meta["Variation seed strength"]) == ("3", "9", "0.25")
    again = cli("txt2img", "--from", made["path"], "-o", tmp_path / "again.png", "--local")
    assert again.code == 0, again
    assert np.array_equal(pixels(tmp_path / "again.png"), pixels(made["path"]))


def test_count_steps_the_variation_seed_and_keeps_the_seed_as_a1111_does(cli, tmp_path, tiny_models):
    made = _make(cli, tiny_models, "sd", tmp_path, "--seed", "3", "--variation-seed", "9", "--variation-strength",
                 "0.3", "--count", "3")
    settings = [m["settings"] for m in made]
    assert [(s["seed"], s["variation_seed"]) for s in settings] == [(3, 9), (3, 10), (3, 11)]
    assert len({m["path"] for m in made}) == 3
    [second] = _make(cli, tiny_models, "sd", tmp_path / "second.png", "--seed", "3", "--variation-seed", "10",
                     "--variation-strength", "0.3")
    assert np.array_equal(pixels(second["path"]), pixels(made[1]["path"]))


def test_a_seed_resized_from_a_smaller_size_keeps_that_noise_in_the_middle(tiny_models):
    """A1111's seed resize: the seed's noise at the old size is the centre of the new noise."""
    import torch
    from diffusers import StableDiffusionPipeline

    from genimg.models.families import line_of
    from genimg.noise import initial_noise
    from genimg.planning import PlannedImage
    from genimg.spec import GenerationSpec

    pipe = StableDiffusionPipeline.from_pretrained(tiny_models["sd"])
    line = line_of("sd")
    spec = GenerationSpec("x", width=96, height=64, seed_resize_from="64x64", seed=5)
    [noise] = initial_noise(pipe, line, spec, [PlannedImage(0, 5, "x", "")], torch.float32)
    [small] = initial_noise(pipe, line, spec.replace(width=64, height=64), [PlannedImage(0, 5, "x", "")],
                            torch.float32)
    scale = pipe.vae_scale_factor
    assert noise.shape == (4, 64 // scale, 96 // scale) and small.shape == (4, 64 // scale, 64 // scale)
    left = (96 - 64) // scale // 2
    assert torch.equal(noise[:, :, left:left + 64 // scale], small)
    assert not torch.equal(noise[:, :, :left], small[:, :, :left])  # the sides are the new size's own draw


def _seam(image) -> float:
    """How much the wrap-around edge (the last column meeting the first) stands out: its Laplacian against the
    image's inner columns' (1: no seam)."""
    a = image.astype(float)
    wrapped = np.concatenate([a[:, -2:], a, a[:, :2]], axis=1)
    lap = np.abs(2 * wrapped[:, 1:-1] - wrapped[:, :-2] - wrapped[:, 2:])[:, 1:-1]
    return (lap[:, 0].mean() + lap[:, -1].mean()) / 2 / lap[:, 1:-1].mean()


def test_seamless_convolutions_make_the_model_wrap_around_exactly(tiny_models):
    """With every convolution circular, the UNet and the VAE are translation-equivariant on a torus: rolled
    noise gives the rolled image (along the wrapped axes only), and the model is as loaded after."""
    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline

    from genimg.tiling import seamless

    pipe = StableDiffusionPipeline.from_pretrained(tiny_models["sd"])
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    scale = pipe.vae_scale_factor
    noise = torch.randn((1, 4, 64 // scale, 64 // scale), generator=torch.Generator().manual_seed(1))
    shift = 4  # latent pixels: a multiple of the UNet's downsampling

    def image(latents, axes):
        with seamless(pipe, axes):
            out = pipe("x", latents=latents, num_inference_steps=3, height=64, width=64, output_type="np")
        return out.images[0]

    plain = image(noise, None)
    for axes, dim, axis in (("xy", 3, 1), ("xy", 2, 0), ("x", 3, 1)):
        rolled = image(torch.roll(noise, shift, dims=dim), axes)
        expected = np.roll(image(noise, axes), shift * scale, axis=axis)
        assert np.abs(rolled - expected).max() < 2e-3, axes
    rolled_y = image(torch.roll(noise, shift, dims=2), "x")  # not wrapped along y: not equivariant there
    assert np.abs(rolled_y - np.roll(image(noise, "x"), shift * scale, axis=0)).max() > 0.05
    assert np.array_equal(image(noise, None), plain)  # nothing wraps after


def test_tiling_on_the_cli_draws_a_tile_and_is_written_and_remade(cli, tmp_path):
    plain = tmp_path / "plain.png"
    common = ("a red circle", "-m", "demo", "-W", "64", "-H", "64", "--seed", "2", "--preset", "cpu", "--local")
    assert cli("txt2img", *common, "-o", plain).code == 0
    assert cli("txt2img", *common, "--tiling", "-o", tmp_path / "tiled.png").code == 0
    assert cli("txt2img", *common, "--tiling-axis", "x", "-o", tmp_path / "x.png").code == 0
    assert cli("txt2img", *common, "-o", tmp_path / "after.png").code == 0
    tiled, x_only = pixels(tmp_path / "tiled.png"), pixels(tmp_path / "x.png")
    assert _seam(tiled) < 1.5 and _seam(tiled.transpose(1, 0, 2)) < 1.5  # its edges join as its columns do
    assert _seam(pixels(plain)) > 3 and _seam(pixels(plain).transpose(1, 0, 2)) > 3  # the untiled edges show
    assert _seam(x_only) < 1.5 and _seam(x_only.transpose(1, 0, 2)) > 3
    assert np.array_equal(pixels(tmp_path / "after.png"), pixels(plain))
    assert read_metadata(tmp_path / "tiled.png")["parameters"]["Tiling"] == "True"
    assert read_metadata(tmp_path / "x.png")["parameters"]["Tiling"] == "x"
    again = cli("txt2img", "--from", tmp_path / "tiled.png", "-o", tmp_path / "again.png", "--local")
    assert again.code == 0 and np.array_equal(pixels(tmp_path / "again.png"), tiled)


def test_tiling_is_refused_for_a_transformer_and_a_variation_for_img2img(cli, tmp_path, tiny_models):
    result = cli("txt2img", "x", "--model", tiny_models["flux"], "--tiling", "-o", tmp_path / "f.png")
    assert result.code == 2 and "--tiling" in result.err and "transformer" in result.err
    result = cli("txt2img", "x", "--model", tiny_models["sd"], "--variation-strength", "2", "-o", tmp_path / "s.png")
    assert result.code == 2 and "--variation-strength must be between 0 and 1" in result.err


def test_a1111s_own_png_text_of_these_extras_is_read_back(tmp_path):
    """A PNG made by A1111 (its text only, no genimg record): the variation seed, seed resize, tiling and refiner."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    from genimg.output.metadata import spec_from_png

    info = PngInfo()
    info.add_text("parameters", "a lighthouse\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 3, Size: 64x64, "
                                "Variation seed: 9, Variation seed strength: 0.5, Seed resize from: 512x512, "
                                "Tiling: True, Refiner: sd_xl_refiner_1.0 [7440042bbd], Refiner switch at: 0.8")
    Image.new("RGB", (64, 64)).save(tmp_path / "a1111.png", pnginfo=info)
    read = spec_from_png(tmp_path / "a1111.png")
    spec = read.spec
    assert (spec.seed, spec.variation_seed, spec.variation_strength, spec.seed_resize_from) == (3, 9, 0.5, "512x512")
    assert (spec.tiling, spec.refiner, spec.refiner_switch) == ("xy", "sd_xl_refiner_1.0", 0.8)
    assert read.unmapped == {}
