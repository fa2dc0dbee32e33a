"""What a new user trips on, each one line and the right exit code: folders where files are expected,
tiny inputs, settings that name nothing, files by line, counts that add up, plain words."""


import pytest
from PIL import Image

FAST = ("-W", "64", "-H", "64", "--steps", "2", "--seed", "1")


@pytest.mark.parametrize("args,words", [
    (("info", "{dir}"), "is a folder; give a PNG file"),
    (("img2img", "{dir}", "x"), "is a folder; give an image file in it"),
    (("txt2img", "--from", "{dir}"), "is a folder; give an image file in it"),
    (("batch", "{dir}"), "is a folder; give one batch file (it holds jobs.txt)"),
])
def test_a_folder_where_a_file_is_expected_is_said_to_be_one(cli, tmp_path, tiny_models, args, words):
    (tmp_path / "jobs.txt").write_text("a\n")
    result = cli(*(a.format(dir=tmp_path) for a in args), "-m", tiny_models["sd"]) if args[0] != "info" \
        else cli(*(a.format(dir=tmp_path) for a in args))
    assert result.code == 2 and words in result.err and result.err.count("\n") == 1, result


def test_an_input_below_the_models_grid_is_refused_not_silently_blown_up(cli, tmp_path, tiny_models):
    Image.new("RGB", (1, 1), "red").save(tmp_path / "dot.png")
    result = cli("img2img", tmp_path / "dot.png", "x", "-m", tiny_models["sd"], "--steps", "2", "-o", tmp_path / "o.png")
    assert result.code == 2 and "the input is 1x1, smaller than the model's 8-pixel grid" in result.err, result
    scaled = cli("img2img", tmp_path / "dot.png", "x", "-m", tiny_models["sd"], "--steps", "2", "-W", "64",
                 "-o", tmp_path / "o.png")
    assert scaled.code == 0 and Image.open(tmp_path / "o.png").size == (64, 64), scaled


def test_upscale_takes_a_folder_holding_one_upscaler_file(cli, tmp_path):
    import shutil

    from genimg.upscale.models import MODELS_DIR

    folder = tmp_path / "my-upscaler"
    folder.mkdir()
    shutil.copy(next((MODELS_DIR / "demo-upscaler").glob("*.safetensors")), folder)
    Image.new("RGB", (16, 16), "red").save(tmp_path / "in.png")
    result = cli("upscale", tmp_path / "in.png", "--model", folder, "-o", tmp_path / "out.png")
    assert result.code == 0 and Image.open(tmp_path / "out.png").size == (64, 64), result


def test_config_set_checks_what_it_names_and_unset_says_when_nothing_was_set(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("GENIMG_CONFIG", str(tmp_path / "genimg.toml"))
    for key, value, words in (("model", "nosuch", "model 'nosuch' is not an alias"),
                              ("preset", "3gb", "unknown preset '3gb'"),
                              ("scheduler", "Eular a", "did you mean 'Euler a'"),
                              ("device", "gpu", "device 'gpu' is not one torch names")):
        result = cli("config", "set", key, value)
        assert result.code == 2 and words in result.err, result
    assert not (tmp_path / "genimg.toml").exists()
    assert cli("config", "set", "preset", "cpu").code == 0
    result = cli("config", "unset", "model")
    assert result.code == 0 and "model was not set" in result.out
    assert "removed" in cli("config", "unset", "preset").out


def test_a_bad_model_from_the_environment_is_said_to_come_from_there(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("GENIMG_MODEL", "nosuch")
    result = cli("txt2img", "x", "-o", tmp_path / "a.png")
    assert result.code == 2 and "(the model setting from environment GENIMG_MODEL;" in result.err, result
    assert result.err.count("\n") == 1  # and no "using the built-in demo model" note before it


def test_models_rm_of_the_built_in_model_and_with_no_cache_is_one_line(cli, tmp_path, monkeypatch):
    from huggingface_hub import constants

    demo = cli("models", "rm", "demo", "--yes")
    assert demo.code == 2 and "built into genimg" in demo.err, demo
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "no-cache"))
    none = cli("models", "rm", "org/thing", "--yes")
    assert none.code == 2 and "does not exist yet" in none.err and none.err.count("\n") == 1, none


def test_yaml_and_toml_rows_are_named_by_their_line(cli, tmp_path, tiny_models):
    (tmp_path / "jobs.yaml").write_text(f"defaults:\n  model: {tiny_models['sd']}\n  steps: 2\njobs:\n"
                                        "  - prompt: a ring\n  - prompt: bars\n    cfg: lots\n")
    result = cli("batch", tmp_path / "jobs.yaml", "--check", "-o", tmp_path / "out")
    assert result.code == 2 and "jobs.yaml:6:" in result.err, result
    (tmp_path / "jobs.toml").write_text(f'[defaults]\nmodel = "{tiny_models["sd"]}"\n\n[[jobs]]\nprompt = "a"\n\n'
                                        '[[jobs]]\nprompt = "b"\nsteps = 0\n')
    result = cli("batch", tmp_path / "jobs.toml", "--check", "-o", tmp_path / "out")
    assert result.code == 2 and "jobs.toml:7:" in result.err, result


def test_batch_check_counts_rows_jobs_and_images_that_add_up(cli, tmp_path, tiny_models):
    (tmp_path / "jobs.csv").write_text(f"prompt,count,model\na,2,{tiny_models['sd']}\na,2,{tiny_models['sd']}\n"
                                       f"b,1,{tiny_models['sd']}\nc,1,nosuch-model\n")
    result = cli("batch", tmp_path / "jobs.csv", "--check", "-o", tmp_path / "out")
    assert result.code == 2, result
    assert "4 rows: 3 jobs ready (5 images, 0 of them made already), 1 with problems" in result.out, result
    (tmp_path / "typo.csv").write_text("prompt,sampeler\na,Euler\n")
    typo = cli("batch", tmp_path / "typo.csv", "--check", "-o", tmp_path / "out")
    assert typo.code == 2 and "did you mean 'sampler'" in typo.err, typo


def test_doctor_prints_plain_words_not_python_reprs(cli):
    result = cli("doctor")
    assert result.code == 0 and "{'" not in result.out and "['" not in result.out, result.out


def test_a_missing_preprocessor_is_said_before_pickle_is_asked_for(cli, tmp_path, monkeypatch):
    from huggingface_hub import constants

    # an empty cache and config folder: other tests install annotator weights into the shared ones
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("GENIMG_CONFIG_DIR", str(tmp_path / "config"))
    Image.new("RGB", (64, 64)).save(tmp_path / "in.png")
    result = cli("preprocess", "softedge", tmp_path / "in.png", "-o", tmp_path / "out")
    assert result.code == 2 and "needs" in result.err and "hf download" in result.err, result
    assert "--allow-pickle" not in result.err
