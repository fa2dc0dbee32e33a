"""Bad input: one line on stderr saying what is wrong and how to fix it, exit 2, no file written."""

import pytest

SMALL = ("-W", "64", "-H", "64", "--steps", "2")


def _assert_usage_error(result, *words):
    assert result.code == 2, result
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert "Traceback" not in result.err
    for word in words:
        assert word in lines[0], lines[0]


@pytest.mark.parametrize("args,words", [
    (("-W", "65", "-H", "64"), ("--width 65", "multiple of 8")),
    (("-W", "64", "-H", "0"), ("--height 0",)),
    (("-W", "64", "-H", "64", "--steps", "0"), ("--steps", "at least 1")),
    (("-W", "64", "-H", "64", "--count", "0"), ("--count",)),
    (("-W", "64", "-H", "64", "--scheduler", "Eular a"), ("unknown scheduler", "did you mean 'Euler a'")),
    (("-W", "64", "-H", "64", "--preset", "7gb"), ("unknown preset", "genimg presets")),
    (("-W", "64", "-H", "64", "--steps", "many"), ("--steps", "valid integer")),
    (("-W", "64", "-H", "64", "--dtype", "fp8"), ("dtype", "fp32")),
])
def test_bad_generation_settings(cli, tmp_path, tiny_models, args, words):
    target = tmp_path / "x.png"
    result = cli("txt2img", "x", "--model", tiny_models["sd"], *args, "-o", target)
    _assert_usage_error(result, *words)
    assert not target.exists()


def test_flux_refuses_non_flow_schedulers_and_says_which_work(cli, tmp_path, tiny_models):
    result = cli("txt2img", "x", "--model", tiny_models["flux"], *SMALL, "--scheduler", "DPM++ 2M", "-o", tmp_path / "f.png")
    _assert_usage_error(result, "flow-matching", "FlowMatch Euler")


def test_flux_size_must_be_multiple_of_16(cli, tmp_path, tiny_models):
    result = cli("txt2img", "x", "--model", tiny_models["flux"], "-W", "72", "-H", "64", "-o", tmp_path / "f.png")
    _assert_usage_error(result, "multiple of 16", "try 64 or 80")


def test_unknown_alias_suggests_the_close_one(cli, tmp_path):
    _assert_usage_error(cli("txt2img", "x", "--model", "sdx1", "-o", tmp_path / "a.png"), "sdx1", "did you mean 'sdxl'")


def test_missing_model_path(cli, tmp_path):
    _assert_usage_error(cli("txt2img", "x", "--model", str(tmp_path / "nope.safetensors"), "-o", tmp_path / "a.png"),
                        "not an alias, a folder or a file")


@pytest.mark.parametrize("suffix", [".ckpt", ".bin", ".pt"])
def test_pickle_checkpoints_are_refused_without_allow_pickle(cli, tmp_path, suffix):
    checkpoint = tmp_path / f"model{suffix}"
    checkpoint.write_bytes(b"\x80\x04not really a pickle")
    _assert_usage_error(cli("txt2img", "x", "--model", checkpoint, "-o", tmp_path / "a.png"), "pickle", "--allow-pickle")


def test_folder_without_model_index(cli, tmp_path):
    (tmp_path / "empty").mkdir()
    _assert_usage_error(cli("txt2img", "x", "--model", tmp_path / "empty", "-o", tmp_path / "a.png"), "model_index.json")


def test_hub_model_missing_from_offline_cache_says_where_it_looked(cli, tmp_path):
    result = cli("txt2img", "x", "--model", "someone/not-downloaded", "-o", tmp_path / "a.png")
    _assert_usage_error(result, "someone/not-downloaded", "cache", "hf download")


def test_alias_missing_from_offline_cache(cli, tmp_path):
    result = cli("txt2img", "x", "--model", "sd15", *SMALL, "-o", tmp_path / "a.png")
    _assert_usage_error(result, "stable-diffusion-v1-5/stable-diffusion-v1-5", "hf download")


def test_unwritable_output_folder(cli, tmp_path, tiny_models):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = cli("txt2img", "x", "--model", tiny_models["sd"], *SMALL, "-o", f"{blocker}/sub/")
    _assert_usage_error(result, "cannot create output folder")


def test_output_must_be_png(cli, tmp_path, tiny_models):
    _assert_usage_error(cli("txt2img", "x", "--model", tiny_models["sd"], *SMALL, "-o", tmp_path / "a.jpg"), ".png")


def test_gpu_preset_without_a_gpu(cli, tmp_path, tiny_models):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    _assert_usage_error(cli("txt2img", "x", "--model", tiny_models["sd"], *SMALL, "--preset", "8gb", "-o", tmp_path / "a.png"),
                        "no GPU", "--preset auto")


def test_debug_shows_the_traceback(cli, tmp_path):
    with pytest.raises(Exception):
        cli("--debug", "txt2img", "x", "--model", "sdx1", "-o", tmp_path / "a.png")


def test_nan_image_is_a_runtime_failure_with_advice(tiny_models, monkeypatch):
    import numpy as np

    from genimg import RunFailure
    from genimg.generation import generate
    from genimg.spec import GenerationSpec

    real_call = None

    def nan_pipeline(pipe, **kwargs):
        out = real_call(pipe, **kwargs)
        out.images = np.full_like(out.images, np.nan)
        return out

    from diffusers import StableDiffusionPipeline

    real_call = StableDiffusionPipeline.__call__
    monkeypatch.setattr(StableDiffusionPipeline, "__call__", nan_pipeline)
    with pytest.raises(RunFailure, match="--vae-fp32") as err:
        generate(GenerationSpec("x", model=str(tiny_models["sd"]), width=64, height=64, steps=2, seed=1))
    assert err.value.exit_code == 1
