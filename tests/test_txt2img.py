"""txt2img end to end through the real CLI, on tiny SD1.5, SDXL and FLUX models in every format."""

import json

import numpy as np
import pytest
from PIL import Image

from genimg.testing.images import FAMILIES, pixels

SMALL = ("-W", "64", "-H", "64", "--steps", "3")


def _model(kind, family, tiny_models, hub_models, sd_single_file):
    if kind == "folder":
        return ["--model", tiny_models[family]]
    if kind == "hub":
        return ["--model", hub_models[family]]
    return ["--model", sd_single_file, "--config", tiny_models["sd"]]


FORMATS = [(k, f) for k in ("folder", "hub") for f in FAMILIES] + [("single_file", "sd")]


@pytest.mark.parametrize("kind,family", FORMATS, ids=[f"{k}-{f}" for k, f in FORMATS])
def test_generates_png_of_the_asked_size_in_every_format(cli, tmp_path, kind, family, tiny_models, hub_models, sd_single_file):
    model = _model(kind, family, tiny_models, hub_models, sd_single_file)
    target = tmp_path / "out.png"
    result = cli("txt2img", "a red circle on a blue background", *model, "-W", "64", "-H", "48" if family != "flux" else "32",
                 "--steps", "3", "--seed", "7", "-o", target)
    assert result.code == 0, result
    with Image.open(target) as im:
        assert im.format == "PNG" and im.mode == "RGB"
        assert im.size == (64, 48 if family != "flux" else 32)
    assert "seed=7" in result.out


def test_single_file_gives_the_same_image_as_the_folder_it_came_from(cli, tmp_path, tiny_models, sd_single_file):
    a, b = tmp_path / "folder.png", tmp_path / "single.png"
    assert cli("txt2img", "x", "--model", tiny_models["sd"], *SMALL, "--seed", "3", "-o", a).code == 0
    assert cli("txt2img", "x", "--model", sd_single_file, "--config", tiny_models["sd"], *SMALL, "--seed", "3", "-o", b).code == 0
    assert np.abs(pixels(a) - pixels(b)).max() <= 1


@pytest.mark.parametrize("family", FAMILIES)
def test_same_seed_gives_identical_png_and_another_seed_a_different_one(cli, tmp_path, family, tiny_models):
    model = ("--model", tiny_models[family])
    paths = [tmp_path / n for n in ("a.png", "b.png", "c.png")]
    for path, seed in zip(paths, (11, 11, 12)):
        assert cli("txt2img", "a green star", *model, *SMALL, "--seed", seed, "-o", path).code == 0
    assert np.array_equal(pixels(paths[0]), pixels(paths[1]))
    assert np.abs(pixels(paths[0]) - pixels(paths[2])).mean() > 1


def test_count_uses_consecutive_seeds_each_reproducible_alone(cli, tmp_path, tiny_models):
    folder = tmp_path / "many"
    result = cli("txt2img", "a blue square", "--model", tiny_models["sd"], *SMALL, "--seed", "100", "--count", "3",
                 "-o", f"{folder}/", "--json")
    assert result.code == 0, result
    records = [json.loads(line) for line in result.out.splitlines()]
    assert [r["seed"] for r in records] == [100, 101, 102]
    alone = tmp_path / "alone.png"
    assert cli("txt2img", "a blue square", "--model", tiny_models["sd"], *SMALL, "--seed", "102", "-o", alone).code == 0
    assert np.array_equal(pixels(records[2]["path"]), pixels(alone))


def test_batched_images_match_unbatched_ones(cli, tmp_path, tiny_models):
    one, two = tmp_path / "one", tmp_path / "two"
    args = ("a blue square", "--model", tiny_models["sd"], *SMALL, "--seed", "40", "--count", "2", "--json")
    first = cli("txt2img", *args, "-o", f"{one}/")
    second = cli("txt2img", *args, "--batch-size", "2", "-o", f"{two}/")
    assert first.code == 0 and second.code == 0
    for a, b in zip(first.out.splitlines(), second.out.splitlines()):
        # Batched convolutions may round differently: allow 2 of 255 per channel.
        assert np.abs(pixels(json.loads(a)["path"]) - pixels(json.loads(b)["path"])).max() <= 2


def test_random_seed_is_reported_and_reproduces_the_image(cli, tmp_path, tiny_models):
    first = cli("txt2img", "a dot", "--model", tiny_models["sd"], *SMALL, "-o", tmp_path / "r.png", "--json")
    assert first.code == 0
    seed = json.loads(first.out)["seed"]
    again = cli("txt2img", "a dot", "--model", tiny_models["sd"], *SMALL, "--seed", seed, "-o", tmp_path / "s.png")
    assert again.code == 0
    assert np.array_equal(pixels(tmp_path / "r.png"), pixels(tmp_path / "s.png"))


def test_scheduler_names_pick_the_diffusers_class_and_settings_without_stacking(tiny_models):
    from genimg.factory import PipelineFactory
    from genimg.generation import generate
    from genimg.spec import GenerationSpec

    factory = PipelineFactory()
    spec = GenerationSpec("a tree", model=str(tiny_models["sd"]), width=64, height=64, steps=3, seed=9)
    karras = generate(spec.replace(scheduler="DPM++ 2M Karras"), factory)[0]
    scheduler = factory.current.base.scheduler
    assert type(scheduler).__name__ == "DPMSolverMultistepScheduler" and scheduler.config.use_karras_sigmas
    euler = generate(spec.replace(scheduler="euler"), factory)[0]
    scheduler = factory.current.base.scheduler
    assert type(scheduler).__name__ == "EulerDiscreteScheduler" and not scheduler.config.use_karras_sigmas
    assert euler.spec.scheduler == "Euler"
    assert not np.array_equal(np.asarray(karras.image), np.asarray(euler.image))


def test_existing_output_is_kept_unless_overwrite(cli, tmp_path, tiny_models):
    target = tmp_path / "keep.png"
    target.write_bytes(b"precious")
    result = cli("txt2img", "x", "--model", tiny_models["sd"], *SMALL, "--seed", "1", "-o", target)
    assert result.code == 2 and "already exists" in result.err
    assert target.read_bytes() == b"precious"
    assert cli("txt2img", "x", "--model", tiny_models["sd"], *SMALL, "--seed", "1", "-o", target, "--overwrite").code == 0
    assert target.read_bytes().startswith(b"\x89PNG")


def test_prompt_derived_names_are_sanitised(cli, tmp_path, tiny_models):
    result = cli("txt2img", "../../etc/passwd: a <cat>?", "--model", tiny_models["sd"], *SMALL, "--seed", "2",
                 "-o", f"{tmp_path}/", "--json")
    assert result.code == 0, result
    path = json.loads(result.out)["path"]
    assert list(tmp_path.iterdir()) == [tmp_path / "etc_passwd_a_cat-2.png"]
    assert path.endswith("etc_passwd_a_cat-2.png")


def test_name_template_fields(cli, tmp_path, tiny_models):
    result = cli("txt2img", "a moon", "--model", tiny_models["sd"], *SMALL, "--seed", "8", "--count", "2",
                 "-o", tmp_path / "{index}_{seed}_{width}x{height}.png")
    assert result.code == 0, result
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0_8_64x64.png", "1_9_64x64.png"]


def test_no_temporary_files_are_left_behind(cli, tmp_path, tiny_models):
    assert cli("txt2img", "x", "--model", tiny_models["sd"], *SMALL, "--count", "2", "-o", f"{tmp_path}/").code == 0
    assert all(p.suffix == ".png" and not p.name.startswith(".") for p in tmp_path.iterdir())


def test_python_api_matches_the_cli(cli, tmp_path, tiny_models):
    import genimg

    images = genimg.generate(genimg.GenerationSpec("a red circle", model=str(tiny_models["sd"]), width=64, height=64,
                                                   steps=3, seed=21))
    assert cli("txt2img", "a red circle", "--model", tiny_models["sd"], *SMALL, "--seed", "21", "-o", tmp_path / "c.png").code == 0
    assert np.array_equal(np.asarray(images[0].image, dtype=np.int16), pixels(tmp_path / "c.png"))
    paths = genimg.txt2img("a red circle", output=tmp_path / "api.png", model=str(tiny_models["sd"]), width=64,
                           height=64, steps=3, seed=21)
    assert np.array_equal(pixels(paths[0]), pixels(tmp_path / "c.png"))


def test_flux_negative_prompt_is_ignored_with_a_warning(cli, tmp_path, tiny_models):
    result = cli("txt2img", "x", "--negative", "blurry", "--model", tiny_models["flux"], *SMALL, "--seed", "3",
                 "-o", tmp_path / "f.png")
    assert result.code == 0
    assert "warning: FLUX.1 has no negative prompt; --negative is ignored" in result.err
    plain = cli("txt2img", "x", "--model", tiny_models["flux"], *SMALL, "--seed", "3", "-o", tmp_path / "plain.png")
    assert plain.code == 0 and np.array_equal(pixels(tmp_path / "f.png"), pixels(tmp_path / "plain.png"))


def test_family_defaults_apply(tmp_path, tiny_models):
    from genimg.generation import plan as prepare
    from genimg.spec import GenerationSpec

    job = prepare(GenerationSpec("x", model="flux-schnell"))
    assert (job.spec.steps, job.spec.guidance, job.spec.width, job.ref.family) == (4, 0.0, 1024, "flux")
    job = prepare(GenerationSpec("x", model="flux-dev"))
    assert job.spec.guidance == 3.5
    job = prepare(GenerationSpec("x", model="sdxl"))
    assert (job.spec.width, job.spec.height) == (1024, 1024)
    job = prepare(GenerationSpec("x", model="sd15"))
    assert (job.spec.width, job.spec.scheduler) == (512, "DPM++ 2M Karras")
