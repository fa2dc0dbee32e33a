"""--vae: another VAE (a diffusers folder, a single file, a tiny autoencoder) changes the decode, keeps
the seed's picture otherwise, is recorded, and one for other latents is refused."""

import json

import numpy as np
import pytest

from genimg.testing.images import pixels
from genimg.output.metadata import read_metadata

FAST = ("-W", "64", "-H", "64", "--steps", "3", "--seed", "5")


@pytest.fixture(scope="session")
def vaes(tiny_models, tmp_path_factory):
    """For the tiny SD model: its VAE's architecture with other weights (a folder and an original-layout
    single file), and a tiny AutoencoderTiny of the same downscale."""
    import torch
    from diffusers import AutoencoderKL, AutoencoderTiny
    from safetensors.torch import save_file

    from genimg.testing.single_file import vae_to_ldm

    root = tmp_path_factory.mktemp("vaes")
    config = json.loads((tiny_models["sd"] / "vae" / "config.json").read_text())
    torch.manual_seed(7)
    other = AutoencoderKL.from_config(config)
    other.save_pretrained(root / "other", safe_serialization=True)
    save_file({k: v.contiguous() for k, v in vae_to_ldm(other.state_dict(), config).items()},
              str(root / "other.safetensors"))
    levels = len(config["block_out_channels"])
    tiny = AutoencoderTiny(encoder_block_out_channels=(16,) * levels, decoder_block_out_channels=(16,) * levels,
                           num_encoder_blocks=(1,) * levels, num_decoder_blocks=(1,) * levels,
                           latent_channels=config["latent_channels"])
    tiny.save_pretrained(root / "tiny", safe_serialization=True)
    wide = AutoencoderTiny(encoder_block_out_channels=(16,) * levels, decoder_block_out_channels=(16,) * levels,
                           num_encoder_blocks=(1,) * levels, num_decoder_blocks=(1,) * levels, latent_channels=16)
    wide.save_pretrained(root / "wide", safe_serialization=True)
    made = {"other": root / "other", "file": root / "other.safetensors", "tiny": root / "tiny", "wide": root / "wide"}
    for family in ("sdxl", "flux"):
        own = json.loads((tiny_models[family] / "vae" / "config.json").read_text())
        levels = len(own["block_out_channels"])
        AutoencoderTiny(encoder_block_out_channels=(16,) * levels, decoder_block_out_channels=(16,) * levels,
                        num_encoder_blocks=(1,) * levels, num_decoder_blocks=(1,) * levels,
                        latent_channels=own["latent_channels"]).save_pretrained(root / f"tiny-{family}")
        made[f"tiny-{family}"] = root / f"tiny-{family}"
    return made


@pytest.mark.parametrize("family", ["sdxl", "flux"])
def test_a_tiny_autoencoder_decodes_sdxl_and_flux(cli, tmp_path, tiny_models, vaes, family):
    model = ("-m", tiny_models[family])
    assert cli("txt2img", "a ring", *model, *FAST, "-o", tmp_path / "own.png").code == 0
    result = cli("txt2img", "a ring", *model, *FAST, "--vae", vaes[f"tiny-{family}"], "-o", tmp_path / "tiny.png")
    assert result.code == 0, result
    tiny, own = (pixels(tmp_path / f"{n}.png").astype(int) for n in ("tiny", "own"))
    assert tiny.shape == own.shape == (64, 64, 3) and np.abs(tiny - own).mean() > 2


def test_another_vae_changes_the_decode_and_the_same_seed_repeats(cli, tmp_path, tiny_models, vaes):
    model = ("-m", tiny_models["sd"])
    assert cli("txt2img", "a ring", *model, *FAST, "-o", tmp_path / "own.png").code == 0
    for name in ("other", "file", "tiny"):
        result = cli("txt2img", "a ring", *model, *FAST, "--vae", vaes[name], "-o", tmp_path / f"{name}.png")
        assert result.code == 0, result
    own, other, file, tiny = (pixels(tmp_path / f"{n}.png").astype(int) for n in ("own", "other", "file", "tiny"))
    assert np.abs(other - own).mean() > 2 and np.abs(tiny - own).mean() > 2
    # The same weights as a folder and as an original-layout single file decode alike.
    assert np.abs(other - file).max() <= 1
    assert pixels(tmp_path / "tiny.png").shape == (64, 64, 3)
    # Metadata: A1111's "VAE" and genimg's record, which --from repeats.
    meta = read_metadata(tmp_path / "tiny.png")
    assert meta["parameters"]["VAE"] == "tiny" and meta["genimg"]["spec"]["vae"] == str(vaes["tiny"])
    assert cli("txt2img", "--from", tmp_path / "tiny.png", "-o", tmp_path / "again.png").code == 0
    assert np.array_equal(pixels(tmp_path / "again.png"), pixels(tmp_path / "tiny.png"))


def test_img2img_encodes_with_the_tiny_vae_too(cli, tmp_path, tiny_models, vaes):
    from PIL import Image

    Image.new("RGB", (64, 64), (200, 40, 40)).save(tmp_path / "red.png")
    common = ("img2img", tmp_path / "red.png", "a ring", "-m", tiny_models["sd"], "--steps", "4", "--seed", "2",
              "--strength", "0.5")
    assert cli(*common, "--vae", vaes["tiny"], "-o", tmp_path / "tiny.png").code == 0
    assert cli(*common, "-o", tmp_path / "own.png").code == 0
    assert np.abs(pixels(tmp_path / "tiny.png").astype(int) - pixels(tmp_path / "own.png").astype(int)).mean() > 2


def test_batch_rows_take_a_vae_beside_the_file(cli, tmp_path, tiny_models, vaes):
    import shutil

    shutil.copytree(vaes["tiny"], tmp_path / "my-vae")
    (tmp_path / "jobs.csv").write_text("prompt,vae,seed\na ring,my-vae,5\nits own,,5\n")
    result = cli("batch", tmp_path / "jobs.csv", "-m", tiny_models["sd"], *FAST, "-o", tmp_path / "out")
    assert result.code == 0, result
    specs = {s["prompt"]: s for s in (read_metadata(p)["genimg"]["spec"] for p in (tmp_path / "out").glob("*.png"))}
    assert specs["a ring"]["vae"] == str((tmp_path / "my-vae").resolve()) and not specs["its own"].get("vae")


@pytest.mark.parametrize("which,words", [
    ("wide", "reads 16-channel latents"),
    ("missing", "is not an alias"),
    ("pickle", "pickle file"),
    ("taesdxl", "VAE taesdxl is for sdxl models"),
    ("taesd", "hf download madebyollin/taesd"),  # offline and not in the cache
])
def test_bad_vaes_are_one_line(cli, tmp_path, tiny_models, vaes, which, words):
    value = {"wide": vaes.get("wide"), "missing": tmp_path / "nope", "taesdxl": "taesdxl", "taesd": "taesd",
             "pickle": tmp_path / "vae.pt"}[which]
    if which == "pickle":
        value.write_bytes(b"\x80\x04")
    result = cli("txt2img", "a ring", "-m", tiny_models["sd"], *FAST, "--vae", value, "-o", tmp_path / "x.png")
    assert result.code == 2 and words in result.err and len(result.err.strip().splitlines()) == 1, result
    assert not (tmp_path / "x.png").exists()
