"""genimg controlnet: a ControlNet steers the picture; weight 0 gives exactly the plain picture."""

import numpy as np
import pytest
from PIL import Image

from genimg.testing.images import pixels
from genimg.output.metadata import read_metadata

FAST = ("-W", "64", "-H", "64", "--steps", "3", "--seed", "5")


@pytest.fixture
def circle(tmp_path):
    from genimg.testing.images import save_ring

    return save_ring(tmp_path / "circle.png")


@pytest.mark.parametrize("family", ["sd", "sdxl", "flux"])
def test_a_controlnet_changes_the_picture_and_weight_zero_does_not(cli, tmp_path, tiny_models, tiny_controlnets,
                                                                   circle, family):
    model = ("-m", tiny_models[family])
    assert cli("txt2img", "a ring", *model, *FAST, "-o", tmp_path / "plain.png").code == 0
    for scale in ("1", "0"):
        result = cli("controlnet", circle, "a ring", *model, "--controlnet", tiny_controlnets[family],
                     "--control-scale", scale, *FAST, "-o", tmp_path / f"c{scale}.png")
        assert result.code == 0, result
    plain, steered, zero = (pixels(tmp_path / n).astype(int) for n in ("plain.png", "c1.png", "c0.png"))
    assert np.abs(steered - plain).mean() > 1
    if family != "flux":  # diffusers' FLUX ControlNet pipeline encodes the control image with the seed's
        assert np.abs(zero - plain).max() <= 1  # generator first, so its starting noise differs


def test_canny_turns_a_photo_into_edges_that_steer_differently(cli, tmp_path, tiny_models, tiny_controlnets):
    from skimage import data

    from genimg.control import preprocess

    photo = Image.fromarray(data.chelsea()).resize((64, 64))
    photo.save(tmp_path / "cat.png")
    edges = np.asarray(preprocess(photo, "canny"))
    assert set(np.unique(edges)) == {0, 255} and 0.01 < (edges > 0).mean() < 0.5
    common = ("a cat", "-m", tiny_models["sd"], "--controlnet", tiny_controlnets["sd"], *FAST)
    assert cli("controlnet", tmp_path / "cat.png", *common, "--control", "canny", "--control-scale", "0.5",
               "-o", tmp_path / "canny.png").code == 0
    assert cli("controlnet", tmp_path / "cat.png", *common, "-o", tmp_path / "raw.png").code == 0
    assert not np.array_equal(pixels(tmp_path / "canny.png"), pixels(tmp_path / "raw.png"))
    meta = read_metadata(tmp_path / "canny.png")
    assert ('ControlNet 0: "Module: canny, Model: sd, Weight: 0.5, Resize Mode: Resize and Fill, Guidance Start: 0, '
            'Guidance End: 1"' in meta["parameters_text"])
    [control] = meta["genimg"]["spec"]["controls"]
    assert (control["type"], control["scale"]) == ("canny", 0.5)


@pytest.mark.parametrize("args,words", [
    (("missing.png", "x", "--controlnet", "{cn}"), ("missing.png", "does not exist")),
    (("{img}", "x", "--controlnet", "nowhere/at-all/x"), ("is not a folder, a file or a hub id",)),
    (("{img}", "x", "--controlnet", "{pickle}"), ("pickle", "--allow-pickle")),
    (("{img}", "x", "--controlnet", "{flux_cn}"), ("FluxControlNetModel", "not a ControlNet for this SD")),
    (("{img}", "x", "--controlnet", "{sdxl_cn}"), ("ControlNetModel", "not a ControlNet for this SD")),
    (("{img}", "x", "--controlnet", "{cn}", "--control", "cany"), ("unknown control type 'cany'", "did you mean 'canny'", "none, canny")),
    (("{img}", "x"), ("--controlnet",)),
])
def test_bad_controlnet_input(cli, tmp_path, tiny_models, tiny_controlnets, circle, args, words):
    (tmp_path / "cn.ckpt").write_bytes(b"not really")
    values = {"cn": tiny_controlnets["sd"], "flux_cn": tiny_controlnets["flux"], "sdxl_cn": tiny_controlnets["sdxl"], "img": circle,
              "pickle": tmp_path / "cn.ckpt"}
    args = [str(a).format(**values) for a in args]
    result = cli("controlnet", *args, "-m", tiny_models["sd"], *FAST, "-o", tmp_path / "out.png")
    assert result.code == 2, result
    assert len(result.err.strip().splitlines()) == 1
    for word in words:
        assert word in result.err
    assert not (tmp_path / "out.png").exists()


def test_batch_rows_can_use_a_controlnet(cli, tmp_path, tiny_models, tiny_controlnets, circle):
    import shutil

    shutil.copytree(tiny_controlnets["sd"], tmp_path / "my-controlnet")
    (tmp_path / "jobs.csv").write_text("prompt,task,image,controlnet,control_scale\n"
                                       "a ring,controlnet,circle.png,my-controlnet,0.5\na plain one,txt2img,,,\n")
    result = cli("batch", tmp_path / "jobs.csv", "-m", tiny_models["sd"], *FAST, "-o", tmp_path / "out")
    assert result.code == 0, result
    # File names start with the job's content id, so the rows are found by their prompt.
    specs = {s["prompt"]: s for s in (read_metadata(p)["genimg"]["spec"] for p in (tmp_path / "out").glob("*.png"))}
    assert sorted(specs) == ["a plain one", "a ring"] and not specs["a plain one"].get("controls")
    [control] = specs["a ring"]["controls"]
    assert control["model"] == str((tmp_path / "my-controlnet").resolve()) and control["scale"] == 0.5


def test_demo_controlnet_trainer_makes_a_controlnet_genimg_loads(cli, tmp_path, tiny_models, circle):
    import json

    from safetensors.torch import load_file

    result = cli("learn", "demo-controlnet", "-m", tiny_models["sd"], "-o", tmp_path / "cn", "--steps", "3",
                 "--images", "32", "--quiet")
    assert result.code == 0, result
    config = json.loads((tmp_path / "cn" / "config.json").read_text())
    # One stride-2 conditioning block per VAE level: the edges arrive at the latent size.
    vae_levels = len(json.loads((tiny_models["sd"] / "vae" / "config.json").read_text())["block_out_channels"])
    assert config["_class_name"] == "ControlNetModel" and len(config["conditioning_embedding_out_channels"]) == vae_levels
    record = json.loads((tmp_path / "cn" / "genimg_training.json").read_text())
    assert (record["config"]["steps"], record["config"]["images"]) == (3, 32)
    # Training moved the zero-initialised output convolutions off zero: the net now steers.
    weights = load_file(str(tmp_path / "cn" / "diffusion_pytorch_model.safetensors"))
    assert weights["controlnet_mid_block.weight"].abs().max() > 0
    assert cli("controlnet", circle, "a ring", "-m", tiny_models["sd"], "--controlnet", tmp_path / "cn", *FAST,
               "-o", tmp_path / "out.png").code == 0


# Fixed scenes and seeds: where the demo ControlNet must put the shape, and the plain demo model does not.
PLACED = [("square", "yellow", "purple", "large", 0.7, 0.7, 3), ("triangle", "white", "green", "", 0.7, 0.3, 3),
          ("star", "orange", "black", "large", 0.32, 0.68, 2), ("star", "orange", "black", "large", 0.32, 0.68, 3)]


@pytest.mark.parametrize("shape,colour,background,size,cx,cy,seed", PLACED)
def test_the_demo_controlnet_puts_the_shape_where_the_edges_are(tmp_path, shape, colour, background, size, cx, cy, seed):
    from genimg.factory import PipelineFactory
    from genimg.generation import generate
    from genimg.demo.analyse import analyse
    from genimg.demo.shapes import ShapeScene, render
    from genimg.spec import GenerationSpec

    scene = ShapeScene(shape, colour, background, size, None, cx, cy, 0.0)
    render(scene).save(tmp_path / "scene.png")
    factory = PipelineFactory()
    centres = {}
    for scale in (1.0, 0.0):
        control = {"type": "canny", "image": str(tmp_path / "scene.png"), "model": "demo-canny", "scale": scale}
        spec = GenerationSpec(scene.caption(), model="demo", controls=[control], seed=seed)
        verdict = analyse(generate(spec, factory)[0].image)
        assert (verdict.shape, verdict.colour) == (shape, colour)
        centres[scale] = max(abs(verdict.centre[0] - cx), abs(verdict.centre[1] - cy))
    assert centres[1.0] <= 0.1 < centres[0.0]


def test_a_batch_rows_control_keeps_its_preprocessor_settings(cli, tmp_path, tiny_models, tiny_controlnets, circle):
    import json

    row = {"prompt": "a ring", "control": f"canny=circle.png,low=10,high=30,model={tiny_controlnets['sd']}"}
    (tmp_path / "jobs.jsonl").write_text(json.dumps(row) + "\n")
    result = cli("batch", tmp_path / "jobs.jsonl", "-m", tiny_models["sd"], *FAST, "-o", tmp_path / "out")
    assert result.code == 0, result
    [png] = (tmp_path / "out").glob("*.png")
    [control] = read_metadata(png)["genimg"]["spec"]["controls"]
    assert control["settings"] == {"low": 10, "high": 30} and control["image"] == str(circle)
