"""Captioning: a caption file per image (kohya's layout) from a BLIP model of transformers' real classes,
built offline; lora-train --caption auto; A1111's interrogate."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="module")
def tiny_blip(tmp_path_factory):
    from genimg.testing.tiny_models import save_tiny_blip

    return save_tiny_blip(tmp_path_factory.mktemp("blip") / "tiny-blip")


def _images(folder, n=3):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(folder / f"p{i}.png")
    return folder


def _blip_caption(tiny_blip, path) -> str:
    """What transformers' own BLIP says of the image, greedily."""
    from transformers import BlipForConditionalGeneration, BlipProcessor

    processor, model = BlipProcessor.from_pretrained(tiny_blip), BlipForConditionalGeneration.from_pretrained(tiny_blip)
    ids = model.generate(**processor(images=Image.open(path).convert("RGB"), return_tensors="pt"), max_new_tokens=40)
    return processor.decode(ids[0], skip_special_tokens=True).strip()


def test_caption_writes_a_txt_beside_each_uncaptioned_image(cli, tmp_path, tiny_blip):
    data = _images(tmp_path / "data")
    (data / "p1.txt").write_text("my own words\n")
    result = cli("caption", data, "--model", tiny_blip, "--prefix", "sks dog", "--json")
    assert result.code == 0, result
    rows = [json.loads(line) for line in result.out.splitlines()]
    assert [(r["image"].rsplit("/", 1)[1], r["skipped"]) for r in rows] == [("p0.png", False), ("p1.png", True),
                                                                              ("p2.png", False)]
    assert (data / "p1.txt").read_text() == "my own words\n"  # a caption already there is kept
    expected = _blip_caption(tiny_blip, data / "p0.png")
    assert expected and (data / "p0.txt").read_text() == f"sks dog, {expected}\n"
    again = cli("caption", data, "--model", tiny_blip, "--overwrite", "--json")
    assert again.code == 0 and (data / "p1.txt").read_text() == _blip_caption(tiny_blip, data / "p1.png") + "\n"


def test_a_missing_folder_or_model_is_one_line(cli, tmp_path, tiny_models):
    result = cli("caption", tmp_path / "nothing")
    assert result.code == 2 and "is not a folder of images" in result.err
    result = cli("caption", _images(tmp_path / "d", 1), "--model", "blip")
    assert result.code == 2 and "hf download Salesforce/blip-image-captioning-base" in result.err
    result = cli("caption", tmp_path / "d", "--model", tiny_models["sd"])
    assert result.code == 2 and "config.json" in result.err


def test_lora_train_caption_auto_captions_first_then_trains(cli, tmp_path, tiny_models, tiny_blip):
    data = _images(tmp_path / "data", 2)
    result = cli("lora-train", data, "--model", tiny_models["sd"], "-o", tmp_path / "run", "--caption", "auto",
                 "--captioner", tiny_blip, "--max-steps", "1", "--resolution", "64", "--rank", "2", "--json")
    assert result.code == 0, result
    assert (data / "p0.txt").read_text() == _blip_caption(tiny_blip, data / "p0.png") + "\n"
    assert json.loads(result.out.splitlines()[-1])["steps"] == 1


def test_a1111s_interrogate_answers_the_servers_captioner(tmp_path, tiny_blip, monkeypatch):
    import base64

    from fastapi.testclient import TestClient

    from genimg.serve.app import create_app
    from genimg.serve.jobs import Worker

    monkeypatch.setenv("GENIMG_CAPTIONER", str(tiny_blip))
    data = _images(tmp_path / "d", 1)
    client = TestClient(create_app(Worker(tmp_path / "served")))
    image = base64.b64encode((data / "p0.png").read_bytes()).decode()
    answer = client.post("/sdapi/v1/interrogate", json={"image": image, "model": "clip"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["caption"] == _blip_caption(tiny_blip, data / "p0.png")
    tags = client.post("/sdapi/v1/interrogate", json={"image": image, "model": "deepdanbooru"})
    assert tags.status_code == 400 and "deepdanbooru" in tags.json()["error"]
