"""`--clip-skip` is A1111's Clip skip: 2 reads CLIP's penultimate layer, as diffusers' clip_skip=1 does;
written as `Clip skip: 2` and read back by `--from`; weighted prompts honour it too."""

import numpy as np
import pytest
import torch

from genimg.generation import plan, run
from genimg.output.metadata import read_metadata
from genimg.spec import GenerationSpec


def _image(tiny_models, family, prompt, **settings):
    spec = GenerationSpec(prompt, model=str(tiny_models[family]), width=64, height=64, steps=2, seed=3, preset="cpu",
                          **settings)
    [made] = run(plan(spec))
    return np.asarray(made.image, dtype=np.int16)


@pytest.mark.parametrize("family", ["sd", "sdxl"])
def test_clip_skip_2_is_diffusers_clip_skip_1_and_changes_the_picture(tiny_models, family):
    import diffusers

    from genimg.prompting.encode import encode

    cls = {"sd": diffusers.StableDiffusionPipeline, "sdxl": diffusers.StableDiffusionXLPipeline}[family]
    pipe = cls.from_pretrained(tiny_models[family])
    ids = pipe.tokenizer("a red circle", padding="max_length", max_length=77, return_tensors="pt").input_ids
    with torch.no_grad():
        states = pipe.text_encoder(ids, output_hidden_states=True).hidden_states
        # diffusers' encode_prompt rule for clip_skip=1: SD the layer before the last, through the final
        # layer norm; SDXL the one before its usual penultimate, not normed.
        expected = (getattr(pipe.text_encoder, "text_model", pipe.text_encoder).final_layer_norm(states[-2])
                    if family == "sd" else states[-3])
        ours = encode(pipe, family, ["a red circle"], None, clip_skip=1)["prompt_embeds"]
    width = expected.shape[-1]
    assert torch.allclose(ours[..., :width], expected, atol=1e-5)
    plain = _image(tiny_models, family, "a red circle")
    skipped = _image(tiny_models, family, "a red circle", clip_skip=2)
    assert np.array_equal(_image(tiny_models, family, "a red circle", clip_skip=1), plain)
    assert np.abs(plain - skipped).mean() > 0.5
    # A weighted prompt goes through genimg's own encoding: the skip holds there too.
    weighted = _image(tiny_models, family, "a (red:1.0) circle", clip_skip=2)
    assert np.abs(weighted - skipped).max() <= 1


def test_clip_skip_is_written_as_a1111_writes_it_and_read_back(cli, tmp_path, tiny_models):
    made = cli("txt2img", "a ring", "-m", tiny_models["sd"], "-W", "64", "-H", "64", "--steps", "2", "--seed", "1",
               "--clip-skip", "2", "-o", tmp_path / "a.png")
    assert made.code == 0, made
    assert read_metadata(tmp_path / "a.png")["parameters"]["Clip skip"] == "2"
    from genimg.output.metadata import spec_from_png

    text = read_metadata(tmp_path / "a.png")["parameters_text"]
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("parameters", text)  # only A1111's text, as a Civitai download has it
    Image.open(tmp_path / "a.png").save(tmp_path / "a1111.png", pnginfo=info)
    assert spec_from_png(tmp_path / "a1111.png").spec.clip_skip == 2
    bad = cli("txt2img", "x", "-m", tiny_models["sd"], "--clip-skip", "0", "-o", tmp_path / "b.png")
    assert bad.code == 2 and "--clip-skip must be between 1" in bad.err
