"""--deepcache and --tome: DeepCache's and ToMe's own helpers around one pipeline call, the UNet as it was
after it, and one line for what they cannot do."""

import json

import numpy as np
import pytest
from PIL import Image

from genimg.testing.images import pixels

pytest.importorskip("DeepCache")
pytest.importorskip("tomesd")

FAST = ("-W", "64", "-H", "64", "--steps", "9", "--seed", "3", "--preset", "cpu")


def test_deepcache_is_its_helpers_picture_and_the_next_job_runs_plain(tmp_path, tiny_models):
    import torch
    from DeepCache import DeepCacheSDHelper
    from diffusers import StableDiffusionPipeline

    from genimg.factory import PipelineFactory
    from genimg.generation import generate
    from genimg.spec import GenerationSpec

    factory = PipelineFactory()
    spec = GenerationSpec("a red circle", model=str(tiny_models["sd"]), width=64, height=64, steps=9, seed=3,
                          scheduler="Euler", preset="cpu")
    plain = np.asarray(generate(spec, factory)[0].image, dtype=np.float64)
    cached = np.asarray(generate(spec.replace(preset_overrides={"deepcache": 3}), factory)[0].image, dtype=np.float64)
    again = np.asarray(generate(spec, factory)[0].image, dtype=np.float64)
    assert factory.loads == 1 and np.array_equal(plain, again)  # the helper let go of the shared UNet
    pipe = StableDiffusionPipeline.from_pretrained(tiny_models["sd"])
    from diffusers import EulerDiscreteScheduler

    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    helper = DeepCacheSDHelper(pipe=pipe)
    helper.set_params(cache_interval=3, cache_branch_id=0)
    helper.enable()
    expected = pipe("a red circle", width=64, height=64, num_inference_steps=9, guidance_scale=7.5,
                    generator=torch.Generator("cpu").manual_seed(3), output_type="np").images[0]
    assert np.abs(cached - (expected * 255).round()).max() <= 1
    # the steps between full passes reuse the deep features: close to the plain picture, not equal to it
    assert 0 < np.abs(cached - plain).mean() < np.abs(plain - plain.mean()).mean()


def test_tome_patches_the_attention_blocks_for_the_call_only(tiny_models):
    from diffusers import StableDiffusionPipeline

    from genimg.presets import get_preset
    from genimg.step_savers import step_savers

    pipe = StableDiffusionPipeline.from_pretrained(tiny_models["sd"])

    def blocks():
        names = [type(m).__name__ for m in pipe.unet.modules()]
        return names.count("BasicTransformerBlock"), names.count("ToMeBlock")

    before = blocks()
    with step_savers(pipe, get_preset("cpu").with_overrides(tome=0.5), seed=7):
        assert blocks() == (0, before[0]) and pipe.unet._tome_info["args"]["ratio"] == 0.5
    assert blocks() == before and before[0] > 0


def test_the_settings_are_recorded_and_remade_by_from(cli, tmp_path):
    made = cli("txt2img", "a red circle", *FAST, "--deepcache", "3", "-o", tmp_path / "a.png", "--json")
    assert made.code == 0, made
    record = json.loads(Image.open(tmp_path / "a.png").text["genimg"])
    assert record["preset"]["deepcache"] == 3 and record["preset"]["tome"] == 0
    again = cli("txt2img", "--from", tmp_path / "a.png", "-o", tmp_path / "b.png")
    assert again.code == 0 and np.array_equal(pixels(tmp_path / "a.png"), pixels(tmp_path / "b.png"))


@pytest.mark.parametrize("args,words", [
    (("--deepcache", "1"), ("2 or more",)),
    (("--tome", "1.5"), ("below 1",)),
    (("--tome", "0.5", "--compile", "default"), ("compile = default",)),  # cpu-openvino: torch instead (test_openvino)
    (("--deepcache", "3", "-m", "{flux}"), ("UNet models", "FluxTransformer2DModel")),
])
def test_what_they_cannot_do_is_one_line(cli, tmp_path, tiny_models, args, words):
    argv = [a.format(flux=tiny_models["flux"]) for a in args]
    result = cli("txt2img", "x", *argv, "-o", tmp_path / "x.png")
    assert result.code == 2 and result.err.count("\n") == 1, result
    assert all(w in result.err for w in words), result.err
