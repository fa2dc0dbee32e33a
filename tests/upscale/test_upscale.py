"""genimg upscale: the built-in upscaler, spandrel files, the SD x4 upscaler, tiling, hires fix."""

import json

import numpy as np
import pytest
from PIL import Image

from genimg.testing.images import pixels
from genimg.output.metadata import read_metadata


@pytest.fixture(scope="session")
def demo_png(tmp_path_factory):
    """A demo-model PNG with genimg's metadata, as `genimg txt2img` writes it."""
    from genimg.api import generate_files
    from genimg.spec import GenerationSpec

    folder = tmp_path_factory.mktemp("demo-out")
    [(path, _)] = list(generate_files(GenerationSpec("a red circle on a blue background", seed=3), folder))
    return path


@pytest.fixture(scope="session")
def spandrel_files(tmp_path_factory):
    from genimg.testing.tiny_image_models import save_random_spandrel

    root = tmp_path_factory.mktemp("spandrel")
    return {arch: save_random_spandrel(root / f"{arch}-x4.safetensors", arch) for arch in ("esrgan", "span", "compact")}


@pytest.fixture(scope="session")
def sd_upscaler(tmp_path_factory):
    from genimg.testing.tiny_models import save_tiny_upscaler

    return save_tiny_upscaler(tmp_path_factory.mktemp("sd-x4") / "tiny-x4")


def _upscale(cli, *args):
    result = cli("upscale", *args, "--json")
    assert result.code == 0, result
    return [json.loads(line) for line in result.out.splitlines()]


def test_the_built_in_upscaler_works_offline_and_keeps_the_settings(cli, tmp_path, demo_png):
    [record] = _upscale(cli, demo_png, "-o", tmp_path)
    path = tmp_path / f"{demo_png.stem}-x4.png"
    assert record["path"] == str(path) and record["upscaler"] == "demo-upscaler"
    with Image.open(path) as im:
        assert im.size == (256, 256) and im.mode == "RGB"
    meta = read_metadata(path)
    assert meta["parameters"]["prompt"] == "a red circle on a blue background"
    assert meta["parameters"]["Postprocess upscale by"] == "4"
    assert meta["parameters"]["Postprocess upscaler"] == "demo-upscaler"
    assert meta["genimg"]["spec"]["seed"] == 3 and meta["genimg"]["postprocess"][0]["Postprocess upscale by"] == "4"
    shown = cli("info", path)
    assert "Seed: 3" in shown.out and "Postprocess upscaler: demo-upscaler" in shown.out


def _psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255**2 / mse)


def test_the_built_in_upscaler_beats_lanczos_on_held_out_photographs_and_shapes(tmp_path):
    """A quick version of bench/upscale_quality.py: fixed crops the upscaler never saw in training.
    Measured with the shipped weights: +0.50 dB on the photographs, +0.93 dB on the shapes."""
    import random

    from genimg.demo.upscaler import HELD_OUT, degrade, load_photo
    from genimg.demo.shapes import random_scene, render
    from genimg.upscale.models import resolve_upscaler
    from genimg.upscale.run import upscale_image
    from genimg.upscale.upscalers import load_upscaler

    upscaler = load_upscaler(resolve_upscaler("demo-upscaler"))
    crops = [load_photo(name).crop((64, 64, 192, 192)) for name in HELD_OUT]
    rng = random.Random(1234)
    shapes = [render(random_scene(rng), side=128) for _ in range(4)]
    for group, margin in ((crops, 0.3), (shapes, 0.5)):
        ours, lanczos = [], []
        for truth in group:
            small = degrade(truth, 4)
            ours.append(_psnr(np.asarray(upscale_image(upscaler, small, 4)), np.asarray(truth)))
            lanczos.append(_psnr(np.asarray(small.resize(truth.size, Image.LANCZOS)), np.asarray(truth)))
        assert np.mean(ours) > np.mean(lanczos) + margin, (ours, lanczos)


@pytest.mark.parametrize("arch", ["esrgan", "span", "compact"])
def test_a_spandrel_upscaler_file_loads_and_scales_exactly(cli, tmp_path, demo_png, spandrel_files, arch):
    [record] = _upscale(cli, demo_png, "-m", spandrel_files[arch], "-o", tmp_path / "x4.png")
    assert record["size"] == [256, 256]
    result = cli("upscale", demo_png, "-m", spandrel_files[arch], "--scale", "2", "-o", tmp_path / "x2.png")
    assert result.code == 0, result
    assert "upscales x4; its output is resized to x2" in result.err
    with Image.open(tmp_path / "x2.png") as im:
        assert im.size == (128, 128)
    lanczos = _upscale(cli, demo_png, "-m", "lanczos", "--scale", "3", "-o", tmp_path / "l.png")
    assert lanczos[0]["size"] == [192, 192]


def test_pickle_upscalers_need_allow_pickle_and_load_weights_only(cli, tmp_path, demo_png, spandrel_files):
    import torch
    from safetensors.torch import load_file

    torch.save(load_file(spandrel_files["esrgan"]), tmp_path / "esrgan.pth")
    refused = cli("upscale", demo_png, "-m", tmp_path / "esrgan.pth", "-o", tmp_path / "a.png")
    assert refused.code == 2 and "--allow-pickle" in refused.err and not (tmp_path / "a.png").exists()
    _upscale(cli, demo_png, "-m", tmp_path / "esrgan.pth", "--allow-pickle", "-o", tmp_path / "a.png")
    assert np.array_equal(pixels(tmp_path / "a.png"),
                          pixels(_upscale(cli, demo_png, "-m", spandrel_files["esrgan"], "-o", tmp_path / "b.png")[0]["path"]))


def test_tiled_equals_untiled_away_from_the_seams(spandrel_files):
    import torch

    from genimg.upscale.models import resolve_upscaler
    from genimg.upscale.tiling import tiled
    from genimg.upscale.upscalers import load_spandrel

    model = load_spandrel(resolve_upscaler(str(spandrel_files["compact"])))
    x = torch.rand(1, 3, 80, 96, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        whole = model(x)
        parts = tiled(x, model, 4, tile=48, overlap=32)
    assert parts.shape == whole.shape == (1, 3, 320, 384)
    diff = (parts - whole).abs()[0].amax(0)
    # The compact net (4 convolutions) sees 5 px around each pixel; tiles weigh nothing within a
    # quarter of the overlap (8 px) of their own edges, so the blend equals the whole-image result.
    assert diff.max() < 1e-5
    rough = tiled(x, model, 4, tile=32, overlap=4)  # an overlap too small for the receptive field
    assert (rough - whole).abs().max() > 1e-3  # seams differ, and the test can tell


def test_the_sd_x4_upscaler_runs_through_its_pipeline_whole_and_tiled(cli, tmp_path, sd_upscaler):
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(tmp_path / "in.png")
    common = ("-m", sd_upscaler, "--prompt", "a texture", "--steps", "2", "--noise-level", "30", "--seed", "1")
    [whole] = _upscale(cli, tmp_path / "in.png", *common, "--tile", "0", "-o", tmp_path / "whole.png")
    [tiles] = _upscale(cli, tmp_path / "in.png", *common, "--tile", "16", "--tile-overlap", "8", "-o", tmp_path / "t.png")
    assert whole["size"] == tiles["size"] == [128, 128]
    _upscale(cli, tmp_path / "in.png", *common, "--tile", "0", "-o", tmp_path / "again.png")
    assert np.array_equal(pixels(tmp_path / "whole.png"), pixels(tmp_path / "again.png"))  # seeded
    other = _upscale(cli, tmp_path / "in.png", *common[:-1], "2", "--tile", "0", "-o", tmp_path / "o.png")
    assert other and not np.array_equal(pixels(tmp_path / "whole.png"), pixels(tmp_path / "o.png"))


def test_a_folder_skips_what_is_already_upscaled(cli, tmp_path, demo_png):
    import shutil

    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(demo_png, src / "a.png")
    shutil.copy(demo_png, src / "b.png")
    first = _upscale(cli, src, "-m", "lanczos", "-o", tmp_path / "out")
    assert sorted(r["path"] for r in first) == [str(tmp_path / "out" / "a-x4.png"), str(tmp_path / "out" / "b-x4.png")]
    (tmp_path / "out" / "b-x4.png").unlink()
    result = cli("upscale", src, "-m", "lanczos", "-o", tmp_path / "out", "--json")
    assert result.code == 0 and [json.loads(x)["path"] for x in result.out.splitlines()] == [str(tmp_path / "out" / "b-x4.png")]
    assert "skipped" in result.err and "a-x4.png" in result.err


def test_hires_fix_makes_the_larger_image_with_a1111_metadata(cli, tmp_path):
    result = cli("txt2img", "a yellow star on a purple background", "--seed", "2", "--steps", "6", "--hires", "2",
                 "--hires-strength", "0.4", "--hires-steps", "5", "--hires-upscaler", "demo-upscaler",
                 "-o", tmp_path / "h.png", "--json")
    assert result.code == 0, result
    assert json.loads(result.out)["steps_run"] == 6 + 2  # 5 steps at strength 0.4: the last two run
    with Image.open(tmp_path / "h.png") as im:
        assert im.size == (128, 128)
    params = read_metadata(tmp_path / "h.png")["parameters"]
    assert (params["Size"], params["Hires upscale"], params["Hires steps"], params["Hires upscaler"],
            params["Denoising strength"]) == ("64x64", "2", "5", "demo-upscaler", "0.4")
    assert cli("txt2img", "--from", tmp_path / "h.png", "-o", tmp_path / "again.png").code == 0
    assert np.array_equal(pixels(tmp_path / "h.png"), pixels(tmp_path / "again.png"))
    plain = cli("txt2img", "a yellow star on a purple background", "--seed", "2", "--steps", "6", "-o", tmp_path / "p.png")
    assert plain.code == 0
    with Image.open(tmp_path / "p.png") as im:
        assert im.size == (64, 64)


@pytest.mark.parametrize("case,words", [
    ("missing", "does not exist"),
    ("not-an-image", "not a readable image"),
    ("tiny", "too small to upscale"),
    ("unknown-weights", "spandrel does not recognise"),
    ("damaged", "re-download"),
    ("scale", "--scale must be between 1 and 8"),
    ("unknown-model", "not an alias"),
    ("exists", "already exists"),
])
def test_bad_upscale_input(cli, tmp_path, demo_png, case, words):
    from safetensors.torch import save_file
    import torch

    (tmp_path / "text.png").write_text("hello")
    Image.new("RGB", (4, 4)).save(tmp_path / "tiny.png")
    save_file({"some.weight": torch.zeros(3, 3)}, str(tmp_path / "odd.safetensors"))
    (tmp_path / "bad.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00garbage!")
    Image.new("RGB", (8, 8)).save(tmp_path / "taken.png")
    args = {
        "missing": (tmp_path / "nope.png",),
        "not-an-image": (tmp_path / "text.png",),
        "tiny": (tmp_path / "tiny.png",),
        "unknown-weights": (demo_png, "-m", tmp_path / "odd.safetensors"),
        "damaged": (demo_png, "-m", tmp_path / "bad.safetensors"),
        "scale": (demo_png, "--scale", "0.5"),
        "unknown-model": (demo_png, "-m", "real-esrgan-9000"),
        "exists": (demo_png, "-m", "lanczos", "-o", tmp_path / "taken.png"),
    }[case]
    out = tmp_path / "out"
    result = cli("upscale", *args, *(() if "-o" in args else ("-o", out)))
    assert result.code == 2, result
    assert words in result.err and len(result.err.strip().splitlines()) == 1
    assert not out.exists()


def test_batch_rows_can_upscale_and_a_rerun_skips_them(cli, tmp_path, demo_png):
    import shutil

    shutil.copy(demo_png, tmp_path / "in.png")
    (tmp_path / "jobs.csv").write_text("prompt,task,image,scale,upscaler\n"
                                       "a green square,txt2img,,,\n"
                                       ",upscale,in.png,2,lanczos\n"
                                       ",upscale,missing.png,4,\n")
    args = ("batch", tmp_path / "jobs.csv", "-o", tmp_path / "out", "--json")
    result = cli(*args)
    assert result.code == 1, result
    assert "jobs.csv:4" in result.err and "missing.png does not exist" in result.err
    records = [json.loads(line) for line in result.out.splitlines()]
    upscaled = [r for r in records if "source" in r]
    assert [r["size"] for r in upscaled] == [[128, 128]]
    assert read_metadata(tmp_path / "out" / "in-x2.png")["parameters"]["Postprocess upscaler"] == "lanczos"
    again = cli(*args)
    summary = json.loads(again.out.splitlines()[-1])["summary"]
    assert (summary["done"], summary["skipped"]) == (0, 2)


def test_the_python_twin_matches_the_command(cli, tmp_path, demo_png):
    import genimg

    [done] = genimg.upscale_images([demo_png], tmp_path / "api.png", model="lanczos", scale=2)
    assert done.path == tmp_path / "api.png" and done.size == (128, 128)
    _upscale(cli, demo_png, "-m", "lanczos", "--scale", "2", "-o", tmp_path / "cli.png")
    assert np.array_equal(pixels(tmp_path / "api.png"), pixels(tmp_path / "cli.png"))


def test_the_upscaler_trainer_runs_both_phases_and_can_polish_a_saved_l1_run(cli, tmp_path):
    """A few steps of `genimg learn demo-upscaler`: what it saves loads through spandrel like any upscaler."""
    import hashlib

    from genimg.demo.upscaler import WEIGHTS, UpscalerTrainingConfig, train_upscaler

    small = UpscalerTrainingConfig(patch=32, photo_patches=4, shape_patches=4, steps=2, batch=2,
                                   polish_photo_patches=2, polish_shape_patches=2, polish_steps=2)
    record = train_upscaler(tmp_path / "both", small)
    assert record["phases_run"] == ["L1", "MSE"] and set(record["final_loss"]) == {"L1", "MSE"}
    l1 = tmp_path / "both" / WEIGHTS
    polished = train_upscaler(tmp_path / "polish", small, l1_weights=l1)
    assert polished["phases_run"] == ["MSE"]
    assert polished["started_from"]["sha256"] == hashlib.sha256(l1.read_bytes()).hexdigest()
    (tmp_path / "in.png").parent.mkdir(exist_ok=True)
    Image.new("RGB", (16, 16), (200, 30, 30)).save(tmp_path / "in.png")
    [row] = _upscale(cli, tmp_path / "in.png", "-m", tmp_path / "polish" / WEIGHTS, "-o", tmp_path / "out.png")
    assert row["size"] == [64, 64]
    bad = cli("learn", "demo-upscaler", "-o", tmp_path / "x", "--l1-weights", tmp_path / "none.safetensors")
    assert bad.code == 2 and "none.safetensors" in bad.err
