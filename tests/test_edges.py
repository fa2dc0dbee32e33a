"""Small defects of the spine's second pass, each pinned: --from across tasks, styles as A1111 applies
them, prompts A1111 itself chokes on, and commands that ignored or overwrote what they were given."""

import json

import pytest
from PIL import Image

from genimg.output.metadata import read_metadata


def test_img2img_from_a_hires_txt2img_png_takes_its_settings_but_not_its_hires(cli, tmp_path):
    made = cli("txt2img", "a star", "--seed", "2", "--steps", "4", "--hires", "2", "--hires-upscaler", "lanczos",
               "-o", tmp_path / "h.png")
    assert made.code == 0, made
    again = cli("img2img", tmp_path / "h.png", "--from", tmp_path / "h.png", "--strength", "0.5",
                "-o", tmp_path / "i.png", "--json")
    assert again.code == 0, again
    settings = json.loads(again.out)["settings"]
    assert "hires" not in settings and settings["prompt"] == "a star" and settings["seed"] == 2
    assert Image.open(tmp_path / "i.png").size == (128, 128)  # the input's size


def test_a_styles_negative_with_a_placeholder_takes_yours_there_and_a_quoted_name_may_hold_commas(
        cli, tmp_path, tiny_models, monkeypatch):
    config = tmp_path / "config"
    (config / "styles").mkdir(parents=True)
    monkeypatch.setenv("GENIMG_CONFIG_DIR", str(config))
    (config / "styles" / "mine.csv").write_text(
        'name,prompt,negative_prompt\n"Sunny, warm","{prompt}, golden hour","blurry, {prompt}, sunny"\n')
    result = cli("txt2img", "a lake", "-m", tiny_models["sd"], "-W", "64", "-H", "64", "--steps", "2",
                 "--style", '"Sunny, warm"', "-n", "people", "-o", tmp_path / "s.png", "--json")
    assert result.code == 0, result
    params = read_metadata(tmp_path / "s.png")["parameters"]
    assert params["prompt"] == "a lake, golden hour" and params["negative"] == "blurry, people, sunny"
    assert json.loads(result.out)["settings"]["styles"] == ['"Sunny, warm"']
    again = cli("txt2img", "--from", tmp_path / "s.png", "-o", tmp_path / "again.png")
    assert again.code == 0 and read_metadata(tmp_path / "again.png")["parameters"]["prompt"] == "a lake, golden hour"


def test_a_weight_without_a_number_is_read_as_text_with_a_warning(cli, tmp_path, tiny_models):
    from genimg.prompting.weighting import parse

    said = []
    assert [(f.text, f.weight) for f in parse("a (red:.) fox", said.append)] == \
        [("a ", 1.0), ("red:.", pytest.approx(1.1)), (" fox", 1.0)]
    assert said and "has no number after its colon" in said[0]
    result = cli("txt2img", "a (red:.) fox", "-m", tiny_models["sd"], "-W", "64", "-H", "64", "--steps", "2",
                 "--seed", "1", "-o", tmp_path / "f.png")
    assert result.code == 0 and "has no number after its colon" in result.err, result
    assert Image.open(tmp_path / "f.png").size == (64, 64)


def test_learn_sample_does_not_overwrite_and_demo_controlnet_refuses_zero_steps(cli, tmp_path):
    from genimg.learn.train_ddpm import DDPMConfig, train_ddpm

    run = tmp_path / "run"
    train_ddpm(run, DDPMConfig(dataset="digits", size=8, epochs=1, batch=64, base=8, mults=(1, 2), timesteps=20,
                               limit=64, sample_every=1))
    first = cli("learn", "sample", run, "--count", "4", "--steps", "2")
    assert first.code == 0, first
    second = cli("learn", "sample", run, "--count", "4", "--steps", "2")
    assert second.code == 2 and "already exists; pass --overwrite" in second.err, second
    assert cli("learn", "sample", run, "--count", "4", "--steps", "2", "--overwrite").code == 0
    zero = cli("learn", "demo-controlnet", "-o", tmp_path / "cn", "--steps", "0")
    assert zero.code == 2 and "--steps must be at least 1" in zero.err and not (tmp_path / "cn").exists(), zero


def test_a_dataset_that_does_not_exist_is_said_before_its_labels(cli, tmp_path):
    result = cli("learn", "ddpm", "--dataset", "nosuch", "-o", tmp_path / "run")
    assert result.code == 2 and "'nosuch' is neither one of digits" in result.err and "labels" not in result.err


def test_a_used_port_is_one_line_naming_it_and_port_0(cli, tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli("serve", "--port", port, "-o", tmp_path / "served")
    assert result.code == 1 and f"127.0.0.1:{port}" in result.err and "--port 0" in result.err, result
    assert result.err.count("\n") == 1


def test_a_toml_jobs_bad_setting_is_named_at_its_own_line(cli, tmp_path):
    (tmp_path / "jobs.toml").write_text('[defaults]\nsteps = 2\n\n[[jobs]]\nprompt = "a ring"\ncfg = "lots"\n\n'
                                        '[[jobs]]\nprompt = "a dot"\nsteps = "many"\n')
    result = cli("batch", tmp_path / "jobs.toml", "--check", "-o", tmp_path / "out")
    assert result.code == 2
    assert "jobs.toml:6: guidance must be a number" in result.err and "jobs.toml:10: steps must be" in result.err


def test_an_unknown_wildcard_is_our_one_line_without_the_librarys_first(cli, tmp_path):
    (tmp_path / "w.txt").write_text("a __nosuchwild__ ring\n")
    result = cli("batch", tmp_path / "w.txt", "--check", "-o", tmp_path / "out")
    assert result.code == 2 and result.err.startswith("genimg batch: error: w.txt:1: unknown wildcard"), result.err


def test_a_control_the_demo_model_has_no_controlnet_for_says_so_without_a_download(cli, tmp_path):
    from PIL import Image

    Image.new("RGB", (64, 64), "red").save(tmp_path / "red.png")
    result = cli("txt2img", "x", "--control", f"depth={tmp_path / 'red.png'}", "-o", tmp_path / "x.png")
    assert result.code == 2 and "demo model has ControlNets for canny, none only" in result.err, result
    assert "hf download" not in result.err and "lllyasviel" not in result.err


def test_an_uncached_alias_offline_is_our_line_not_huggingface_hubs_advice(cli, tmp_path):
    result = cli("txt2img", "x", "-m", "sd15", "-o", tmp_path / "x.png")  # the tests' hub cache is empty and offline
    assert result.code == 2 and "sd15 (stable-diffusion-v1-5/stable-diffusion-v1-5) is not in the Hugging Face cache" \
        in result.err and "local_files_only" not in result.err, result


def test_a_size_auto_cannot_take_names_the_preset_as_autos_choice(cli, tmp_path):
    result = cli("txt2img", "x", "-W", "4096", "-H", "4096", "-o", tmp_path / "x.png")
    assert result.code == 2 and "(what --preset auto runs this model as here)" in result.err, result
    named = cli("txt2img", "x", "-W", "4096", "-H", "4096", "--preset", "cpu", "-o", tmp_path / "x.png")
    assert named.code == 2 and "more than preset cpu handles" in named.err
