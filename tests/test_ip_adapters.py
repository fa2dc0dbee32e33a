"""--ip-adapter: an image as a prompt on SD1.5 and SDXL. The adapters have the real layout (h94's
image_proj + ip_adapter weights, a CLIP image encoder beside them) and random weights."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from genimg.testing.images import pixels
from genimg.output.metadata import read_metadata

FAST = ("-W", "64", "-H", "64", "--steps", "3", "--seed", "5")


@pytest.fixture(scope="session")
def ip_adapters(tiny_models, tmp_path_factory):
    """Family -> an adapter file with image_encoder/ beside it; the SD1.5 one also installed in the
    offline Hugging Face cache where `hf download h94/IP-Adapter` puts the default adapter."""
    from genimg.testing.ip_adapters import save_random_ip_adapter
    from genimg.testing.tiny_models import install_in_hf_cache

    root = tmp_path_factory.mktemp("ip-adapters")
    made = {family: save_random_ip_adapter(tiny_models[family], root / family) for family in ("sd", "sdxl", "flux")}
    hub = root / "h94" / "models"
    hub.mkdir(parents=True)
    shutil.copy(made["sd"], hub / "ip-adapter_sd15.safetensors")
    shutil.copytree(made["sd"].parent / "image_encoder", hub / "image_encoder")
    install_in_hf_cache(root / "h94", "h94/IP-Adapter", Path(os.environ["HF_HUB_CACHE"]))
    return made


@pytest.fixture
def styles(tmp_path):
    paths = []
    for seed in (0, 1):
        path = tmp_path / f"style{seed}.png"
        Image.fromarray((np.random.default_rng(seed).random((48, 48, 3)) * 255).astype("uint8")).save(path)
        paths.append(path)
    return paths


@pytest.mark.parametrize("family", ["sd", "sdxl", "flux"])
def test_an_image_prompt_steers_and_scale_zero_is_no_adapter(cli, tmp_path, tiny_models, ip_adapters, styles, family):
    common = ("txt2img", "x", "-m", tiny_models[family], *FAST)
    adapter = f",model={ip_adapters[family]}"

    def make(name, *args):
        result = cli(*common, *args, "-o", tmp_path / name)
        assert result.code == 0, result
        return pixels(tmp_path / name).astype(int)

    plain = make("plain.png")
    zero = make("zero.png", "--ip-adapter", f"{styles[0]},scale=0{adapter}")
    one = make("one.png", "--ip-adapter", f"{styles[0]}{adapter}")
    other = make("other.png", "--ip-adapter", f"{styles[1]}{adapter}")
    assert np.array_equal(zero, plain)
    assert np.abs(one - plain).mean() > 1 and np.abs(one - other).mean() > 1


def test_the_default_adapter_comes_from_the_hugging_face_cache(cli, tmp_path, tiny_models, ip_adapters, styles):
    common = ("txt2img", "x", "-m", tiny_models["sd"], *FAST)
    assert cli(*common, "--ip-adapter", f"{styles[0]},scale=0.7", "-o", tmp_path / "named.png").code == 0
    assert cli(*common, "--ip-adapter", f"{styles[0]},scale=0.7,model={ip_adapters['sd']}",
               "-o", tmp_path / "file.png").code == 0
    assert np.array_equal(pixels(tmp_path / "named.png"), pixels(tmp_path / "file.png"))
    parameters = read_metadata(tmp_path / "named.png")["parameters"]
    assert parameters["IP-Adapter 0"].startswith("Model: sd15, Weight: 0.7, Image hash: ")


def test_metadata_brings_the_image_prompt_back_with_from(cli, tmp_path, tiny_models, ip_adapters, styles):
    result = cli("txt2img", "x", "-m", tiny_models["sd"], *FAST, "--json",
                 "--ip-adapter", f"{styles[0]},scale=0.5,model={ip_adapters['sd']}", "-o", tmp_path / "a.png")
    assert result.code == 0, result
    assert json.loads(result.out)["settings"]["ip_adapters"] == [
        {"image": str(styles[0]), "scale": 0.5, "model": str(ip_adapters["sd"])}]
    assert cli("txt2img", "--from", tmp_path / "a.png", "-o", tmp_path / "b.png").code == 0
    assert np.array_equal(pixels(tmp_path / "a.png"), pixels(tmp_path / "b.png"))
    assert read_metadata(tmp_path / "a.png")["genimg"]["ip_adapters"][0]["weights"] == str(ip_adapters["sd"])


def test_img2img_takes_an_image_prompt_too(cli, tmp_path, tiny_models, ip_adapters, styles):
    common = ("img2img", styles[1], "x", "-m", tiny_models["sd"], *FAST, "--strength", "0.8")
    assert cli(*common, "-o", tmp_path / "a.png").code == 0
    assert cli(*common, "--ip-adapter", f"{styles[0]},model={ip_adapters['sd']}", "-o", tmp_path / "b.png").code == 0
    assert np.abs(pixels(tmp_path / "a.png") - pixels(tmp_path / "b.png")).mean() > 1


def test_one_loaded_model_takes_and_drops_adapters_between_jobs(tiny_models, ip_adapters, styles):
    from genimg.factory import PipelineFactory
    from genimg.generation import generate
    from genimg.spec import GenerationSpec

    factory = PipelineFactory()
    spec = GenerationSpec("x", model=str(tiny_models["sd"]), width=64, height=64, steps=3, seed=4)
    adapted = spec.replace(ip_adapters=[f"{styles[0]},model={ip_adapters['sd']}"])
    plain, with_image, again, hires = (np.asarray(generate(s, factory)[0].image)
                                       for s in (spec, adapted, spec, adapted.replace(hires=1.5)))
    assert not np.array_equal(plain, with_image) and np.array_equal(plain, again)
    assert hires.shape == (96, 96, 3)  # the hires pass (img2img) sees the image prompt too
    assert factory.loads == 1


def test_under_model_offload_the_image_encoder_is_offloaded_too_and_the_picture_is_the_same(tiny_models, ip_adapters,
                                                                                             styles):
    """Model CPU offload, run on a CPU target (generation refuses offload on a CPU, so the plan's preset
    is changed by hand): diffusers puts the encoder genimg hands it under accelerate's hooks with the
    other models, and the image prompt acts exactly as without offload."""
    import dataclasses

    from genimg.factory import PipelineFactory
    from genimg.generation import plan, run
    from genimg.spec import GenerationSpec

    spec = GenerationSpec("x", model=str(tiny_models["sd"]), width=64, height=64, steps=3, seed=4, preset="cpu",
                          ip_adapters=[f"{styles[0]},model={ip_adapters['sd']}"])
    images = {}
    for offload in ("none", "model"):
        planned = plan(spec)
        planned = dataclasses.replace(planned, preset=planned.preset.with_overrides(offload=offload))
        factory = PipelineFactory()
        images[offload] = np.asarray(next(run(planned, factory)).image)
        pipe, _ = factory.get(planned.ref, planned.preset)
        assert hasattr(pipe.image_encoder, "_hf_hook") == (offload == "model")
    plain = np.asarray(next(run(plan(spec.replace(ip_adapters=[])), PipelineFactory())).image)
    assert np.array_equal(images["none"], images["model"]) and not np.array_equal(images["none"], plain)


@pytest.mark.parametrize("value,words", [
    ("missing.png", "IP-Adapter image missing.png does not exist"),
    ("{style},scale=3,model={sd}", "scale must be between 0 and 2"),
    ("{style},strength=1", "unknown key 'strength'"),
    ("{style},model=sd15-plsu", "did you mean 'sd15-plus'"),
    ("{style},model=sdxl", "IP-Adapter sdxl is for SDXL models"),
    ("{style},model={sdxl}", "IP-Adapter ip-adapter was made for a model 64 wide, not for sd"),  # tiny widths
    ("{style},model={pickle}", "pickle file"),
    ("{style},model={lonely}", "needs the CLIP image encoder"),
    ("{style},model=sd15-plus", "hf download h94/IP-Adapter models/ip-adapter-plus_sd15.safetensors"),
])
def test_bad_image_prompts_are_one_line(cli, tmp_path, tiny_models, ip_adapters, styles, value, words):
    (tmp_path / "ip.bin").write_bytes(b"pickle")
    (tmp_path / "lonely").mkdir()
    shutil.copy(ip_adapters["sd"], tmp_path / "lonely" / "ip.safetensors")
    value = value.format(style=styles[0], sd=ip_adapters["sd"], sdxl=ip_adapters["sdxl"], pickle=tmp_path / "ip.bin",
                         lonely=tmp_path / "lonely" / "ip.safetensors")
    result = cli("txt2img", "x", "-m", tiny_models["sd"], *FAST, "--ip-adapter", value, "-o", tmp_path / "out.png")
    assert result.code == 2 and result.err.count("\n") == 1, result
    assert words in result.err
    assert not (tmp_path / "out.png").exists()


def test_an_adapter_of_the_other_layout_is_refused_in_one_line(cli, tmp_path, tiny_models, ip_adapters, styles):
    flux_on_sd = cli("txt2img", "x", "-m", tiny_models["sd"], *FAST, "--ip-adapter", f"{styles[0]},model={ip_adapters['flux']}",
                     "-o", tmp_path / "a.png")
    assert flux_on_sd.code == 2 and "is made for FLUX (XLabs' layout), not for sd" in flux_on_sd.err, flux_on_sd
    sd_on_flux = cli("txt2img", "x", "-m", tiny_models["flux"], *FAST, "--ip-adapter", f"{styles[0]},model={ip_adapters['sd']}",
                     "-o", tmp_path / "b.png")
    assert sd_on_flux.code == 2 and "is made for SD1.x/SDXL (h94's layout), not for flux" in sd_on_flux.err, sd_on_flux


def test_a_batch_rows_image_prompt_is_relative_to_the_file(cli, tmp_path, tiny_models, ip_adapters, styles):
    row = {"prompt": "x", "ip_adapter": f"{styles[0].name},scale=0.6,model={ip_adapters['sd']}"}
    (tmp_path / "jobs.jsonl").write_text(json.dumps(row) + "\n")
    result = cli("batch", tmp_path / "jobs.jsonl", "-m", tiny_models["sd"], *FAST, "-o", tmp_path / "out")
    assert result.code == 0, result
    [png] = (tmp_path / "out").glob("*.png")
    assert read_metadata(png)["genimg"]["spec"]["ip_adapters"][0]["image"] == str(styles[0])
