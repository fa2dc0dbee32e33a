"""Control preprocessors (controlnet-aux and a transformers depth model), `genimg preprocess`, --save-control.

The annotators have their real architectures and random weights, installed in the offline Hugging
Face cache where `hf download lllyasviel/Annotators …` would put them."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import pixels


@pytest.fixture(scope="session")
def annotators():
    from genimg.testing.annotators import install_annotators, install_depth_model

    cache = Path(os.environ["HF_HUB_CACHE"])
    install_annotators(cache)
    install_depth_model(cache)


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
                                         ("shuffle", False), ("canny", False)])
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
