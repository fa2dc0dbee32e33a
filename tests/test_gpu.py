"""On a CUDA machine: every GPU preset really runs each family's tiny model (skipped without CUDA;
the same presets' settings are checked on the CPU by test_factory.py with faked devices)."""

import json

import numpy as np
import pytest

from genimg.testing.images import FAMILIES, pixels

GPU_PRESETS = ("6gb", "8gb", "12gb", "16gb", "24gb", "80gb")


@pytest.mark.gpu
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("preset", GPU_PRESETS)
def test_every_gpu_preset_generates_an_image(cli, tmp_path, tiny_models, family, preset):
    pytest.importorskip("bitsandbytes")
    result = cli("txt2img", "a red circle", "-m", tiny_models[family], "--preset", preset, "-W", "64", "-H", "64",
                 "--steps", "3", "--seed", "1", "-o", tmp_path / "a.png", "--json")
    assert result.code == 0, result
    image = pixels(tmp_path / "a.png")
    assert image.shape == (64, 64, 3) and image.std() > 0
    assert json.loads(result.out)["settings"]["preset"] == preset


@pytest.mark.gpu
def test_half_precision_on_the_gpu_is_close_to_fp32(cli, tmp_path, tiny_models):
    common = ("a red circle", "-m", tiny_models["sd"], "-W", "64", "-H", "64", "--steps", "3", "--seed", "1")
    assert cli("txt2img", *common, "--device", "cuda", "--dtype", "fp32", "-o", tmp_path / "f32.png").code == 0
    assert cli("txt2img", *common, "--device", "cuda", "--dtype", "fp16", "-o", tmp_path / "f16.png").code == 0
    assert np.abs(pixels(tmp_path / "f32.png") - pixels(tmp_path / "f16.png")).mean() < 8


@pytest.mark.slow
def test_the_gpu_bench_harness_runs_end_to_end_on_tiny_models(capsys):
    """bench/gpu.py must work the day a GPU is at hand: here every row runs on the CPU."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "bench" / "gpu.py"
    spec = importlib.util.spec_from_file_location("bench_gpu", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.main(["--tiny", "--families", "sd,flux", "--presets", "6gb,24gb", "--images", "1", "--json"])
    report = json.loads(capsys.readouterr().out)
    rows = {(r["family"], r["preset"]): r for r in report["rows"]}
    assert set(rows) == {(f, p) for f in ("sd", "flux") for p in ("plain diffusers", "6gb", "24gb")}
    for row in rows.values():
        assert row["s/image"] > 0 and row["s/step"] > 0 and row["flops/step"] > 0 and 0 < row["of bf16 peak"]
    # The presets' own settings were applied (CPU stand-ins only where a CPU cannot follow them).
    assert rows[("sd", "6gb")]["settings"]["attention_slicing"] and rows[("sd", "6gb")]["settings"]["vae_tiling"]
    assert not rows[("sd", "24gb")]["settings"]["attention_slicing"]
    assert rows[("flux", "24gb")]["settings"]["dtype"] == "bf16"
    # Same architecture, size and attention kernel: the same FLOPs per step (6gb's sliced attention
    # multiplies by another route and counts differently).
    assert rows[("sd", "24gb")]["flops/step"] == rows[("sd", "plain diffusers")]["flops/step"]
