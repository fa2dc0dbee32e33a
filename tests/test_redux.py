"""FLUX.1 Redux (`--redux IMAGE[,scale=S][,model=…]`): the image's embedding joins the prompt's, on the
tiny FLUX model with a tiny Redux of the real classes — diffusers' own picture, the record and `--from`."""

import json

import numpy as np
import pytest
from PIL import Image

from genimg.testing.images import pixels


@pytest.fixture(scope="module")
def redux(tmp_path_factory):
    from genimg.testing.tiny_models import save_tiny_redux

    return save_tiny_redux(tmp_path_factory.mktemp("redux") / "tiny-redux")


@pytest.fixture
def astronaut(tmp_path):
    from skimage import data

    Image.fromarray(data.astronaut()).resize((64, 64)).save(tmp_path / "astronaut.png")
    Image.fromarray(data.coffee()).resize((64, 64)).save(tmp_path / "coffee.png")
    return tmp_path / "astronaut.png"


def _run(cli, out, model, *extra):
    result = cli("txt2img", "a portrait", "-m", model, "-W", "48", "-H", "32", "--steps", "3", "--seed", "9",
                 "--preset", "cpu", "-o", out, "--json", *extra)
    assert result.code == 0, result
    return json.loads(result.out)


def test_redux_makes_diffusers_own_picture_from_the_image_and_the_prompt(cli, tmp_path, tiny_models, redux, astronaut):
    import torch
    from diffusers import FluxPipeline, FluxPriorReduxPipeline

    made = _run(cli, tmp_path / "r.png", tiny_models["flux"], "--redux", f"{astronaut},scale=0.8,model={redux}")
    assert made["settings"]["redux"] == [{"image": str(astronaut), "scale": 0.8, "model": str(redux)}]
    pipe = FluxPipeline.from_pretrained(tiny_models["flux"])
    prior = FluxPriorReduxPipeline.from_pretrained(redux, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer,
                                                   text_encoder_2=pipe.text_encoder_2, tokenizer_2=pipe.tokenizer_2)
    embeds = prior(image=[Image.open(astronaut).convert("RGB")], prompt=["a portrait"], prompt_embeds_scale=[0.8],
                   pooled_prompt_embeds_scale=[0.8])
    expected = pipe(prompt_embeds=embeds.prompt_embeds, pooled_prompt_embeds=embeds.pooled_prompt_embeds, width=48,
                    height=32, num_inference_steps=3, guidance_scale=3.5, output_type="np",
                    generator=torch.Generator("cpu").manual_seed(9)).images[0]
    assert np.abs(pixels(tmp_path / "r.png") - (expected * 255).round()).max() <= 1


def test_another_image_another_picture_and_the_png_remakes_itself(cli, tmp_path, tiny_models, redux, astronaut):
    _run(cli, tmp_path / "a.png", tiny_models["flux"], "--redux", f"{astronaut},model={redux}")
    _run(cli, tmp_path / "c.png", tiny_models["flux"], "--redux", f"{tmp_path / 'coffee.png'},model={redux}")
    _run(cli, tmp_path / "plain.png", tiny_models["flux"])
    a, c, plain = (pixels(tmp_path / n) for n in ("a.png", "c.png", "plain.png"))
    # (the tiny Redux's 16 image tokens sit beside 512 of T5's, so they move the tiny model's picture a little;
    # the first test checks the picture itself against diffusers')
    assert not np.array_equal(a, c) and not np.array_equal(a, plain)
    again = cli("txt2img", "--from", tmp_path / "a.png", "-o", tmp_path / "b.png")
    assert again.code == 0, again
    assert np.array_equal(a, pixels(tmp_path / "b.png"))
    record = json.loads(Image.open(tmp_path / "a.png").text["genimg"])
    assert record["redux"][0]["source_hash"] and record["redux"][0]["model"] == str(redux)


def test_redux_is_flux_only_and_its_model_must_be_a_redux(cli, tmp_path, tiny_models, redux, astronaut):
    sd = cli("txt2img", "x", "-m", tiny_models["sd"], "--redux", str(astronaut), "-o", tmp_path / "s.png")
    assert sd.code == 2 and "use --ip-adapter" in sd.err, sd
    wrong = cli("txt2img", "x", "-m", tiny_models["flux"], "--redux", f"{astronaut},model={tiny_models['flux']}",
                "-o", tmp_path / "w.png")
    assert wrong.code == 2 and "holds no FluxPriorReduxPipeline" in wrong.err and not (tmp_path / "w.png").exists()
    bad = cli("txt2img", "x", "-m", tiny_models["flux"], "--redux", f"{astronaut},scale=3", "-o", tmp_path / "b.png")
    assert bad.code == 2 and "Redux scale must be between 0 and 2" in bad.err


def test_a_batch_rows_redux_image_is_relative_to_the_file(cli, tmp_path, tiny_models, redux, astronaut):
    from genimg.output.metadata import read_metadata

    row = {"prompt": "x", "redux": f"{astronaut.name},scale=0.5,model={redux}"}
    (tmp_path / "jobs.jsonl").write_text(json.dumps(row) + "\n")
    result = cli("batch", tmp_path / "jobs.jsonl", "-m", tiny_models["flux"], "-W", "32", "-H", "32", "--steps", "2",
                 "--preset", "cpu", "--quiet", "-o", tmp_path / "out")
    assert result.code == 0, result
    [png] = (tmp_path / "out").glob("*.png")
    assert read_metadata(png)["genimg"]["spec"]["redux"] == [{"image": str(astronaut), "scale": 0.5, "model": str(redux)}]
