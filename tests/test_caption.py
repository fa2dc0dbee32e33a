"""Captioning: a caption file per image (kohya's layout) from BLIP and Florence-2 models of transformers' real
classes and a WD14 tagger in timm's format, built offline; lora-train --caption auto; A1111's interrogate."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="module")
def tiny_blip(tmp_path_factory):
    from genimg.testing.tiny_image_models import save_tiny_blip

    return save_tiny_blip(tmp_path_factory.mktemp("blip") / "tiny-blip")


@pytest.fixture(scope="module")
def tiny_florence(tmp_path_factory):
    from genimg.testing.tiny_image_models import save_tiny_florence2

    return save_tiny_florence2(tmp_path_factory.mktemp("florence") / "tiny-florence2")


@pytest.fixture(scope="module")
def tiny_wd14(tmp_path_factory):
    from genimg.testing.tiny_image_models import save_tiny_wd14

    return save_tiny_wd14(tmp_path_factory.mktemp("wd14") / "tiny-wd14")


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
    tags = client.post("/sdapi/v1/interrogate", json={"image": image, "model": "no-such"})
    assert tags.status_code == 400 and "'no-such' is not one genimg has" in tags.json()["error"]


def _florence_caption(folder, path) -> str:
    """What transformers' Florence-2 says of the image for its detailed-caption task, as its model card asks."""
    from transformers import Florence2ForConditionalGeneration, Florence2Processor

    processor = Florence2Processor.from_pretrained(folder)
    model = Florence2ForConditionalGeneration.from_pretrained(folder).eval()
    inputs = processor(images=Image.open(path).convert("RGB"), text="<DETAILED_CAPTION>", return_tensors="pt")
    ids = model.generate(**inputs, max_new_tokens=256, num_beams=3, do_sample=False)
    return processor.batch_decode(ids, skip_special_tokens=True)[0].strip()


def test_florence2_captions_as_transformers_own_model_does(cli, tmp_path, tiny_florence):
    data = _images(tmp_path / "data", 1)
    result = cli("caption", data, "--model", tiny_florence, "--prefix", "sks", "--json")
    assert result.code == 0, result
    expected = _florence_caption(tiny_florence, data / "p0.png")
    assert expected and (data / "p0.txt").read_text() == f"sks, {expected}\n"


def _tag_probabilities(folder, image) -> list[float]:
    """WD14's sigmoid outputs for ``image``, computed as SmilingWolf's timm example does (white square, BGR)."""
    import timm
    import torch
    from timm.data import create_transform, resolve_data_config

    model = timm.create_model(f"local-dir:{folder}", pretrained=True).eval()
    side = max(image.size)
    square = Image.new("RGB", (side, side), (255, 255, 255))
    square.paste(image.convert("RGB"), ((side - image.width) // 2, (side - image.height) // 2))
    x = create_transform(**resolve_data_config(model.pretrained_cfg, model=model))(square)[None][:, [2, 1, 0]]
    with torch.inference_mode():
        return torch.sigmoid(model(x))[0].tolist()


def test_wd14_writes_the_tags_above_their_thresholds_most_likely_first(cli, tmp_path, tiny_wd14):
    from genimg.testing.tiny_image_models import WD14_TAGS

    data = _images(tmp_path / "data", 1)
    Image.open(data / "p0.png").crop((0, 0, 48, 20)).save(data / "p0.png")  # wide: padded to a square
    result = cli("caption", data, "--model", tiny_wd14, "--json")
    assert result.code == 0, result
    probabilities = _tag_probabilities(tiny_wd14, Image.open(data / "p0.png"))
    kept = sorted(((p, name) for p, (name, kind) in zip(probabilities, WD14_TAGS)
                   if (kind == 0 and p > 0.35) or (kind == 4 and p > 0.85)), reverse=True)
    written = (data / "p0.txt").read_text().rstrip("\n")
    assert written == ", ".join(name if len(name) <= 3 else name.replace("_", " ") for _, name in kept)
    # the tiny tagger's biases put these on either side of the thresholds: ratings never written
    assert {"ganyu (genshin impact)", "hatsune miku", "circle", "^_^"} <= set(written.split(", "))
    assert "general" not in written and "1girl" not in written


def test_a1111s_deepdanbooru_interrogate_answers_the_servers_tagger(tmp_path, tiny_wd14, tiny_florence, monkeypatch):
    import base64

    from fastapi.testclient import TestClient

    from genimg.caption import load_captioner
    from genimg.serve.app import create_app
    from genimg.serve.jobs import Worker

    monkeypatch.setenv("GENIMG_TAGGER", str(tiny_wd14))
    monkeypatch.setenv("GENIMG_CAPTIONER", str(tiny_florence))
    data = _images(tmp_path / "d", 1)
    client = TestClient(create_app(Worker(tmp_path / "served")))
    image = base64.b64encode((data / "p0.png").read_bytes()).decode()
    tags = client.post("/sdapi/v1/interrogate", json={"image": image, "model": "deepdanbooru"})
    assert tags.status_code == 200, tags.text
    plain = load_captioner(str(tiny_wd14)).caption(Image.open(data / "p0.png"))
    assert "ganyu (genshin impact)" in plain  # escaped as A1111 escapes its tags for a prompt:
    assert tags.json()["caption"] == plain.replace("(", "\\(").replace(")", "\\)")
    sentence = client.post("/sdapi/v1/interrogate", json={"image": image, "model": "clip"})
    assert sentence.json()["caption"] == _florence_caption(tiny_florence, data / "p0.png")


def test_a_wd14_folder_without_its_safetensors_is_refused(cli, tmp_path, tiny_wd14):
    import shutil

    folder = tmp_path / "wd14"
    shutil.copytree(tiny_wd14, folder)
    (folder / "model.safetensors").unlink()
    result = cli("caption", _images(tmp_path / "d", 1), "--model", folder)
    assert result.code == 2 and "model.safetensors is missing" in result.err, result
