"""On a CUDA machine: every GPU preset really runs each family's tiny model (skipped without CUDA;
the same presets' settings are checked on the CPU by test_factory.py with faked devices)."""

import json

import numpy as np
import pytest

from conftest import FAMILIES, pixels

GPU_PRESETS = ("6gb", "8gb", "12gb", "16gb", "24gb", "80gb")


@pytest.mark.gpu
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("preset", GPU_PRESETS)
def test_every_gpu_preset_generates_an_image(cli, tmp_path, tiny_models, family, preset):
    pytest.importorskip("bitsandbytes")
    result = cli("txt2img", "a red circle", "-m", tiny_models[family], "--preset", preset, "-W", "64", "-H", "64",
                 "--steps", "3", "--seed", "1", "-o", tmp_path / "a.png", "--json")
    assert result.code == 0, result
    image = pixels(tmp_path / "a.png")
    assert image.shape == (64, 64, 3) and image.std() > 0
    assert json.loads(result.out)["settings"]["preset"] == preset


@pytest.mark.gpu
def test_half_precision_on_the_gpu_is_close_to_fp32(cli, tmp_path, tiny_models):
    common = ("a red circle", "-m", tiny_models["sd"], "-W", "64", "-H", "64", "--steps", "3", "--seed", "1")
    assert cli("txt2img", *common, "--device", "cuda", "--dtype", "fp32", "-o", tmp_path / "f32.png").code == 0
    assert cli("txt2img", *common, "--device", "cuda", "--dtype", "fp16", "-o", tmp_path / "f16.png").code == 0
    assert np.abs(pixels(tmp_path / "f32.png") - pixels(tmp_path / "f16.png")).mean() < 8
