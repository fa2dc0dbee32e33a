"""Control preprocessors (controlnet-aux and a transformers depth model), `genimg preprocess`, --save-control.

The annotators have their real architectures and random weights, installed in the offline Hugging
Face cache where `hf download lllyasviel/Annotators …` would put them."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from genimg.testing.images import pixels


@pytest.fixture(scope="session")
def annotators():
    from genimg.testing.annotators import install_annotators, install_depth_model, install_segmenter

    cache = Path(os.environ["HF_HUB_CACHE"])
    install_annotators(cache)
    install_depth_model(cache)
    install_segmenter(cache)


@pytest.fixture
def photo(tmp_path):
    from skimage import data

    path = tmp_path / "astronaut.png"
    Image.fromarray(data.astronaut()).resize((96, 80)).save(path)
    return path


def _run(cli, *args):
    result = cli("preprocess", *args, "--json")
    assert result.code == 0, result
    return [json.loads(line) for line in result.out.splitlines()]


@pytest.mark.parametrize("kind,pickle", [("softedge", True), ("scribble", True), ("lineart", True), ("depth", False),
                                         ("shuffle", False), ("canny", False), ("tile", False),
                                         ("seg", False)])
def test_each_preprocessor_makes_a_map_the_size_of_the_image(cli, tmp_path, annotators, photo, kind, pickle):
    flags = ("--allow-pickle",) if pickle else ()
    [row] = _run(cli, kind, photo, "-o", tmp_path / "a", *flags)
    path = Path(row["path"])
    assert path == tmp_path / "a" / f"astronaut-{kind}.png"
    with Image.open(path) as im:
        assert im.size == (96, 80) and im.mode == "RGB"
    first = pixels(path)
    assert first.std() > 1  # a map, not a blank
    [again] = _run(cli, kind, photo, "-o", tmp_path / "b", *flags)
    assert np.array_equal(pixels(Path(again["path"])), first)  # the same image gives the same map (shuffle is seeded)
    if kind != "tile":  # a tile map is the image itself unless --set down_sampling_rate softens it
        assert not np.array_equal(first, np.asarray(Image.open(photo).convert("RGB"), dtype=np.int16))


def test_maps_differ_by_type(cli, tmp_path, annotators, photo):
    maps = {kind: pixels(Path(_run(cli, kind, photo, "-o", tmp_path, "--allow-pickle")[0]["path"]))
            for kind in ("softedge", "scribble", "lineart", "canny")}
    kinds = list(maps)
    for i, a in enumerate(kinds):
        for b in kinds[i + 1:]:
            assert np.abs(maps[a] - maps[b]).mean() > 1, (a, b)


@pytest.mark.parametrize("kind,words", [
    ("softedge", ("pickle files", "ControlNetHED.pth", "--allow-pickle")),
    ("normal", ("needs scannet.pt from lllyasviel/Annotators", "hf download lllyasviel/Annotators scannet.pt")),
    ("openpose", ("hf download lllyasviel/Annotators body_pose_model.pth hand_pose_model.pth facenet.pth",)),
    ("edges", ("unknown preprocessor 'edges'",)),
])
def test_what_a_preprocessor_lacks_is_one_line(cli, tmp_path, annotators, photo, kind, words):
    flags = () if kind == "softedge" else ("--allow-pickle",)
    result = cli("preprocess", kind, photo, "-o", tmp_path / "out", *flags)
    assert result.code == 2 and result.err.count("\n") == 1, result
    assert all(w in result.err for w in words), result.err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_missing_package_is_named(cli, tmp_path, photo, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "mediapipe" else real(n, *a))
    result = cli("preprocess", "mediapipe_face", photo, "-o", tmp_path)
    assert result.code == 2 and "pip install mediapipe" in result.err, result


def test_outputs_are_checked_before_anything_runs(cli, tmp_path, photo):
    (tmp_path / "astronaut-canny.png").write_bytes(b"mine")
    result = cli("preprocess", "canny", photo, "-o", tmp_path)
    assert result.code == 2 and "already exists" in result.err
    assert (tmp_path / "astronaut-canny.png").read_bytes() == b"mine"
    result = cli("preprocess", "canny", photo, photo, "-o", tmp_path / "one.png")
    assert result.code == 2 and "names one file" in result.err


def test_a_preprocessed_control_steers_generation_and_is_saved_beside_it(cli, tmp_path, tiny_models, tiny_controlnets,
                                                                          annotators, photo):
    common = ("txt2img", "a red circle", "-m", tiny_models["sd"], "-W", "64", "-H", "64", "--steps", "2", "--seed", "1",
              "--allow-pickle")
    control = f"softedge={photo},model={tiny_controlnets['sd']}"
    result = cli(*common, "--control", control, "--save-control", "-o", tmp_path / "on.png")
    assert result.code == 0, result
    saved = tmp_path / "on-control0-softedge.png"
    with Image.open(saved) as im:
        assert im.size == (64, 64)
    assert cli(*common, "--control", control + ",scale=0", "-o", tmp_path / "off.png").code == 0
    assert np.abs(pixels(tmp_path / "on.png") - pixels(tmp_path / "off.png")).mean() > 0.5
    from genimg.output.metadata import read_metadata

    assert "Module: softedge" in read_metadata(tmp_path / "on.png")["parameters"]["ControlNet 0"]


def test_the_help_names_every_preprocessor_in_the_table(cli):
    from genimg.control import preprocessors

    shown = " ".join(cli("preprocess", "--help").out.split())
    assert all(name in shown for name in preprocessors())


def test_the_help_names_every_setting_in_the_table(cli):
    from genimg.control import preprocessors

    shown = " ".join(cli("preprocess", "--help").out.split())
    assert all(key in shown for entry in preprocessors().values() for key in entry.settable())


def test_canny_thresholds_and_a_detectors_settings_change_the_map(cli, tmp_path, annotators, photo):
    def edges(*settings, kind="canny", flags=()):
        out = tmp_path / f"{kind}-{'-'.join(settings) or 'default'}.png"
        assert _run(cli, kind, photo, "-o", out, "--overwrite", *flags, *(a for s in settings for a in ("--set", s)))
        return pixels(out)

    default, low = (edges() > 0).mean(), (edges("low=10", "high=30") > 0).mean()
    high = (edges("low=400", "high=600") > 0).mean()
    assert low > default > high > 0
    assert np.array_equal(edges("low=100", "high=200"), edges())  # the defaults are A1111's
    original = np.asarray(Image.open(photo).convert("RGB"), dtype=np.int16)
    assert np.array_equal(edges(kind="tile"), original)
    soft = edges("down_sampling_rate=4", kind="tile")
    assert 1 < np.abs(soft - original).mean() < 40 and soft.std() > 10
    assert not np.array_equal(edges("resolution=128", kind="softedge", flags=("--allow-pickle",)),
                              edges(kind="softedge", flags=("--allow-pickle",)))


def test_control_settings_steer_generation_and_come_back_with_from(cli, tmp_path, tiny_models, tiny_controlnets, photo):
    common = ("txt2img", "x", "-m", tiny_models["sd"], "-W", "64", "-H", "64", "--steps", "2", "--seed", "3")
    control = f"canny={photo},model={tiny_controlnets['sd']}"
    assert cli(*common, "--control", control, "-o", tmp_path / "a.png").code == 0
    result = cli(*common, "--control", control + ",low=10,high=30", "-o", tmp_path / "b.png", "--json")
    assert result.code == 0, result
    assert json.loads(result.out)["settings"]["controls"][0]["settings"] == {"low": 10, "high": 30}
    assert not np.array_equal(pixels(tmp_path / "a.png"), pixels(tmp_path / "b.png"))
    assert cli("txt2img", "--from", tmp_path / "b.png", "-o", tmp_path / "c.png").code == 0
    assert np.array_equal(pixels(tmp_path / "b.png"), pixels(tmp_path / "c.png"))


@pytest.mark.parametrize("args,words", [
    (("preprocess", "canny", "{photo}", "--set", "lo=5"), "canny has no setting 'lo' (did you mean 'low'?); it takes low, high"),
    (("preprocess", "canny", "{photo}", "--set", "low"), "--set 'low': write KEY=VALUE"),
    (("preprocess", "none", "{photo}", "--set", "low=5"), "none has no setting 'low'; it takes no settings"),
    (("txt2img", "x", "--control", "canny={photo},low=abc,model={cn}"), "low must be a whole number (got 'abc')"),
    (("txt2img", "x", "--control", "canny={photo},hihg=2,model={cn}"),
     "unknown key 'hihg' (did you mean 'high'?); known: model, scale, start, end, mode, and canny's settings low, high"),
    (("txt2img", "x", "--control", "softedge={photo},resolution=8,model={cn}"), "resolution must be at least 64"),
])
def test_bad_settings_are_one_line(cli, tmp_path, tiny_models, tiny_controlnets, photo, args, words):
    args = [str(a).format(photo=photo, cn=tiny_controlnets["sd"]) for a in args]
    extra = ("-m", str(tiny_models["sd"]), "-W", "64", "-H", "64") if args[0] == "txt2img" else ()
    result = cli(*args, *extra, "-o", tmp_path / "out")
    assert result.code == 2 and result.err.count("\n") == 1, result
    assert words in result.err
    assert not (tmp_path / "out").exists()


def test_a_segmentation_map_is_painted_in_the_ade20k_palette(cli, tmp_path, annotators, photo):
    from genimg.control import PALETTE
    from genimg.datafiles import load_toml

    [row] = _run(cli, "seg", photo, "-o", tmp_path)
    palette = load_toml(PALETTE)["colours"]
    found = {tuple(c) for c in pixels(Path(row["path"])).reshape(-1, 3).tolist()}
    assert len(palette) == 150 and found <= {tuple(c) for c in palette}  # every pixel one of the classes' colours
    assert len(found) > 1  # more than one class found in a photograph


def test_seeded_maps_made_at_once_on_two_lanes_are_the_maps_each_makes_alone():
    """A server's device lanes preprocess side by side; shuffle draws from numpy's process-wide generator."""
    import threading

    import numpy as np
    from PIL import Image

    from genimg.control import preprocess

    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    alone = {seed: np.asarray(preprocess(image, "shuffle", detect_resolution=64, seed=seed)) for seed in (1, 2)}
    assert not np.array_equal(alone[1], alone[2])
    made = {1: [], 2: []}

    def lane(seed):
        for _ in range(15):
            made[seed].append(np.asarray(preprocess(image, "shuffle", detect_resolution=64, seed=seed)))

    lanes = [threading.Thread(target=lane, args=(seed,)) for seed in (1, 2)]
    for thread in lanes:
        thread.start()
    for thread in lanes:
        thread.join()
    assert all(np.array_equal(m, alone[seed]) for seed in (1, 2) for m in made[seed])


def test_a_servers_warm_models_count_a_preprocessors_weight_files(annotators):
    from genimg.control import weights_folder
    from genimg.preprocessors import preprocessors
    from genimg.serve.warm import preprocessor_bytes

    entry = preprocessors()["softedge"]
    folder = weights_folder(entry, allow_pickle=True)
    assert preprocessor_bytes("softedge") == sum((folder / f).stat().st_size for f in entry.files) > 1000
    assert preprocessor_bytes("canny") == 0  # no weights
