"""--lora on the generation commands: changes the image, weight 0 is no LoRA, both layouts load."""

import numpy as np
import pytest

from conftest import pixels
from genimg.output.metadata import read_metadata

FAST = ("-W", "64", "-H", "64", "--steps", "3", "--seed", "4")


@pytest.fixture(scope="session")
def loras(tiny_models, tmp_path_factory):
    from genimg.testing.loras import save_random_lora

    root = tmp_path_factory.mktemp("loras")
    return {
        "sd": save_random_lora(tiny_models["sd"], root / "sd-lora"),
        "sd-kohya": save_random_lora(tiny_models["sd"], root / "sd-kohya.safetensors", kohya=True),
        "sdxl": save_random_lora(tiny_models["sdxl"], root / "sdxl-lora"),
        "flux": save_random_lora(tiny_models["flux"], root / "flux-lora"),
    }


@pytest.mark.parametrize("family", ["sd", "sdxl", "flux"])
def test_lora_changes_the_image_and_weight_zero_equals_none(cli, tmp_path, tiny_models, loras, family):
    model = ("--model", tiny_models[family])
    assert cli("txt2img", "x", *model, *FAST, "-o", tmp_path / "plain.png").code == 0
    assert cli("txt2img", "x", *model, *FAST, "--lora", loras[family], "-o", tmp_path / "lora.png").code == 0
    assert cli("txt2img", "x", *model, *FAST, "--lora", f"{loras[family]}:0", "-o", tmp_path / "zero.png").code == 0
    assert np.abs(pixels(tmp_path / "plain.png") - pixels(tmp_path / "lora.png")).mean() > 0.5
    assert np.array_equal(pixels(tmp_path / "plain.png"), pixels(tmp_path / "zero.png"))


def test_kohya_layout_loads_and_matches_the_diffusers_one(cli, tmp_path, tiny_models, loras):
    model = ("--model", tiny_models["sd"])
    assert cli("txt2img", "x", *model, *FAST, "--lora", loras["sd"], "-o", tmp_path / "d.png").code == 0
    assert cli("txt2img", "x", *model, *FAST, "--lora", loras["sd-kohya"], "-o", tmp_path / "k.png").code == 0
    assert np.abs(pixels(tmp_path / "d.png") - pixels(tmp_path / "k.png")).max() <= 1
    assert "Lora hashes" in read_metadata(tmp_path / "k.png")["parameters"]


def test_lora_weights_are_switched_between_generations_on_one_loaded_model(tiny_models, loras):
    from genimg.factory import PipelineFactory
    from genimg.generation import generate
    from genimg.spec import GenerationSpec

    factory = PipelineFactory()
    spec = GenerationSpec("x", model=str(tiny_models["sd"]), width=64, height=64, steps=3, seed=4)
    plain = np.asarray(generate(spec, factory)[0].image)
    with_lora = np.asarray(generate(spec.replace(loras=[str(loras["sd"])]), factory)[0].image)
    half = np.asarray(generate(spec.replace(loras=[f"{loras['sd']}:0.5"]), factory)[0].image)
    again = np.asarray(generate(spec, factory)[0].image)
    assert not np.array_equal(plain, with_lora) and not np.array_equal(half, with_lora)
    assert np.array_equal(plain, again)


def test_missing_lora_and_wrong_family(cli, tmp_path, tiny_models, loras):
    result = cli("txt2img", "x", "--model", tiny_models["sd"], *FAST, "--lora", tmp_path / "nope.safetensors",
                 "-o", tmp_path / "a.png")
    assert result.code == 2 and "does not exist" in result.err
    result = cli("txt2img", "x", "--model", tiny_models["sd"], *FAST, "--lora", loras["flux"], "-o", tmp_path / "b.png")
    assert result.code == 2 and "cannot load LoRA" in result.err
