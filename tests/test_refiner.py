"""SDXL's refiner as diffusers' ensemble of experts: the base stops at the switch and hands its latents over."""

from __future__ import annotations

import json

import numpy as np
import pytest

from genimg.output.metadata import read_metadata
from genimg.testing.images import pixels


@pytest.fixture(scope="module")
def tiny_refiner(tmp_path_factory):
    from genimg.testing.tiny_models import save_tiny

    return save_tiny("sdxl-refiner", tmp_path_factory.mktemp("refiner") / "tiny-refiner")


def test_the_hand_over_equals_diffusers_own_ensemble_of_experts(cli, tmp_path, tiny_models, tiny_refiner):
    import torch

    from genimg.factory import PipelineFactory
    from genimg.generation import plan, run
    from genimg.spec import GenerationSpec

    spec = GenerationSpec("a lighthouse", model=str(tiny_models["sdxl"]), refiner=str(tiny_refiner), refiner_switch=0.5,
                          width=64, height=64, steps=6, seed=4, preset="cpu", scheduler="Euler", guidance=5.0)
    factory = PipelineFactory()
    [made] = list(run(plan(spec), factory))
    base = factory.current.base
    refiner, _ = next(iter(factory.refiners.values()))
    # diffusers' documented recipe, on the very pipelines genimg loaded (their samplers as genimg set them)
    with torch.inference_mode():
        latents = base("a lighthouse", negative_prompt="", num_inference_steps=6, denoising_end=0.5, width=64,
                       height=64, guidance_scale=5.0, generator=torch.Generator().manual_seed(4),
                       output_type="latent").images
        expected = refiner("a lighthouse", negative_prompt="", image=latents, num_inference_steps=6,
                           denoising_start=0.5, guidance_scale=5.0, generator=torch.Generator().manual_seed(4)).images[0]
    assert np.abs(np.asarray(made.image, dtype=int) - np.asarray(expected, dtype=int)).max() <= 1
    assert made.steps == 6  # three steps each


def test_the_refiner_on_the_cli_is_written_as_a1111_writes_it_and_remade(cli, tmp_path, tiny_models, tiny_refiner):
    common = ("a lighthouse", "-m", tiny_models["sdxl"], "-W", "64", "-H", "64", "--steps", "4", "--seed", "2",
              "--preset", "cpu")
    made = cli("txt2img", *common, "--refiner", tiny_refiner, "--refiner-switch", "0.5", "-o", tmp_path / "r.png",
               "--json")
    assert made.code == 0, made
    plain = cli("txt2img", *common, "-o", tmp_path / "plain.png")
    assert plain.code == 0 and not np.array_equal(pixels(tmp_path / "r.png"), pixels(tmp_path / "plain.png"))
    meta = read_metadata(tmp_path / "r.png")["parameters"]
    assert (meta["Refiner"], meta["Refiner switch at"]) == (tiny_refiner.name, "0.5")
    assert json.loads(made.out)["settings"]["refiner_switch"] == 0.5
    again = cli("txt2img", "--from", tmp_path / "r.png", "-o", tmp_path / "again.png")
    assert again.code == 0 and np.array_equal(pixels(tmp_path / "again.png"), pixels(tmp_path / "r.png"))


def test_a_refiner_is_refused_where_it_cannot_work(cli, tmp_path, tiny_models, tiny_refiner):
    alone = cli("txt2img", "x", "-m", tiny_refiner, "-o", tmp_path / "a.png")
    assert alone.code == 2 and "is an SDXL refiner" in alone.err and "--refiner" in alone.err
    sd = cli("txt2img", "x", "-m", tiny_models["sd"], "--refiner", tiny_refiner, "-o", tmp_path / "b.png")
    assert sd.code == 2 and "has no refiner" in sd.err
    switch = cli("txt2img", "x", "-m", tiny_models["sdxl"], "--refiner", tiny_refiner, "--refiner-switch", "1",
                 "-o", tmp_path / "c.png")
    assert switch.code == 2 and "--refiner-switch must be between 0 and 1" in switch.err


def test_a1111s_refiner_fields_run_the_same_ensemble(tmp_path, tiny_models, tiny_refiner, monkeypatch):
    import base64
    import io
    import json

    from fastapi.testclient import TestClient
    from PIL import Image

    from genimg.serve.app import create_app
    from genimg.serve.jobs import Worker

    import shutil

    shutil.copytree(tiny_models["sdxl"], tmp_path / "models" / "tiny-xl")  # "sdxl" is an alias: a name of its own
    monkeypatch.setenv("GENIMG_MODEL_DIRS", f"{tmp_path / 'models'}:{tiny_refiner.parent}")
    worker = Worker(tmp_path / "served").start()
    try:
        client = TestClient(create_app(worker))
        answer = client.post("/sdapi/v1/txt2img", json={
            "prompt": "a lighthouse", "steps": 4, "width": 64, "height": 64, "seed": 2, "sampler_name": "Euler",
            "cfg_scale": 5, "override_settings": {"sd_model_checkpoint": "tiny-xl"},
            "refiner_checkpoint": f"{tiny_refiner.name} [0123456789]", "refiner_switch_at": 0.5})
    finally:
        worker.stop(wait=5)
    assert answer.status_code == 200, answer.text
    info = json.loads(answer.json()["info"])
    assert f"Refiner: {tiny_refiner.name}, Refiner switch at: 0.5" in info["infotexts"][0]
    served = np.asarray(Image.open(io.BytesIO(base64.b64decode(answer.json()["images"][0]))).convert("RGB"))
    from genimg.generation import plan, run
    from genimg.spec import GenerationSpec

    [local] = run(plan(GenerationSpec("a lighthouse", model=str(tiny_models["sdxl"]), refiner=str(tiny_refiner),
                                      refiner_switch=0.5, width=64, height=64, steps=4, seed=2, scheduler="Euler",
                                      guidance=5.0, preset="cpu")))
    assert np.array_equal(served, np.asarray(local.image))
