"""genimg config: defaults < config file < GENIMG_<KEY> < flags, and what each key changes."""

import json

import pytest

from genimg.output.metadata import read_metadata

SMALL = ("-W", "64", "-H", "64", "--steps", "2", "--seed", "1")


@pytest.fixture
def config_file(tmp_path, monkeypatch):
    path = tmp_path / "genimg.toml"
    monkeypatch.setenv("GENIMG_CONFIG", str(path))
    return path


def _shown(cli) -> dict:
    result = cli("config", "show", "--json")
    assert result.code == 0, result
    return json.loads(result.out)["settings"]


def test_each_level_overrides_the_one_below(cli, tmp_path, tiny_models, config_file, monkeypatch):
    assert _shown(cli)["scheduler"] == {"value": None, "source": "default"}
    assert cli("config", "set", "scheduler", "Euler").code == 0
    assert cli("config", "set", "model", str(tiny_models["sd"])).code == 0
    assert _shown(cli)["scheduler"] == {"value": "Euler", "source": f"{config_file}:2"}  # under the comment line
    monkeypatch.setenv("GENIMG_SCHEDULER", "Euler a")
    assert _shown(cli)["scheduler"]["source"] == "environment GENIMG_SCHEDULER"

    made = []

    def sampler(*flags):
        made.append(tmp_path / f"{len(made)}.png")
        out = made[-1]
        result = cli("txt2img", "a red circle", *SMALL, *flags, "-o", out)
        assert result.code == 0, result
        return read_metadata(out)["parameters"]["Sampler"]

    assert sampler() == "Euler a"  # environment over file; the model came from the file
    assert sampler("--sampler", "DPM++ 2M") == "DPM++ 2M"  # the flag over both
    monkeypatch.delenv("GENIMG_SCHEDULER")
    assert sampler() == "Euler"
    assert cli("config", "unset", "scheduler").code == 0
    assert _shown(cli)["scheduler"]["source"] == "default"
    assert config_file.read_text().count("=") == 1  # model stays


def test_model_preset_and_output_defaults_reach_the_image(cli, tmp_path, tiny_models, config_file):
    config_file.write_text(f'model = "{tiny_models["sd"]}"\npreset = "cpu"\noutput = "{tmp_path / "mine"}"\n')
    result = cli("txt2img", "a red circle", *SMALL, "--json")
    assert result.code == 0, result
    [png] = (tmp_path / "mine").glob("*.png")
    spec = read_metadata(png)["genimg"]["spec"]
    assert spec["preset"] == "cpu" and spec["model"] == str(tiny_models["sd"])
    assert json.loads(result.out)["path"] == str(png)


def test_the_upscaler_default_comes_from_the_config(cli, tmp_path, config_file):
    from PIL import Image

    Image.new("RGB", (8, 8), "red").save(tmp_path / "in.png")
    config_file.write_text('upscaler = "lanczos"\n')
    result = cli("upscale", tmp_path / "in.png", "-o", tmp_path / "out.png", "--json")
    assert result.code == 0, result
    assert json.loads(result.out)["upscaler"] == "lanczos"


@pytest.mark.parametrize("content,words", [
    ('stepz = 3\n', ("genimg.toml:1", "unknown key 'stepz'", "known keys: model")),
    ('\n\nhf_offline = "maybe"\n', ("genimg.toml:3", "hf_offline = 'maybe' must be true or false")),
    ('lora_dirs = 3\n', ("genimg.toml:1", "must be a list of folders")),
    ('model = \n', ("genimg.toml is not valid TOML", "line 1")),
])
def test_a_bad_config_file_is_one_line_with_file_and_line(cli, config_file, content, words):
    config_file.write_text(content)
    result = cli("config", "show")
    assert result.code == 2 and result.err.count("\n") == 1, result
    assert all(w in result.err for w in words), result.err


def test_config_set_checks_the_key_and_the_value(cli, config_file):
    result = cli("config", "set", "presett", "cpu")
    assert result.code == 2 and "unknown config key 'presett'" in result.err and "preset" in result.err
    result = cli("config", "set", "hf_offline", "maybe")
    assert result.code == 2 and "must be true or false" in result.err
    assert not config_file.exists()
    assert cli("config", "set", "hf_offline", "yes").code == 0 and _shown(cli)["hf_offline"]["value"] is True
    assert cli("config", "path").out.strip() == str(config_file)


def test_hub_settings_become_the_variables_huggingface_hub_reads(config_file, monkeypatch):
    import os

    from genimg.config import apply_hub_settings

    config_file.write_text('hf_endpoint = "https://hf-mirror.com"\n')
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    apply_hub_settings()
    assert os.environ["HF_ENDPOINT"] == "https://hf-mirror.com"
    monkeypatch.setenv("HF_ENDPOINT", "https://mine.example")  # the user's own variable wins
    apply_hub_settings()
    assert os.environ["HF_ENDPOINT"] == "https://mine.example"


def test_models_embeddings_and_upscalers_are_found_by_name_in_the_configured_folders(cli, tmp_path, tiny_models,
                                                                                       sd_single_file, monkeypatch):
    import shutil

    import numpy as np
    import torch
    from safetensors.torch import save_file

    from genimg.testing.images import pixels
    from genimg.testing.tiny_image_models import save_random_spandrel

    for key in ("model", "embedding", "upscaler"):
        (tmp_path / key).mkdir()
        monkeypatch.setenv(f"GENIMG_{key.upper()}_DIRS", str(tmp_path / key))
    shutil.copy(sd_single_file, tmp_path / "model" / "mine.safetensors")
    save_file({"emb_params": torch.randn(1, 32)}, str(tmp_path / "embedding" / "glowy.safetensors"))
    save_random_spandrel(tmp_path / "upscaler" / "sharp.safetensors")
    common = ("x glowy", "-W", "64", "-H", "64", "--steps", "2", "--seed", "1", "--config", tiny_models["sd"], "-o")
    assert cli("txt2img", *common, tmp_path / "a.png", "-m", "mine", "--embedding", "glowy").code == 0
    assert cli("txt2img", *common, tmp_path / "b.png", "-m", sd_single_file, "--embedding",
               tmp_path / "embedding" / "glowy.safetensors").code == 0
    assert np.array_equal(pixels(tmp_path / "a.png"), pixels(tmp_path / "b.png"))
    result = cli("upscale", tmp_path / "a.png", "--model", "sharp", "-o", tmp_path / "big.png", "--json")
    assert result.code == 0, result
    missing = cli("txt2img", "x", "-m", "theirs", "-o", tmp_path / "c.png")
    assert missing.code == 2 and "model 'theirs' is not an alias, a folder or a file" in missing.err


def test_the_users_defaults_reach_batch_rows_from_and_the_python_api(cli, tmp_path, tiny_models, config_file,
                                                                     monkeypatch):
    import genimg
    from genimg.spec import GenerationSpec

    config_file.write_text(f'model = "{tiny_models["sd"]}"\nscheduler = "Euler"\noutput = "{tmp_path / "mine"}"\n')
    monkeypatch.setenv("GENIMG_PRESET", "cpu")
    # The Python API: plan and the txt2img twin.
    planned = genimg.plan(GenerationSpec("a ring", seed=1))
    assert (planned.spec.model, planned.spec.scheduler, planned.preset.name) == (str(tiny_models["sd"]), "Euler", "cpu")
    assert genimg.plan(GenerationSpec("a ring", scheduler="DDIM", preset="cpu-bf16")).spec.scheduler == "DDIM"
    [path] = genimg.txt2img("a ring", seed=1, width=64, height=64, steps=2)
    assert path.parent == tmp_path / "mine" and read_metadata(path)["parameters"]["Sampler"] == "Euler"
    # A batch row that names no sampler, preset or folder.
    (tmp_path / "jobs.txt").write_text("a ring\n")
    result = cli("batch", tmp_path / "jobs.txt", "--steps", "2", "-W", "64", "-H", "64")
    assert result.code == 0, result
    [record] = [json.loads(line) for line in (tmp_path / "mine" / "manifest.jsonl").read_text().splitlines()[1:]]
    assert (record["settings"]["scheduler"], record["settings"]["preset"]) == ("Euler", "cpu")
    # --from an image whose record names no sampler: the user's, not the model's.
    monkeypatch.setenv("GENIMG_SCHEDULER", "DPM++ 2M")
    again = cli("txt2img", "--from", path, "-o", tmp_path / "again.png")
    assert again.code == 0, again
    assert read_metadata(tmp_path / "again.png")["parameters"]["Sampler"] == "Euler"  # the image's own wins
    source = tmp_path / "bare.png"
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("parameters", "a ring\nSteps: 2, Seed: 4, Size: 64x64")
    Image.new("RGB", (64, 64)).save(source, pnginfo=info)
    bare = cli("txt2img", "--from", source, "-o", tmp_path / "bare-again.png")
    assert bare.code == 0, bare
    assert read_metadata(tmp_path / "bare-again.png")["parameters"]["Sampler"] == "DPM++ 2M"
