"""The course's latent diffusion: its cross-attention against diffusers' Attention, the prompt's padding
ignored, the codes' scale, and `genimg learn ldm` / `learn sample --prompt` end to end."""

import json

import pytest
import torch

from genimg.learn.ldm import CrossAttention, TextUNet, Tokenizer, latent_scale, prompt_for


def test_cross_attention_equals_diffusers_attention_with_the_same_weights():
    from diffusers.models.attention_processor import Attention

    torch.manual_seed(0)
    ours = CrossAttention(16, 12, heads=4)
    theirs = Attention(query_dim=16, cross_attention_dim=12, heads=4, dim_head=4, bias=False, out_bias=True)
    with torch.no_grad():
        for mine, their in ((ours.q, theirs.to_q), (ours.k, theirs.to_k), (ours.v, theirs.to_v), (ours.out, theirs.to_out[0])):
            their.weight.copy_(mine.weight)
            if mine.bias is not None:
                their.bias.copy_(mine.bias)
    x, context = torch.randn(2, 16, 3, 3), torch.randn(2, 5, 12)
    padding = torch.tensor([[False, False, False, True, True], [False, False, False, False, False]])
    features = ours.norm(x).flatten(2).transpose(1, 2)
    bias = torch.zeros(2, 1, 5).masked_fill(padding[:, None], -10000.0)  # diffusers' additive mask
    expected = x + theirs(features, context, attention_mask=bias).transpose(1, 2).reshape(2, 16, 3, 3)
    assert torch.allclose(ours(x, context, padding), expected, atol=1e-5)


def test_each_position_spreads_its_attention_over_the_prompts_words_only():
    torch.manual_seed(0)
    layer = CrossAttention(16, 12)
    layer.keep_map = True
    padding = torch.tensor([[False, False, True, True]])
    layer(torch.randn(1, 16, 4, 4), torch.randn(1, 4, 12), padding)
    maps = layer.last_map  # (N, tokens, H, W)
    assert maps.shape == (1, 4, 4, 4)
    assert torch.allclose(maps.sum(1), torch.ones(1, 4, 4)) and torch.all(maps[:, 2:] == 0)


def test_more_padding_does_not_change_what_the_unet_predicts():
    words = Tokenizer.for_classes([str(d) for d in range(10)])
    torch.manual_seed(0)
    unet = TextUNet(4, len(words.vocabulary), 8, base=32).eval()
    short, long = Tokenizer(words.vocabulary[2:], 4), Tokenizer(words.vocabulary[2:], 8)
    z, t = torch.randn(2, 4, 4, 4), torch.tensor([10, 500])
    prompts = ["a seven", "the digit two"]
    assert torch.allclose(unet(z, t, short(prompts)), unet(z, t, long(prompts)), atol=1e-5)
    assert not torch.allclose(unet(z, t, short(["a seven", "a seven"])), unet(z, t, short(prompts)), atol=1e-3)


def test_the_tokenizer_starts_pads_and_refuses_words_it_does_not_know():
    tokenizer = Tokenizer.for_classes(["0", "7"])
    ids = tokenizer([prompt_for("7"), ""])
    vocab = tokenizer.vocabulary
    assert [vocab[i] for i in ids[0]] == ["<s>", "a", "seven", "<pad>", "<pad>", "<pad>"]
    assert [vocab[i] for i in ids[1]] == ["<s>"] + ["<pad>"] * 5  # the empty prompt: guidance's "no condition"
    assert prompt_for("circle", "the number {word}") == "the number circle"
    with pytest.raises(ValueError, match="'dog' is not in the model's vocabulary"):
        tokenizer(["a dog"])


def test_the_scale_makes_the_codes_unit_variance():
    codes = torch.randn(500, 4, 4, 4) * 5.3 + 0.2
    scaled = codes * latent_scale(codes)
    assert abs(float(scaled.std()) - 1) < 1e-5 and abs(latent_scale(codes) - 1 / 5.3) < 0.01


@pytest.mark.slow  # the chapter's whole CLI run and its measurements; its pieces are checked against the libraries above
def test_learn_ldm_trains_both_stages_draws_attention_samples_prompts_and_resumes_exactly(cli, tmp_path):
    args = ("learn", "ldm", "--epochs", "2", "--vae-epochs", "2", "--size", "8", "--quiet")
    made = cli(*args, "--json", "-o", tmp_path / "straight")
    assert made.code == 0, made
    measured = json.loads(made.out)
    assert 0 <= measured["samples read as the digit asked for"] <= 1 and measured["fid"] > 0
    run = tmp_path / "straight"
    for name in ("attention.png", "loss.png", "samples/epoch_002.png", "vae/checkpoint.safetensors",
                 "vae/reconstructions.png"):
        assert (run / name).is_file(), name
    from PIL import Image

    assert Image.open(run / "attention.png").size == ((10 * 10 + 2) * 2, (2 * 10 + 2) * 2)  # ten digits, two rows

    # stopped after epoch 1 and resumed, the run ends as the uninterrupted one (the autoencoder trained once)
    from genimg.learn.train_ldm import LDMConfig, train_ldm

    config = LDMConfig(epochs=2, vae_epochs=2, size=8)
    train_ldm(tmp_path / "parts", config, stop_after_epoch=1)
    assert json.loads((tmp_path / "parts" / "loss.csv").read_text().splitlines()[-1].split(",")[0]) == 1
    train_ldm(tmp_path / "parts", config, resume=True)
    from safetensors.torch import load_file

    one, two = (load_file(str(tmp_path / r / "checkpoint.safetensors")) for r in ("straight", "parts"))
    assert one.keys() == two.keys() and all(torch.equal(one[k], two[k]) for k in one)

    sampled = cli("learn", "sample", run, "--prompt", "the digit seven", "-n", "4", "--steps", "5", "-o",
                  tmp_path / "seven.png")
    assert sampled.code == 0, sampled
    assert Image.open(tmp_path / "seven.png").mode in ("L", "RGB") and (tmp_path / "seven.gif").is_file()
    again = cli("learn", "sample", run, "--prompt", "the digit seven", "-n", "4", "--steps", "5", "-o",
                tmp_path / "seven2.png")
    assert again.code == 0
    import numpy as np

    assert np.array_equal(np.asarray(Image.open(tmp_path / "seven.png")), np.asarray(Image.open(tmp_path / "seven2.png")))
    unknown = cli("learn", "sample", run, "--prompt", "a dog", "-o", tmp_path / "dog.png")
    assert unknown.code == 2 and "'dog' is not in the model's vocabulary" in unknown.err
    assert len(unknown.err.strip().splitlines()) == 1 and not (tmp_path / "dog.png").exists()
    assert cli("learn", "fid", run, "-n", "20", "--steps", "5").code == 0


def test_ldm_refuses_a_vae_without_a_spatial_code(cli, tmp_path):
    assert cli("learn", "vae", "--epochs", "1", "--size", "8", "--width", "8", "--quiet", "-o", tmp_path / "flat").code == 0
    refused = cli("learn", "ldm", "--vae", tmp_path / "flat", "--size", "8", "--epochs", "1", "--quiet",
                  "-o", tmp_path / "ldm")
    assert refused.code == 2 and "spatial code" in refused.err, refused
