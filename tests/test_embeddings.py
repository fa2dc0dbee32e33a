"""Textual inversion: --embedding FILE, the word is the file name (A1111's embeddings)."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from genimg.testing.images import pixels
from genimg.output.metadata import read_metadata

SMALL = ("-W", "64", "-H", "64", "--steps", "2", "--seed", "1")


def _width(model, encoder="text_encoder") -> int:
    return json.loads((model / encoder / "config.json").read_text())["hidden_size"]


@pytest.fixture
def embeddings(tmp_path, tiny_models):
    torch.manual_seed(0)
    sd, sdxl = tiny_models["sd"], tiny_models["sdxl"]
    files = {
        "sd": tmp_path / "my-style.safetensors",
        "sdxl": tmp_path / "xl-style.safetensors",
        "narrow": tmp_path / "narrow.safetensors",
    }
    save_file({"emb_params": torch.randn(2, _width(sd)) * 3}, str(files["sd"]))
    save_file({"clip_l": torch.randn(2, _width(sdxl)) * 3, "clip_g": torch.randn(2, _width(sdxl, "text_encoder_2")) * 3},
              str(files["sdxl"]))
    save_file({"emb_params": torch.randn(2, _width(sd) + 8)}, str(files["narrow"]))
    return files


@pytest.mark.parametrize("family,word", [("sd", "my-style"), ("sdxl", "xl-style")])
def test_an_embedding_changes_the_image_and_round_trips(cli, tmp_path, tiny_models, embeddings, family, word):
    common = ("txt2img", f"a red circle, {word}", "-m", tiny_models[family], *SMALL)
    assert cli(*common, "--embedding", embeddings[family], "-o", tmp_path / "with.png").code == 0
    assert cli(*common, "-o", tmp_path / "without.png").code == 0
    assert np.abs(pixels(tmp_path / "with.png") - pixels(tmp_path / "without.png")).mean() > 0.5
    meta = read_metadata(tmp_path / "with.png")
    digest = __import__("hashlib").sha256(embeddings[family].read_bytes()).hexdigest()[:12]
    assert meta["parameters"]["TI hashes"] == f"{word}: {digest}"
    assert meta["genimg"]["spec"]["embeddings"] == [str(embeddings[family])]
    again = cli("txt2img", "--from", tmp_path / "with.png", "-o", tmp_path / "again.png")
    assert again.code == 0, again
    assert np.array_equal(pixels(tmp_path / "again.png"), pixels(tmp_path / "with.png"))


@pytest.mark.parametrize("family,key,words", [
    ("sdxl", "sd", ("no clip_l/clip_g vectors", "not Stable Diffusion XL")),
    ("sd", "sdxl", ("was made for SDXL",)),
    ("sd", "narrow", ("40-wide vectors", "takes 32")),
    ("flux", "sd", ("FLUX.1's text encoders take none",)),
])
def test_an_embedding_for_another_model_is_one_line(cli, tmp_path, tiny_models, embeddings, family, key, words):
    result = cli("txt2img", "x", "-m", tiny_models[family], *SMALL, "--embedding", embeddings[key], "-o", tmp_path / "o.png")
    assert result.code == 2 and result.err.count("\n") == 1, result
    assert all(w in result.err for w in words), result.err


def test_batch_rows_take_embeddings_relative_to_the_file(cli, tmp_path, tiny_models, embeddings):
    (tmp_path / "jobs.csv").write_text("prompt,embedding\na red circle my-style,my-style.safetensors\n")
    result = cli("batch", tmp_path / "jobs.csv", "-m", tiny_models["sd"], *SMALL, "-o", tmp_path / "out")
    assert result.code == 0, result
    [png] = (tmp_path / "out").glob("*.png")
    assert read_metadata(png)["parameters"]["TI hashes"].startswith("my-style: ")


def test_a_diffusers_embedding_brings_its_token_and_a_token_can_be_named(cli, tmp_path, tiny_models):
    """diffusers' textual_inversion script saves {"<token>": vector}; PATH:TOKEN renames any embedding."""
    width = _width(tiny_models["sd"])
    save_file({"<cat-toy>": torch.randn(width) * 3}, str(tmp_path / "learned_embeds.safetensors"))
    common = ("txt2img", "-m", tiny_models["sd"], *SMALL)
    assert cli(*common, "a <cat-toy> circle", "--embedding", tmp_path / "learned_embeds.safetensors",
               "-o", tmp_path / "a.png").code == 0
    assert read_metadata(tmp_path / "a.png")["parameters"]["TI hashes"].startswith("<cat-toy>: ")
    assert cli(*common, "a toy circle", "--embedding", f"{tmp_path / 'learned_embeds.safetensors'}:toy",
               "-o", tmp_path / "b.png").code == 0
    assert read_metadata(tmp_path / "b.png")["parameters"]["TI hashes"].startswith("toy: ")
    # A word the tokenizer already has as one token cannot be taught again: one line, nothing written
    # (the tiny tokenizer spells words by letters, so its one-token words are single letters).
    result = cli(*common, "a red circle", "--embedding", f"{tmp_path / 'learned_embeds.safetensors'}:x",
                 "-o", tmp_path / "c.png")
    assert result.code == 2 and "'x' is already a word" in result.err and result.err.count("\n") == 1, result
    assert not (tmp_path / "c.png").exists()


def test_a_warm_sdxl_model_takes_an_embedding_off_and_on_again(tmp_path, tiny_models, embeddings):
    """A server or a Python program keeps the model: with, without, with again — the embedding leaves both
    of SDXL's tokenizers and text encoders, and comes back to make the first image again."""
    from genimg.api import Executor
    from genimg.factory import PipelineFactory
    from genimg.spec import GenerationSpec

    run = Executor(None, PipelineFactory())
    spec = GenerationSpec("a red circle, xl-style", model=str(tiny_models["sdxl"]), width=64, height=64, steps=2,
                          seed=1, preset="cpu")
    made = [list(run.generate(s, tmp_path / f"{n}.png"))[0].path
            for n, s in enumerate([spec.replace(embeddings=(str(embeddings["sdxl"]),)), spec,
                                   spec.replace(embeddings=(str(embeddings["sdxl"]),))])]
    assert np.array_equal(pixels(made[2]), pixels(made[0])) and not np.array_equal(pixels(made[1]), pixels(made[0]))
    pipe = run.factory.current.base
    assert len(pipe.tokenizer_2) == len(pipe.tokenizer)  # one set of added tokens in each, not two


def test_a_warm_model_teaches_a_file_again_under_another_word(tmp_path, tiny_models):
    """The same file as another token is another embedding: checked and loaded again, not taken as loaded."""
    from genimg.api import Executor
    from genimg.errors import UsageError
    from genimg.factory import PipelineFactory
    from genimg.spec import GenerationSpec

    width = _width(tiny_models["sd"])
    save_file({"<cat-toy>": torch.randn(width) * 3}, str(tmp_path / "learned.safetensors"))
    run = Executor(None, PipelineFactory())
    spec = GenerationSpec("a toy circle", model=str(tiny_models["sd"]), width=64, height=64, steps=2, seed=1,
                          preset="cpu", embeddings=(f"{tmp_path / 'learned.safetensors'}:toy",))
    list(run.generate(spec, tmp_path / "a.png"))
    with pytest.raises(UsageError, match="'x' is already a word"):
        list(run.generate(spec.replace(embeddings=(f"{tmp_path / 'learned.safetensors'}:x",)), tmp_path / "b.png"))
