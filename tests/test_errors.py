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
    (("-W", "64", "-H", "0"), ("--height", "positive multiple of 8", "got 0")),
    (("-W", "-64", "-H", "64"), ("--width", "positive multiple of 8", "got -64")),
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


def test_gpu_preset_without_a_gpu(cli, tmp_path, tiny_models, monkeypatch):
    from genimg import device

    monkeypatch.setattr(device, "detect", lambda _=None: device.DeviceInfo("cpu", "CPU"))
    _assert_usage_error(cli("txt2img", "x", "--model", tiny_models["sd"], *SMALL, "--preset", "8gb", "-o", tmp_path / "a.png"),
                        "no GPU", "--preset auto")


@pytest.mark.parametrize("where", ["first", "after the command", "last"])
def test_debug_anywhere_shows_the_traceback_and_keeps_the_exit_code(cli, tmp_path, where):
    args = ["txt2img", "x", "--model", "sdx1", "-o", str(tmp_path / "a.png")]
    args.insert({"first": 0, "after the command": 1, "last": len(args)}[where], "--debug")
    shown = cli(*args)
    assert shown.code == 2, shown  # a usage error is 2 with --debug too
    assert "Traceback" in shown.err and "in resolve_model" in shown.err  # the frame where it was raised
    assert shown.err.rstrip().splitlines()[-1].startswith("genimg txt2img: error: model 'sdx1' is not an alias")
    quiet = cli("txt2img", "x", "--model", "sdx1", "-o", tmp_path / "a.png")
    assert quiet.code == 2 and "Traceback" not in quiet.err


def test_debug_with_a_bad_flag_is_a_usage_error_with_its_traceback(cli, tmp_path):
    shown = cli("txt2img", "x", "-W", "65", "--debug", "--no-such-flag", "-o", tmp_path / "a.png")
    assert shown.code == 2 and "No such option: --no-such-flag" in shown.err and "Traceback" in shown.err


def test_a_prompt_after_the_separator_may_be_the_word_debug(cli, tmp_path):
    made = cli("txt2img", "--steps", "1", "--seed", "1", "-o", tmp_path / "d.png", "--", "--debug")
    assert made.code == 0 and (tmp_path / "d.png").is_file(), made


@pytest.mark.parametrize("family,pipeline", [("sd", "StableDiffusionPipeline"), ("sdxl", "StableDiffusionXLPipeline")])
def test_nan_image_is_a_runtime_failure_with_advice(tiny_models, monkeypatch, family, pipeline):
    import diffusers
    import numpy as np

    from genimg import RunFailure
    from genimg.generation import generate
    from genimg.spec import GenerationSpec

    cls = getattr(diffusers, pipeline)
    real_call = cls.__call__

    def nan_pipeline(pipe, **kwargs):
        out = real_call(pipe, **kwargs)
        out.images = np.full_like(out.images, np.nan)
        return out

    monkeypatch.setattr(cls, "__call__", nan_pipeline)
    with pytest.raises(RunFailure, match="--vae-fp32") as err:
        generate(GenerationSpec("x", model=str(tiny_models[family]), width=64, height=64, steps=2, seed=1))
    assert err.value.exit_code == 1
    # SDXL's own VAE overflows fp16; the fixed one is the other cure.
    assert ("--vae sdxl-vae-fp16-fix" in str(err.value)) is (family == "sdxl")


def test_ctrl_c_says_what_was_written_and_what_was_not(cli, tmp_path, tiny_models, monkeypatch):
    import genimg.api

    real_run = genimg.api.run

    def interrupted_run(*args, **kwargs):
        for n, image in enumerate(real_run(*args, **kwargs)):
            if n == 1:
                raise KeyboardInterrupt
            yield image

    monkeypatch.setattr(genimg.api, "run", interrupted_run)
    result = cli("txt2img", "x", "-m", tiny_models["sd"], "-W", "64", "-H", "64", "--steps", "2", "--seed", "1",
                 "--count", "3", "-o", tmp_path)
    assert result.code == 130
    assert "interrupted: 1 of 3 images written" in result.err and "2 not made" in result.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x-1.png"]


def test_a_broken_user_alias_or_preset_file_names_the_file_and_entry(cli, tmp_path, monkeypatch):
    config = tmp_path / "config"
    (config / "presets").mkdir(parents=True)
    monkeypatch.setenv("GENIMG_CONFIG_DIR", str(config))
    (config / "aliases.toml").write_text('[sd3]\nrepo = "stabilityai/sd3"\n')
    result = cli("txt2img", "x", "-m", "sd3", "-o", tmp_path / "a.png")
    _assert_usage_error(result, str(config / "aliases.toml"), "alias [sd3]", "family = None is not one of sd, sdxl, flux")
    (config / "aliases.toml").write_text('[mine\nrepo = "x"\n')
    _assert_usage_error(cli("txt2img", "x", "-o", tmp_path / "a.png"), "aliases.toml is not valid TOML", "line 1")
    (config / "aliases.toml").unlink()
    (config / "presets" / "tiny.toml").write_text('device = "cpu"\ndtype = "fp32"\nvae_tiling = "yes"\n')
    _assert_usage_error(cli("presets"), str(config / "presets" / "tiny.toml"), "vae_tiling = 'yes' must be true or false")


def test_an_unreachable_hub_is_said_once_and_quickly(cli, tmp_path, monkeypatch):
    import socket
    import time

    from huggingface_hub import constants

    from genimg.models import hub

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    hub.forget_probes()
    began = time.perf_counter()
    result = cli("txt2img", "x", "-m", "someone/not-downloaded", "-o", tmp_path / "a.png")
    assert time.perf_counter() - began < 5
    _assert_usage_error(result, "someone/not-downloaded", f"127.0.0.1:{port}", "cannot be reached", "hf download")
    hub.forget_probes()


def test_a_damaged_safetensors_controlnet_is_called_damaged_not_pickle(cli, tmp_path, tiny_models, tiny_controlnets):
    import shutil

    from PIL import Image

    Image.new("RGB", (64, 64)).save(tmp_path / "c.png")
    folder = tmp_path / "cn"
    shutil.copytree(tiny_controlnets["sd"], folder)
    weights = folder / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])
    (tmp_path / "cn.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    for controlnet in (folder, tmp_path / "cn.safetensors"):
        result = cli("controlnet", tmp_path / "c.png", "x", "-m", tiny_models["sd"], "--controlnet", controlnet,
                     "-W", "64", "-H", "64", "--steps", "2", "-o", tmp_path / "o.png")
        assert result.code == 2, result
        assert "pickle" not in result.err and ("damaged" in result.err or "re-download" in result.err)
        assert len(result.err.strip().splitlines()) == 1


def test_learn_without_a_subcommand_prints_its_help_once(cli):
    result = cli("learn")
    assert result.code == 0 and result.out.count("Usage:") == 1 and "ddpm" in result.out
