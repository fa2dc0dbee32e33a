"""Model resolution: aliases, folders, single files and hub ids, and family detection without loading weights."""

import json
from pathlib import Path

import pytest

from genimg.errors import UsageError
from genimg.models import resolve_model
from genimg.models.families import family_from_checkpoint_keys, family_from_pipeline_class


@pytest.mark.parametrize("alias,family,repo", [
    ("sd15", "sd", "stable-diffusion-v1-5/stable-diffusion-v1-5"),
    ("sdxl", "sdxl", "stabilityai/stable-diffusion-xl-base-1.0"),
    ("sdxl-turbo", "sdxl", "stabilityai/sdxl-turbo"),
    ("flux-schnell", "flux", "black-forest-labs/FLUX.1-schnell"),
    ("flux-dev", "flux", "black-forest-labs/FLUX.1-dev"),
])
def test_aliases(alias, family, repo):
    ref = resolve_model(alias)
    assert (ref.kind, ref.family, ref.location) == ("hub", family, repo)


def test_folder_family_comes_from_model_index(tiny_models):
    for family, folder in tiny_models.items():
        ref = resolve_model(str(folder))
        assert (ref.kind, ref.family) == ("folder", family)


def test_hub_id_family_comes_from_the_cached_model_index(hub_models):
    for family, repo in hub_models.items():
        ref = resolve_model(repo)
        assert (ref.kind, ref.family, ref.location) == ("hub", family, repo)


def test_single_file_family_from_its_keys(sd_single_file):
    ref = resolve_model(str(sd_single_file))
    assert (ref.kind, ref.family) == ("single_file", "sd")


@pytest.mark.parametrize("keys,family", [
    (["model.diffusion_model.input_blocks.0.0.weight", "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight"], "sd"),
    (["model.diffusion_model.input_blocks.0.0.weight", "model.diffusion_model.label_emb.0.0.weight",
      "conditioner.embedders.1.model.ln_final.weight"], "sdxl"),
    (["double_blocks.0.img_attn.qkv.weight", "single_blocks.0.linear1.weight"], "flux"),
    (["model.diffusion_model.double_blocks.0.img_attn.qkv.weight"], "flux"),
    (["lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight"], None),
])
def test_checkpoint_key_detection(keys, family):
    assert family_from_checkpoint_keys(keys) == family


@pytest.mark.parametrize("name,family", [
    ("StableDiffusionPipeline", "sd"), ("StableDiffusionInpaintPipeline", "sd"), ("StableDiffusionXLPipeline", "sdxl"),
    ("StableDiffusionXLImg2ImgPipeline", "sdxl"), ("FluxPipeline", "flux"), ("FluxFillPipeline", "flux"),
    ("KandinskyPipeline", None),
])
def test_pipeline_class_detection(name, family):
    assert family_from_pipeline_class(name) == family


def test_unsupported_pipeline_folder(tmp_path):
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "KandinskyPipeline"}))
    with pytest.raises(UsageError, match="does not run"):
        resolve_model(str(tmp_path))


def test_lora_file_passed_as_model_is_explained(tmp_path):
    from safetensors.numpy import save_file
    import numpy as np

    path = tmp_path / "style.safetensors"
    save_file({"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": np.zeros((4, 4), np.float32)}, str(path))
    with pytest.raises(UsageError, match="--lora"):
        resolve_model(str(path))


def test_user_aliases_add_to_the_builtin_ones(tmp_path, monkeypatch, tiny_models):
    monkeypatch.setenv("GENIMG_CONFIG_DIR", str(tmp_path))
    (tmp_path / "aliases.toml").write_text(f'[mine]\npath = "{tiny_models["sdxl"]}"\nfamily = "sdxl"\nsteps = 9\n')
    ref = resolve_model("mine")
    assert (ref.kind, ref.family, ref.defaults["steps"], ref.defaults["cpu_route"]) == ("folder", "sdxl", 9, "openvino")
    assert resolve_model("sd15").family == "sd"
    (tmp_path / "aliases.toml").write_text(f'[mine]\npath = "{tiny_models["sdxl"]}"\nfamily = "sdxl"\ncpu_route = "gpu"\n')
    with pytest.raises(UsageError, match="cpu_route = 'gpu': use \"torch\""):
        resolve_model("mine")


def test_auto_converts_for_openvino_where_it_pays_and_fits():
    # measured in docs/benchmarks.md: SD1.5, SDXL and their 4- and 8-step aliases gain; one step does not
    routes = {name: resolve_model(name).defaults["cpu_route"]
              for name in ("sd15", "lcm-sd15", "hyper-sd15", "sd-turbo", "demo", "sdxl", "sdxl-turbo", "lcm-sdxl")}
    assert routes == {"sd15": "openvino", "lcm-sd15": "openvino", "hyper-sd15": "openvino", "sd-turbo": "torch",
                      "demo": "torch", "sdxl": "openvino", "sdxl-turbo": "torch", "lcm-sdxl": "openvino"}


def test_models_command_lists_aliases_and_the_cache(cli, hub_models):
    result = cli("models", "--json")
    assert result.code == 0
    listing = json.loads(result.out)
    assert "flux-schnell" in listing["aliases"] and "demo-canny" in listing["controlnets"]
    assert listing["ip_adapters"]["sd15"]["family"] == "sd" and listing["ip_adapters"]["sdxl"]["default"] is True
    assert (listing["vaes"]["taesdxl"]["repo"], listing["vaes"]["taesdxl"]["family"]) == ("madebyollin/taesdxl", "sdxl")
    assert "sd15-plus" in cli("models").out
    cached = {c["repo"]: c for c in listing["cache"]}
    for family, repo in hub_models.items():
        assert cached[repo]["family"] == family and cached[repo]["size_bytes"] > 0
        assert cached[repo]["dtype"] == "fp32" and cached[repo]["fp16_variant"] is False


def test_models_rm_frees_a_cached_model(cli, tiny_models, tmp_path, monkeypatch):
    """On a cache of its own: the session's shared cache keeps its models for the other tests."""
    from huggingface_hub import constants

    from genimg.testing.tiny_models import install_in_hf_cache

    cache = tmp_path / "hub"
    install_in_hf_cache(tiny_models["sd"], "someone/tiny-sd", cache)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    listed = json.loads(cli("models", "--json").out)["cache"]
    assert [c["repo"] for c in listed] == ["someone/tiny-sd"]
    monkeypatch.setattr("typer.confirm", lambda *a, **k: False)
    declined = cli("models", "rm", "someone/tiny-sd")
    assert declined.code == 130 and (cache / "models--someone--tiny-sd").exists()
    result = cli("models", "rm", "someone/tiny-sd", "--yes")
    assert result.code == 0 and "GB freed" in result.out, result
    assert not (cache / "models--someone--tiny-sd").exists()
    assert json.loads(cli("models", "--json").out)["cache"] == []
    missing = cli("models", "rm", "someone/tiny-sd", "--yes")
    assert missing.code == 2 and "not in the Hugging Face cache" in missing.err


def test_models_lists_checkpoints_and_loras_in_the_users_folders(cli, tmp_path, tiny_models, sd_single_file, monkeypatch):
    import shutil

    from genimg.testing.loras import save_random_lora

    monkeypatch.setenv("GENIMG_CHECKPOINT_DIR", str(tmp_path / "ckpt"))
    monkeypatch.setenv("GENIMG_LORA_DIRS", str(tmp_path / "loras"))
    (tmp_path / "ckpt").mkdir()
    shutil.copy(sd_single_file, tmp_path / "ckpt" / "mine.safetensors")
    save_random_lora(tiny_models["sdxl"], tmp_path / "lora-folder")
    (tmp_path / "loras").mkdir()
    from safetensors.torch import load_file, save_file

    # As kohya's trainer marks what a LoRA was made for (a tiny LoRA's widths say nothing).
    save_file(load_file(str(tmp_path / "lora-folder" / "pytorch_lora_weights.safetensors")),
              str(tmp_path / "loras" / "style.safetensors"), metadata={"ss_base_model_version": "sdxl_base_v1-0"})
    listing = json.loads(cli("models", "--json").out)["files"]
    found = {Path(f["path"]).name: (f["kind"], f["family"]) for f in listing}
    assert found == {"mine.safetensors": ("checkpoint", "sd"), "style.safetensors": ("lora", "sdxl")}
