"""A1111's prompt editing and alternation: the schedule A1111 makes, and images that follow it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from genimg.prompting.schedule import schedule, text_at
from genimg.testing.images import pixels


def test_the_schedule_is_a1111s():
    # A1111's own wiki example, at 100 steps
    prompt = ("fantasy landscape with a [mountain:lake:0.25] and [an oak:a christmas tree:0.75][ in foreground::0.6]"
              "[ in background:0.25] [shoddy:masterful:0.5]")
    assert schedule(prompt, 100) == [
        (25, "fantasy landscape with a mountain and an oak in foreground shoddy"),
        (50, "fantasy landscape with a lake and an oak in foreground in background shoddy"),
        (60, "fantasy landscape with a lake and an oak in foreground in background masterful"),
        (75, "fantasy landscape with a lake and an oak in background masterful"),
        (100, "fantasy landscape with a lake and a christmas tree in background masterful")]
    assert schedule("[red:blue:0] circle", 20) == [(20, "blue circle")]
    assert schedule("a [red:blue:5] (circle:1.2)", 20) == [(5, "a red (circle:1.2)"), (20, "a blue (circle:1.2)")]
    assert [text for _, text in schedule("[cat|dog] [small]", 3)] == ["cat [small]", "dog [small]", "cat [small]"]
    pairs = schedule("[a:b:2]", 4)  # steps 0, 1, 2 read a (A1111's off-by-one), 3 reads b
    assert [text_at(pairs, s) for s in range(4)] == ["a", "a", "a", "b"]


@pytest.mark.parametrize("family", ["sd", "sdxl"])
def test_editing_at_step_0_is_the_target_prompts_image(cli, tmp_path, tiny_models, family):
    common = ("--model", tiny_models[family], "-W", "64", "-H", "64", "--steps", "4", "--seed", "5", "--preset", "cpu")
    assert cli("txt2img", "[red:blue:0] circle", *common, "-o", tmp_path / "edited.png").code == 0
    assert cli("txt2img", "blue circle", *common, "-o", tmp_path / "blue.png").code == 0
    assert cli("txt2img", "red circle", *common, "-o", tmp_path / "red.png").code == 0
    assert np.array_equal(pixels(tmp_path / "edited.png"), pixels(tmp_path / "blue.png"))
    # switched after step 1 of 4: neither prompt's image; switched after the last step: the first prompt's
    assert cli("txt2img", "[red:blue:1] circle", *common, "-o", tmp_path / "half.png").code == 0
    assert cli("txt2img", "[red:blue:4] circle", *common, "-o", tmp_path / "never.png").code == 0
    half = pixels(tmp_path / "half.png")
    assert not np.array_equal(half, pixels(tmp_path / "red.png")) and not np.array_equal(half, pixels(tmp_path / "blue.png"))
    assert np.array_equal(pixels(tmp_path / "never.png"), pixels(tmp_path / "red.png"))


def test_the_pipeline_reads_each_steps_text(tiny_models):
    """The embeddings each step's UNet call reads are those of the schedule's text at that step."""
    import torch

    from genimg.factory import PipelineFactory
    from genimg.generation import plan, run
    from genimg.prompting.encode import encode
    from genimg.spec import GenerationSpec

    factory, seen = PipelineFactory(), []
    spec = GenerationSpec("[cat|dog] on a [red:blue:0.5] mat", model=str(tiny_models["sd"]), width=64, height=64,
                          steps=4, seed=1, preset="cpu", guidance=5.0)
    the_plan = plan(spec)
    pipe, _ = factory.get(the_plan.ref, the_plan.preset, the_plan.choice)
    original = pipe.unet.forward
    pipe.unet.forward = lambda *a, **k: (seen.append(k["encoder_hidden_states"].clone()), original(*a, **k))[1]
    try:
        list(run(the_plan, factory))
    finally:
        del pipe.unet.forward
    # A1111's steps: step s reads the first text whose last step is at least s (so the first text reads two)
    expected = ["cat on a red mat", "cat on a red mat", "dog on a red mat", "cat on a blue mat"]
    for step, text in enumerate(expected):
        wanted = encode(pipe, "sd", [text], [""])
        joined = torch.cat([wanted["negative_prompt_embeds"], wanted["prompt_embeds"]])
        assert torch.allclose(seen[step], joined, atol=1e-6), (step, text)


def test_editing_is_written_as_typed_and_refused_where_it_cannot_run(cli, tmp_path, tiny_models):
    result = cli("txt2img", "[red:blue:2] circle", "--model", tiny_models["sd"], "-W", "64", "-H", "64", "--steps", "4",
                 "--seed", "5", "--preset", "cpu", "-o", tmp_path / "e.png", "--json")
    assert result.code == 0 and json.loads(result.out)["settings"]["prompt"] == "[red:blue:2] circle"
    again = cli("txt2img", "--from", tmp_path / "e.png", "-o", tmp_path / "again.png")
    assert again.code == 0 and np.array_equal(pixels(tmp_path / "again.png"), pixels(tmp_path / "e.png"))
    flux = cli("txt2img", "[red:blue:2] circle", "--model", tiny_models["flux"], "-o", tmp_path / "f.png")
    assert flux.code == 2 and "'[red:blue:2] circle' edits the prompt over the steps" in flux.err
    img2img = cli("img2img", tmp_path / "e.png", "[cat|dog]", "--model", tiny_models["sd"], "-o", tmp_path / "i.png")
    assert img2img.code == 2 and "txt2img does that" in img2img.err
