"""Prompts as A1111 users write them: weights, nesting, escapes, BREAK, long prompts; FLUX strips them."""

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from genimg.testing.images import pixels
from genimg.prompting.weighting import Fragment, parse, plain_text

# Written from A1111's prompt-attention documentation (the wiki's "Attention/emphasis" section).
A1111_EXAMPLES = [
    ("a cat", [("a cat", 1.0)]),
    ("a (cat)", [("a ", 1.0), ("cat", 1.1)]),
    ("a ((cat))", [("a ", 1.0), ("cat", 1.21)]),
    ("a (cat:1.5) dog", [("a ", 1.0), ("cat", 1.5), (" dog", 1.0)]),
    ("a [cat]", [("a ", 1.0), ("cat", 1 / 1.1)]),
    ("a [[cat]]", [("a ", 1.0), ("cat", 1 / 1.21)]),
    ("(a (cat:1.5))", [("a ", 1.1), ("cat", 1.65)]),
    (r"a \(cat\)", [("a (cat)", 1.0)]),
    ("a (cat:0.5) [dog]", [("a ", 1.0), ("cat", 0.5), (" ", 1.0), ("dog", 1 / 1.1)]),
    ("sky BREAK sea", [("sky", 1.0), ("BREAK", -1), ("sea", 1.0)]),
    ("(unclosed cat", [("unclosed cat", 1.1)]),  # an open bracket weights the rest, as in A1111
    ("stray) cat", [("stray) cat", 1.0)]),  # a stray closing bracket is text
]


@pytest.mark.parametrize("prompt,expected", A1111_EXAMPLES)
def test_a1111_examples_parse_to_their_weights(prompt, expected):
    got = [(f.text, f.weight) for f in parse(prompt)]
    assert [t for t, _ in got] == [t for t, _ in expected]
    assert np.allclose([w for _, w in got], [w for _, w in expected])


def test_unbalanced_brackets_and_and_warn_but_never_fail():
    warnings = []
    parse("(a cat", warnings.append)
    parse("a cat AND a dog", warnings.append)
    assert "unbalanced brackets" in warnings[0] and "AND" in warnings[1]


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_text_parses_without_crashing(text):
    fragments = parse(text)
    assert fragments and all(isinstance(f, Fragment) for f in fragments)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_characters="()[]\\:", blacklist_categories=("Cs",))))
def test_plain_text_round_trips_unchanged(text):
    if "BREAK" in text:
        return
    assert "".join(f.text for f in parse(text)) == text and all(f.weight == 1.0 for f in parse(text))


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 4), st.integers(0, 4), st.floats(0.1, 3.0).map(lambda x: round(x, 2)))
def test_weights_multiply_through_nesting(rounds, squares, weight):
    prompt = "(" * rounds + "[" * squares + f"(word:{weight})" + "]" * squares + ")" * rounds
    [fragment] = parse(prompt)
    assert fragment.text == "word"
    assert fragment.weight == pytest.approx(weight * 1.1**rounds / 1.1**squares)


def test_plain_text_removes_the_syntax():
    assert plain_text("a (red:1.5) [big] circle BREAK on blue") == "a red big circle on blue"


@pytest.fixture(scope="module")
def pipes(tiny_models):
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    return {"sd": StableDiffusionPipeline.from_pretrained(tiny_models["sd"], safety_checker=None),
            "sdxl": StableDiffusionXLPipeline.from_pretrained(tiny_models["sdxl"])}


def _with_real_mean(pipe):
    """``pipe`` with a text encoder whose output's mean is not zero. The tiny SD encoder ends in a layer norm
    without bias, so its states average to zero but for rounding, which differs between CPUs (AMX rounds
    to below any fixed threshold, AVX512 does not): a trained CLIP's mean is far from zero, as here."""
    import copy

    pipe = copy.copy(pipe)
    pipe.text_encoder = copy.deepcopy(pipe.text_encoder)
    with torch.no_grad():
        text_model = getattr(pipe.text_encoder, "text_model", pipe.text_encoder)
        text_model.final_layer_norm.bias.copy_(torch.linspace(-0.2, 0.6, text_model.final_layer_norm.bias.numel()))
    return pipe


def test_a_mean_at_rounding_noise_is_not_rescaled_to(pipes):
    """A zero-mean encoder (the tiny one as built): the weights stand as they are, never a random rescale."""
    from genimg.prompting.encode import chunks, encode

    pipe = pipes["sd"]
    plain = encode(pipe, "sd", ["a red circle"], None)["prompt_embeds"][0]
    weighted = encode(pipe, "sd", ["a (red:1.5) circle"], None)["prompt_embeds"][0]
    assert abs(float(plain.mean())) < 1e-6 * float(plain.abs().mean())  # the premise: a mean of noise
    tokens = chunks(pipe.tokenizer, "a (red:1.5) circle")[0]
    positions = [1 + i for i, (_, w) in enumerate(tokens) if w == 1.5]
    others = [p for p in range(weighted.shape[0]) if p not in positions]
    assert torch.equal(weighted[others], plain[others])
    assert torch.allclose(weighted[positions], 1.5 * plain[positions], atol=1e-6)


@pytest.mark.parametrize("family", ["sd", "sdxl"])
def test_unweighted_prompts_encode_exactly_as_the_pipeline_does(pipes, family):
    from genimg.prompting.encode import encode

    pipe = pipes[family]
    ours = encode(pipe, family, ["a red circle, on blue"], ["blurry"])
    theirs = pipe.encode_prompt("a red circle, on blue", device="cpu", num_images_per_prompt=1,
                                do_classifier_free_guidance=True, negative_prompt="blurry")
    assert torch.allclose(ours["prompt_embeds"], theirs[0], atol=1e-6)
    assert torch.allclose(ours["negative_prompt_embeds"], theirs[1], atol=1e-6)
    if family == "sdxl":
        assert torch.allclose(ours["pooled_prompt_embeds"], theirs[2], atol=1e-6)
        assert torch.allclose(ours["negative_pooled_prompt_embeds"], theirs[3], atol=1e-6)


@pytest.mark.parametrize("family", ["sd", "sdxl"])
def test_weighting_a_word_scales_only_its_tokens_then_the_mean_is_restored(pipes, family):
    from genimg.prompting.encode import chunks, encode

    pipe = _with_real_mean(pipes[family])
    plain = encode(pipe, family, ["a red circle"], None)["prompt_embeds"][0]
    weighted = encode(pipe, family, ["a (red:1.5) circle"], None)["prompt_embeds"][0]
    tokens = chunks(pipe.tokenizer, "a (red:1.5) circle")[0]
    positions = [1 + i for i, (_, w) in enumerate(tokens) if w == 1.5]  # +1: BOS comes first
    assert positions
    others = [p for p in range(weighted.shape[0]) if p not in positions]
    common = float((weighted[others] * plain[others]).sum() / (plain[others] ** 2).sum())
    assert torch.allclose(weighted[others], common * plain[others], atol=1e-5)  # the mean-restoring factor
    assert torch.allclose(weighted[positions], 1.5 * common * plain[positions], atol=1e-5)
    assert abs(common - 1) > 1e-4  # the factor is real: weighting moved the mean, and it was put back
    assert float(weighted.mean()) == pytest.approx(float(plain.mean()), rel=1e-4, abs=1e-6)


def test_long_prompts_and_break_make_chunks_whose_second_part_counts(cli, tmp_path, tiny_models, pipes):
    from genimg.prompting.encode import encode

    # The tiny tokenizer has a token per character: 150 characters are two chunks and a bit.
    head = "a red circle on a blue background " * 4
    long_a, long_b = head + "x" * 40 + " with a green border", head + "x" * 40 + " with a yellow halo!"
    embeds = encode(pipes["sd"], "sd", [long_a], [""])
    assert embeds["prompt_embeds"].shape[1] == 77 * 3 and embeds["negative_prompt_embeds"].shape[1] == 77 * 3
    common = ("-m", tiny_models["sd"], "-W", "64", "-H", "64", "--steps", "3", "--seed", "4")
    assert cli("txt2img", long_a, *common, "-o", tmp_path / "a.png").code == 0
    assert cli("txt2img", long_b, *common, "-o", tmp_path / "b.png").code == 0
    assert not np.array_equal(pixels(tmp_path / "a.png"), pixels(tmp_path / "b.png"))  # past token 150
    assert cli("txt2img", "sky BREAK sea", *common, "-o", tmp_path / "c.png").code == 0
    assert cli("txt2img", "sky sea", *common, "-o", tmp_path / "d.png").code == 0
    assert not np.array_equal(pixels(tmp_path / "c.png"), pixels(tmp_path / "d.png"))


def test_weights_change_the_image_and_are_kept_in_the_metadata(cli, tmp_path, tiny_models):
    from genimg.output.metadata import read_metadata

    common = ("-m", tiny_models["sdxl"], "-W", "64", "-H", "64", "--steps", "3", "--seed", "4")
    assert cli("txt2img", "a red circle", *common, "-o", tmp_path / "a.png").code == 0
    assert cli("txt2img", "a (red:1.8) circle", *common, "-n", "[blue]", "-o", tmp_path / "b.png").code == 0
    assert not np.array_equal(pixels(tmp_path / "a.png"), pixels(tmp_path / "b.png"))
    meta = read_metadata(tmp_path / "b.png")
    assert meta["parameters"]["prompt"] == "a (red:1.8) circle" and meta["parameters"]["negative"] == "[blue]"


def test_flux_strips_weights_with_one_warning(cli, tmp_path, tiny_models):
    common = ("-m", tiny_models["flux"], "-W", "64", "-H", "64", "--steps", "2", "--seed", "4")
    weighted = cli("txt2img", "a (red:1.5) circle", *common, "-o", tmp_path / "a.png", "--json")
    assert weighted.code == 0 and weighted.err.count("has no prompt weights") == 1
    plain = cli("txt2img", "a red circle", *common, "-o", tmp_path / "b.png")
    assert plain.code == 0 and "weights" not in plain.err
    assert np.array_equal(pixels(tmp_path / "a.png"), pixels(tmp_path / "b.png"))
    assert json.loads(weighted.out)["settings"]["prompt"] == "a (red:1.5) circle"


def test_styles_wrap_the_prompt_and_extend_the_negative(cli, tmp_path, tiny_models, monkeypatch):
    from genimg.output.metadata import read_metadata

    config = tmp_path / "config"
    (config / "styles").mkdir(parents=True)
    monkeypatch.setenv("GENIMG_CONFIG_DIR", str(config))
    # An A1111 styles.csv as it is: a style without {prompt} is appended after a comma.
    (config / "styles" / "styles.csv").write_text('name,prompt,negative_prompt\nmoody,"dark, moody","bright, sunny"\n')
    common = ("-m", tiny_models["sd"], "-W", "64", "-H", "64", "--steps", "3", "--seed", "4")
    result = cli("txt2img", "a lake", *common, "--style", "cinematic,moody", "-n", "people", "-o", tmp_path / "s.png",
                 "--json")
    assert result.code == 0, result
    params = read_metadata(tmp_path / "s.png")["parameters"]
    assert params["prompt"] == ("cinematic still of a lake, shallow depth of field, film grain, dramatic lighting, "
                                "dark, moody")
    assert params["negative"] == "people, cartoon, illustration, drawing, anime, bright, sunny"
    assert json.loads(result.out)["settings"]["styles"] == ["cinematic", "moody"]
    assert cli("txt2img", "a lake", *common, "-o", tmp_path / "plain.png").code == 0
    assert not np.array_equal(pixels(tmp_path / "s.png"), pixels(tmp_path / "plain.png"))
    again = cli("txt2img", "--from", tmp_path / "s.png", "-o", tmp_path / "again.png", "--json")
    assert again.code == 0 and np.array_equal(pixels(tmp_path / "s.png"), pixels(tmp_path / "again.png"))
    # The A1111 text alone (no genimg record) remakes it too: it holds the styled prompt.
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("parameters", read_metadata(tmp_path / "s.png")["parameters_text"])
    Image.open(tmp_path / "s.png").save(tmp_path / "a1111.png", pnginfo=info)
    assert cli("txt2img", "--from", tmp_path / "a1111.png", "-m", tiny_models["sd"], "-o", tmp_path / "b.png").code == 0
    assert np.array_equal(pixels(tmp_path / "s.png"), pixels(tmp_path / "b.png"))
    listed = json.loads(cli("styles", "--json").out)
    assert listed["moody"]["file"].endswith("styles.csv") and "cinematic" in listed
    bad = cli("txt2img", "a lake", *common, "--style", "cinematc", "-o", tmp_path / "x.png")
    assert bad.code == 2 and "did you mean 'cinematic'" in bad.err and not (tmp_path / "x.png").exists()


def test_the_default_negative_template_is_the_familys(tmp_path, tiny_models):
    from genimg.generation import plan
    from genimg.spec import GenerationSpec

    planned = plan(GenerationSpec("x", model=str(tiny_models["sdxl"]), negative_template="default", width=64, height=64))
    assert planned.images[0].negative_text.startswith("blurry, low quality") and planned.images[0].text == "x"


def test_flux_says_what_max_sequence_length_cuts(cli, tmp_path, tiny_models):
    common = ("-m", tiny_models["flux"], "-W", "64", "-H", "64", "--steps", "2", "--seed", "4")
    result = cli("txt2img", "a red circle and then the end", *common, "--max-sequence-length", "16",
                 "-o", tmp_path / "a.png")
    assert result.code == 0, result
    assert "past --max-sequence-length 16 this is cut" in result.err and "the end" in result.err
    short = cli("txt2img", "a dot", *common, "--max-sequence-length", "16", "-o", tmp_path / "b.png")
    assert short.code == 0 and "cut" not in short.err
