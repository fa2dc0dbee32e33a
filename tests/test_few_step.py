"""Few-step aliases (SD-Turbo, LCM-LoRA, SDXL-Lightning, Hyper-SD): their defaults and LoRAs take effect.

The built-in aliases run for real: the tiny SD model and a random LoRA are installed in the offline
Hugging Face cache under the repositories the aliases name.
"""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from genimg.models import resolve_model
from genimg.output.metadata import read_metadata

SMALL = ("-W", "64", "-H", "64")


@pytest.fixture(scope="module")
def few_step_hub(tiny_models, tmp_path_factory):
    """Removed again afterwards: other tests check what happens when sd15 is not downloaded."""
    import shutil

    from genimg.testing.loras import save_random_lora
    from genimg.testing.tiny_models import install_in_hf_cache

    cache = Path(os.environ["HF_HUB_CACHE"])
    lora = save_random_lora(tiny_models["sd"], tmp_path_factory.mktemp("lcm") / "lcm-lora", seed=4)
    installed = {"stabilityai/sd-turbo": tiny_models["sd"], "stable-diffusion-v1-5/stable-diffusion-v1-5": tiny_models["sd"],
                 "latent-consistency/lcm-lora-sdv1-5": lora}
    snapshots = [install_in_hf_cache(folder, repo, cache) for repo, folder in installed.items()]
    yield lora / "pytorch_lora_weights.safetensors"
    for snapshot in snapshots:
        shutil.rmtree(snapshot.parent.parent)


@pytest.mark.parametrize("alias,steps,guidance,scheduler,loras", [
    ("sd-turbo", 1, 0.0, "Euler a", ()),
    ("sdxl-turbo", 1, 0.0, "Euler a", ()),
    ("lcm-sd15", 4, 1.0, "LCM", ("latent-consistency/lcm-lora-sdv1-5/pytorch_lora_weights.safetensors",)),
    ("lcm-sdxl", 4, 1.0, "LCM", ("latent-consistency/lcm-lora-sdxl/pytorch_lora_weights.safetensors",)),
    ("sdxl-lightning", 4, 0.0, "Euler trailing", ("ByteDance/SDXL-Lightning/sdxl_lightning_4step_lora.safetensors",)),
    ("hyper-sd15", 8, 0.0, "DDIM trailing", ("ByteDance/Hyper-SD/Hyper-SD15-8steps-lora.safetensors",)),
])
def test_few_step_aliases_carry_the_model_cards_settings(alias, steps, guidance, scheduler, loras):
    ref = resolve_model(alias)
    d = ref.defaults
    assert (d["steps"], d["guidance"], d["scheduler"], ref.loras) == (steps, guidance, scheduler, loras)
    base = resolve_model("sdxl" if "sdxl" in alias else "sd15")
    assert ref.family == base.family and (ref.kind == "hub")
    if loras:  # the LoRA aliases run on their base model's weights
        assert ref.location == base.location


def test_sd_turbo_makes_a_one_step_image_without_guidance(cli, tmp_path, few_step_hub):
    result = cli("txt2img", "a red circle", "-m", "sd-turbo", *SMALL, "--seed", "1", "-o", tmp_path / "t.png", "--json")
    assert result.code == 0, result
    record = json.loads(result.out)
    assert record["steps_run"] == 1
    params = read_metadata(tmp_path / "t.png")["parameters"]
    assert (params["Steps"], params["CFG scale"], params["Sampler"], params["Model"]) == ("1", "0", "Euler a", "sd-turbo")


def test_an_alias_lora_is_applied_as_the_same_lora_given_by_hand(cli, tmp_path, tiny_models, few_step_hub):
    """lcm-sd15 = SD1.5 + LCM-LoRA + LCM sampler, 4 steps, guidance 1: the same pixels as writing it out."""
    common = ("a blue square", *SMALL, "--seed", "3")
    assert cli("txt2img", *common, "-m", "lcm-sd15", "-o", tmp_path / "alias.png").code == 0
    by_hand = ("-m", "stable-diffusion-v1-5/stable-diffusion-v1-5", "--scheduler", "LCM", "--steps", "4", "--cfg", "1")
    assert cli("txt2img", *common, *by_hand, "--lora", few_step_hub, "-o", tmp_path / "hand.png").code == 0
    assert cli("txt2img", *common, *by_hand, "-o", tmp_path / "plain.png").code == 0
    alias, hand, plain = (np.asarray(Image.open(tmp_path / f"{n}.png"), dtype=np.int16) for n in ("alias", "hand", "plain"))
    assert np.array_equal(alias, hand)
    assert np.abs(alias - plain).mean() > 1  # the LoRA changed the image
    params = read_metadata(tmp_path / "alias.png")["parameters"]
    assert (params["Steps"], params["CFG scale"], params["Sampler"]) == ("4", "1", "LCM")


def test_an_alias_lora_missing_offline_names_the_download(cli, tmp_path):
    result = cli("txt2img", "x", "-m", "lcm-sdxl", "-o", tmp_path / "x.png")
    assert result.code == 2, result
    assert result.err.count("\n") == 1
    assert "hf download latent-consistency/lcm-lora-sdxl pytorch_lora_weights.safetensors" in result.err
    assert not (tmp_path / "x.png").exists()


def test_user_aliases_can_build_on_another_model(tmp_path, tiny_models, monkeypatch):
    from genimg.errors import UsageError

    monkeypatch.setenv("GENIMG_CONFIG_DIR", str(tmp_path))
    (tmp_path / "aliases.toml").write_text(
        f'[fast]\nbase = "{tiny_models["sd"]}"\nsteps = 3\nloras = ["org/repo/a.safetensors:0.5"]\n'
        '[faster]\nbase = "fast"\nsteps = 2\n'
        '[loop]\nbase = "loop"\n'
        '[wrong]\nbase = "fast"\nfamily = "flux"\n')
    faster = resolve_model("faster")
    assert (faster.family, faster.defaults["steps"], faster.loras, faster.location) == \
        ("sd", 2, ("org/repo/a.safetensors:0.5",), str(tiny_models["sd"].resolve()))
    with pytest.raises(UsageError, match="its own base"):
        resolve_model("loop")
    with pytest.raises(UsageError, match="family = 'flux' but its base"):
        resolve_model("wrong")
