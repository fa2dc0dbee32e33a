"""Face restoration (A1111's "Restore faces"): faces found in a real photograph, restored by a model of a real
architecture built offline, blended in by strength; every other pixel untouched; on the CLI, in batch rows, the
upscale command (A1111's extras), the PNG's text and the server's A1111 fields."""

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from genimg.testing.images import pixels
from genimg.output.metadata import read_metadata, read_text_chunks

FAST = ("-W", "64", "-H", "64", "--steps", "2")
FACE = (177, 64, 98)  # the astronaut's face as the cascade finds it: left, top, side


@pytest.fixture(scope="session")
def restorer_dir(tmp_path_factory):
    """A folder holding a RestoreFormer (random weights, the real architecture) under A1111's file name."""
    from genimg.testing.tiny_image_models import save_random_face_restorer

    folder = tmp_path_factory.mktemp("faces")
    save_random_face_restorer(folder / "RestoreFormer.safetensors")
    return folder


@pytest.fixture(scope="session")
def astronaut(tmp_path_factory):
    from skimage import data

    path = tmp_path_factory.mktemp("photo") / "astronaut.png"
    Image.fromarray(data.astronaut()).save(path)
    return path


def _restorer(path):
    from genimg.upscale.faces import resolve_face_restorer
    from genimg.upscale.upscalers import load_upscaler

    return load_upscaler(resolve_face_restorer(str(path)))


def _outside(mask_of, square):
    left, top, side = square
    mask = np.ones(mask_of.shape[:2], bool)
    mask[max(0, top):top + side, max(0, left):left + side] = False
    return mask


def test_the_face_of_a_photograph_is_found_and_none_where_there_is_none():
    from skimage import data

    from genimg.upscale.faces import find_faces

    [(left, top, side)] = find_faces(Image.fromarray(data.astronaut()))
    x, y, s = FACE
    # the square to restore: twice the face's box, centred on it
    assert abs(left + side / 2 - (x + s / 2)) <= 4 and abs(top + side / 2 - (y + s / 2)) <= 4 and 180 <= side <= 210
    for name in ("camera", "coffee", "chelsea", "rocket"):
        assert find_faces(Image.fromarray(getattr(data, name)())) == [], name
    [(_, _, bigger)] = find_faces(Image.fromarray(data.astronaut()).resize((1024, 1024)))
    assert abs(bigger - 2 * side) <= 30  # one face at twice the size, not several hits of it


def test_a_restored_face_changes_only_its_square_and_strength_blends_it(restorer_dir, astronaut):
    from genimg.upscale.faces import find_faces

    photo = Image.open(astronaut).convert("RGB")
    restorer = _restorer(restorer_dir / "RestoreFormer.safetensors")
    [square] = find_faces(photo)
    original = np.asarray(photo, dtype=np.int16)
    full = np.asarray(restorer.restore(photo), dtype=np.int16)
    half = np.asarray(restorer.restore(photo, strength=0.5), dtype=np.int16)
    outside = _outside(original, square)
    assert (full[outside] == original[outside]).all() and (half[outside] == original[outside]).all()
    left, top, side = square
    middle = (slice(top + side // 3, top + 2 * side // 3), slice(left + side // 3, left + 2 * side // 3))
    assert np.abs(full[middle] - original[middle]).mean() > 10  # random weights: a face quite unlike the input's
    assert np.abs(half - (original + full) / 2).max() <= 1  # strength 0.5: halfway, pixel by pixel
    assert (np.asarray(restorer.restore(photo, strength=0), dtype=np.int16) == original).all()
    assert (np.asarray(restorer.restore(photo), dtype=np.int16) == full).all()  # the same again


def test_upscale_restores_faces_after_the_upscale_as_a1111s_extras_do(cli, tmp_path, restorer_dir, astronaut, monkeypatch):
    monkeypatch.setenv("GENIMG_FACE_RESTORER_DIRS", str(restorer_dir))
    result = cli("upscale", astronaut, "-x", "1", "-m", "lanczos", "--restore-faces", "RestoreFormer",
                 "--face-strength", "0.5", "-o", tmp_path / "out.png")
    assert result.code == 0, result
    restored = pixels(tmp_path / "out.png")
    expected = np.asarray(_restorer(restorer_dir / "RestoreFormer.safetensors").restore(
        Image.open(astronaut), strength=0.5), dtype=np.int16)
    assert (restored == expected).all()
    # a photograph has no settings: A1111's extras line is all its text
    assert read_text_chunks(tmp_path / "out.png")["parameters"] == (
        "Postprocess upscale by: 1, Postprocess upscaler: lanczos, Face restoration: RestoreFormer")
    missing = cli("upscale", astronaut, "-m", "lanczos", "--restore-faces", "CodeFormer", "-o", tmp_path / "no.png")
    assert missing.code == 2 and "A1111's CodeFormer is the file codeformer-v0.1.0 or codeformer" in missing.err
    assert len(missing.err.strip().splitlines()) == 1 and not (tmp_path / "no.png").exists()


def test_txt2img_restores_faces_records_it_and_remakes_it_from_the_png(cli, tmp_path, restorer_dir, tiny_models, monkeypatch):
    """The generated image's face restored (the detector told where: the tiny model draws no faces), the rest
    of it the plain run's pixel for pixel; A1111's text names the model and --from remakes the same image."""
    from genimg.upscale import faces

    monkeypatch.setattr(faces, "find_faces", lambda image: [(-8, 24, 32)])  # past the left edge too
    model = tiny_models["sd"]
    restorer = str(restorer_dir / "RestoreFormer.safetensors")
    assert cli("txt2img", "a face", "-m", model, *FAST, "--seed", "5", "-o", tmp_path / "plain.png").code == 0
    made = cli("txt2img", "a face", "-m", model, *FAST, "--seed", "5", "--restore-faces", restorer,
               "--face-strength", "0.8", "-o", tmp_path / "faces.png")
    assert made.code == 0, made
    plain, restored = pixels(tmp_path / "plain.png"), pixels(tmp_path / "faces.png")
    outside = _outside(plain, (-8, 24, 32))
    assert (plain[outside] == restored[outside]).all() and (plain[~outside] != restored[~outside]).any()
    meta = read_metadata(tmp_path / "faces.png")
    assert meta["parameters"]["Face restoration"] == "RestoreFormer"
    assert meta["genimg"]["spec"]["restore_faces"] == restorer and meta["genimg"]["spec"]["face_strength"] == 0.8
    assert "Face restoration: RestoreFormer" in cli("info", tmp_path / "faces.png").out
    again = cli("txt2img", "--from", tmp_path / "faces.png", "-o", tmp_path / "again.png")
    assert again.code == 0, again
    assert (pixels(tmp_path / "again.png") == restored).all()


def test_a1111s_text_names_the_restorer_and_reads_back_as_the_setting(tmp_path):
    from PIL.PngImagePlugin import PngInfo

    from genimg.output.metadata import spec_from_png

    info = PngInfo()
    info.add_text("parameters", "a portrait\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512, "
                                "Face restoration: CodeFormer")
    Image.new("RGB", (8, 8)).save(tmp_path / "a1111.png", pnginfo=info)
    assert spec_from_png(tmp_path / "a1111.png").spec.restore_faces == "CodeFormer"


def test_bad_face_settings_are_one_line_before_any_load(cli, tmp_path, restorer_dir):
    restorer = restorer_dir / "RestoreFormer.safetensors"
    for args, words in ((("--face-strength", "2"), "--face-strength must be between 0 and 1"),
                        (("--face-fidelity", "-1"), "--face-fidelity must be between 0 and 1"),
                        (("--restore-faces", "no[such]"), "face restorer 'no[such]' is neither a file")):
        result = cli("txt2img", "a face", *(("--restore-faces", restorer) if "--restore-faces" not in args else ()),
                     *args, "-o", tmp_path / "x.png")
        assert result.code == 2 and words in result.err and len(result.err.strip().splitlines()) == 1, result
    upscaler = tmp_path / "esrgan.safetensors"
    from genimg.testing.tiny_image_models import save_random_spandrel

    save_random_spandrel(upscaler)
    wrong = cli("txt2img", "a face", "--restore-faces", upscaler, "-o", tmp_path / "x.png")
    assert wrong.code == 2 and "esrgan.safetensors is a ESRGAN model, not a face restorer" in wrong.err, wrong
    assert not (tmp_path / "x.png").exists()


def test_batch_rows_restore_faces_as_the_flags_do(cli, tmp_path, restorer_dir, tiny_models, monkeypatch):
    from genimg.upscale import faces

    monkeypatch.setattr(faces, "find_faces", lambda image: [(16, 16, 32)])
    restorer = str(restorer_dir / "RestoreFormer.safetensors")
    (tmp_path / "rows.jsonl").write_text(json.dumps({"prompt": "a face", "seed": 2, "restore_faces": restorer,
                                                     "face_strength": 0.7}) + "\n")
    result = cli("batch", tmp_path / "rows.jsonl", "-m", tiny_models["sd"], *FAST, "-o", tmp_path / "out", "--json")
    assert result.code == 0, result
    [row] = [json.loads(line) for line in result.out.splitlines() if '"path"' in line]
    assert cli("txt2img", "a face", "-m", tiny_models["sd"], *FAST, "--seed", "2", "--restore-faces", restorer,
               "--face-strength", "0.7", "-o", tmp_path / "flags.png").code == 0
    assert (pixels(row["path"]) == pixels(tmp_path / "flags.png")).all()
    assert read_metadata(row["path"])["parameters"]["Face restoration"] == "RestoreFormer"


def test_the_server_takes_a1111s_face_fields(tmp_path, restorer_dir, astronaut, monkeypatch):
    """restore_faces with the server's model (refused clearly without one), face_restoration_model and
    code_former_weight from override_settings, the extras' visibilities, /face-restorers, no client paths."""
    from fastapi.testclient import TestClient

    from genimg.serve.app import create_app
    from genimg.serve.jobs import Worker

    monkeypatch.delenv("GENIMG_FACE_RESTORER", raising=False)
    monkeypatch.setenv("GENIMG_FACE_RESTORER_DIRS", str(restorer_dir))
    worker = Worker(tmp_path / "served", preset="cpu").start()
    try:
        _ask_the_server(TestClient(create_app(worker)), restorer_dir, astronaut, monkeypatch)
    finally:
        worker.stop()


def _ask_the_server(client, restorer_dir, astronaut, monkeypatch):
    request = {"prompt": "a face", "steps": 2, "width": 64, "height": 64, "seed": 1, "restore_faces": True}
    refused = client.post("/sdapi/v1/txt2img", json=request)
    assert refused.status_code == 400 and "this server has no face restoration model" in refused.json()["error"]
    assert client.get("/sdapi/v1/face-restorers").json() == [{"name": "RestoreFormer", "cmd_dir": None}]
    named = client.post("/sdapi/v1/txt2img", json=request | {"override_settings": {
        "face_restoration_model": "RestoreFormer", "code_former_weight": 0.3}})
    assert named.status_code == 200, named.text
    info = json.loads(named.json()["info"])
    assert info["restore_faces"] is True and "Face restoration: RestoreFormer" in info["infotexts"][0]
    monkeypatch.setenv("GENIMG_FACE_RESTORER", "RestoreFormer")
    assert client.post("/sdapi/v1/txt2img", json=request).status_code == 200
    path = client.post("/sdapi/v1/txt2img", json=request | {"override_settings": {
        "face_restoration_model": str(restorer_dir / "RestoreFormer.safetensors")}})
    assert path.status_code == 400 and "is a filesystem path" in path.json()["error"]
    png = io.BytesIO()
    Image.open(astronaut).save(png, format="PNG")
    photo = base64.b64encode(png.getvalue()).decode()
    extras = client.post("/sdapi/v1/extra-single-image", json={"image": photo, "upscaler_1": "None",
                                                                 "upscaling_resize": 1, "codeformer_visibility": 1})
    assert extras.status_code == 400 and "A1111's CodeFormer is the file" in extras.json()["error"]
    typo = client.post("/sdapi/v1/extra-single-image", json={"image": photo, "gfpgan_visibility": "full"})
    assert typo.status_code == 400 and "gfpgan_visibility: expected a number" in typo.json()["error"]
    monkeypatch.setattr("genimg.upscale.faces.face_restorer_names",
                        lambda: {"GFPGAN": ["RestoreFormer"]})  # this server's GFPGAN file: the tiny restorer
    answer = client.post("/sdapi/v1/extra-single-image", json={"image": photo, "upscaler_1": "None",
                                                               "upscaling_resize": 1, "gfpgan_visibility": 0.5})
    assert answer.status_code == 200, answer.text
    made = np.asarray(Image.open(io.BytesIO(base64.b64decode(answer.json()["image"]))).convert("RGB"), dtype=np.int16)
    expected = np.asarray(_restorer(restorer_dir / "RestoreFormer.safetensors").restore(
        Image.open(astronaut), strength=0.5), dtype=np.int16)
    assert (made == expected).all()


@pytest.mark.slow
def test_gfpgans_full_network_restores_in_its_signed_range(tmp_path, astronaut):
    """GFPGAN v1.4's architecture (random weights) loads as a face restorer and reads and writes [-1, 1]."""
    from genimg.testing.tiny_image_models import save_random_face_restorer
    from genimg.upscale.faces import find_faces

    path = save_random_face_restorer(tmp_path / "GFPGANv1.4.safetensors", "GFPGAN")
    restorer = _restorer(path)
    assert restorer.model.architecture.id == "GFPGAN"
    photo = Image.open(astronaut).convert("RGB")
    restored = np.asarray(restorer.restore(photo), dtype=np.int16)
    original = np.asarray(photo, dtype=np.int16)
    [square] = find_faces(photo)
    outside = _outside(original, square)
    assert (restored[outside] == original[outside]).all() and (restored[~outside] != original[~outside]).any()


@pytest.mark.slow
def test_codeformers_fidelity_reaches_its_network(tmp_path, astronaut):
    """CodeFormer (spandrel-extra-arches, genimg[faces]): its weight is --face-fidelity, read in [-1, 1]."""
    pytest.importorskip("spandrel_extra_arches")
    from safetensors.torch import save_file
    from spandrel_extra_arches.architectures.CodeFormer import CodeFormer

    save_file({k: v.contiguous() for k, v in CodeFormer().state_dict().items()}, str(tmp_path / "codeformer.safetensors"))
    restorer = _restorer(tmp_path / "codeformer.safetensors")
    photo = Image.open(astronaut).convert("RGB")
    model_face, input_face = (np.asarray(restorer.restore(photo, 1.0, w), dtype=np.int16) for w in (0.0, 1.0))
    assert restorer.model.architecture.id == "CodeFormer" and np.abs(model_face - input_face).mean() > 1
