"""The server's worker in this process: requests checked when they arrive, and --auto-fallback honoured."""

from __future__ import annotations


import pytest
from fastapi.testclient import TestClient

from genimg.serve.app import create_app
from genimg.serve.jobs import Worker

DEMO = {"model": "demo", "steps": 2, "width": 64, "height": 64, "preset": "cpu"}


def _message(answer) -> str:
    """The error's text: OpenAI's routes answer OpenAI's error object, the others a line."""
    error = answer.json()["error"]
    return error["message"] if isinstance(error, dict) else error


def test_a_bad_request_is_answered_when_it_arrives_not_when_the_worker_reaches_it(tmp_path):
    worker = Worker(tmp_path)  # never started: nothing is ever run, so every answer comes from submission
    client = TestClient(create_app(worker))
    bad = client.post("/v1/jobs", json={"spec": {**DEMO, "prompt": "x", "width": 65}})
    assert bad.status_code == 400 and "65" in bad.json()["error"]
    unknown = client.post("/v1/jobs", json={"spec": {**DEMO, "prompt": "x", "model": "no-such-model"}})
    assert unknown.status_code == 400 and "no-such-model" in unknown.json()["error"]
    good = client.post("/v1/jobs", json={"spec": {**DEMO, "prompt": "x"}})
    assert good.status_code == 202 and good.json()["status"] == "queued"
    assert list(worker.jobs) == [good.json()["id"]]  # the refused ones left no job and no folder
    assert [p.name for p in tmp_path.iterdir()] == [good.json()["id"]]


def test_the_plan_endpoint_names_what_a_job_would_make_and_runs_nothing(tmp_path):
    worker = Worker(tmp_path)
    client = TestClient(create_app(worker))
    answer = client.post("/v1/plan", json={"spec": {**DEMO, "prompt": "a ring", "seed": 5, "count": 3}})
    assert answer.status_code == 200, answer.text
    assert answer.json()["seeds"] == [5, 6, 7] and answer.json()["model"] == "demo"
    assert answer.json()["settings"]["scheduler"] and answer.json()["settings"]["steps"] == 2
    assert worker.jobs == {} and list(tmp_path.iterdir()) == []


def test_a_server_job_asked_to_fall_back_retries_on_the_next_smaller_preset(tmp_path, tiny_models, eight_gb_fits):
    from genimg.spec import GenerationSpec

    worker = Worker(tmp_path).start()
    try:
        spec = GenerationSpec("x", model=str(tiny_models["sd"]), width=64, height=64, steps=2, seed=3, negative="")
        fell_back = worker.submit(spec, {}, fallback=True)
        plain = worker.submit(spec.replace(seed=4), {})
        for job in (fell_back, plain):
            assert job.finished.wait(60)
    finally:
        worker.stop(wait=5)
    assert fell_back.status == "done" and fell_back.results[0][1]["settings"]["preset"] == "8gb"
    assert plain.status == "failed" and "out of GPU memory" in plain.error and "--auto-fallback" in plain.error
    assert eight_gb_fits == ["12gb", "8gb", "12gb"]


def test_a_batch_with_auto_fallback_retries_each_job_that_runs_out(cli, tmp_path, tiny_models, eight_gb_fits):
    import json

    rows = [{"prompt": f"ring {n}", "model": str(tiny_models["sd"]), "steps": 2, "seed": n, "negative": ""}
            for n in range(2)]
    (tmp_path / "jobs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    failed = cli("batch", tmp_path / "jobs.jsonl", "-o", tmp_path / "plain")
    assert failed.code == 1 and "out of GPU memory" in failed.err
    done = cli("batch", tmp_path / "jobs.jsonl", "--auto-fallback", "-o", tmp_path / "out")
    assert done.code == 0, done
    records = [json.loads(line) for line in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()]
    assert [r["settings"]["preset"] for r in records if "settings" in r] == ["8gb", "8gb"]


@pytest.mark.parametrize("route,body,words,unwanted", [
    ("/v1/jobs", {"spec": {**DEMO, "prompt": "x", "width": 65}}, "width 65 must be a multiple of 8", "--"),
    ("/v1/jobs", {"spec": {**DEMO, "prompt": "x", "count": 0}}, "count must be at least 1", "--"),
    ("/sdapi/v1/txt2img", {"prompt": "x", "n_iter": "x", "steps": 2}, "n_iter: expected a whole number", "--"),
    ("/sdapi/v1/txt2img", {"prompt": "x", "batch_size": -1, "steps": 2}, "batch_size", "--"),
    ("/sdapi/v1/txt2img", {"prompt": "x", "cfg_scale": "lots", "steps": 2}, "cfg_scale", "--cfg"),
    ("/v1/images/generations", {"prompt": "x", "n": 0, "model": "demo"}, "n must be at least 1", "--count"),
    ("/sdapi/v1/img2img", {"prompt": "x", "init_images": ["aGVsbG8="]}, "is not an image (send a PNG", "BytesIO"),
])
def test_a_bad_request_is_told_in_its_own_apis_words(tmp_path, route, body, words, unwanted):
    client = TestClient(create_app(Worker(tmp_path)))
    answer = client.post(route, json=body)
    assert answer.status_code == 400, answer.text
    assert words in _message(answer) and unwanted not in _message(answer), answer.json()


def test_an_unknown_job_or_image_is_404(tmp_path):
    client = TestClient(create_app(Worker(tmp_path)))
    assert client.get("/v1/jobs/nope").status_code == 404 and "no job nope" in client.get("/v1/jobs/nope").json()["error"]
    job = client.post("/v1/jobs", json={"spec": {**DEMO, "prompt": "x"}}).json()["id"]
    assert client.get(f"/v1/jobs/{job}/images/3").status_code == 404
    assert client.delete("/v1/jobs/nope").status_code == 404


@pytest.mark.parametrize("route,body,words", [
    ("/v1/jobs", {"spec": {**DEMO, "prompt": "x", "count": 5}}, "count 5 is more images"),
    ("/sdapi/v1/txt2img", {"prompt": "x", "steps": 2, "batch_size": 3, "n_iter": 2}, "batch_size × n_iter 6 is more images"),
    ("/v1/images/generations", {"prompt": "x", "n": 1000000, "model": "demo"}, "n 1000000 is more images"),
])
def test_a_request_for_more_images_than_the_server_makes_at_once_is_refused_when_it_arrives(tmp_path, route, body, words):
    worker = Worker(tmp_path, max_images=4)
    answer = TestClient(create_app(worker)).post(route, json=body)
    assert answer.status_code == 400 and words in _message(answer) and "at most 4" in _message(answer)
    assert worker.jobs == {}


def test_a_server_keeps_only_its_latest_finished_jobs_and_their_folders(tmp_path):
    from genimg.spec import GenerationSpec

    worker = Worker(tmp_path, history=2).start()
    try:
        jobs = []
        for seed in range(4):
            job = worker.submit(GenerationSpec("a dot", model="demo", steps=2, seed=seed, preset="cpu"), {})
            assert job.finished.wait(120) and job.status == "done"
            jobs.append(job)
    finally:
        worker.stop(wait=5)
    assert list(worker.jobs) == [job.id for job in jobs[2:]]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(job.id for job in jobs[2:])
    assert all(path.is_file() for job in jobs[2:] for path, _ in job.results)
    assert TestClient(create_app(worker)).get(f"/v1/jobs/{jobs[0].id}").status_code == 404


def test_the_small_endpoints_a1111_clients_probe_answer_in_a1111s_shapes(tmp_path):
    import torch
    from safetensors.torch import save_file

    from genimg.paths import config_dir

    (config_dir() / "embeddings").mkdir(parents=True, exist_ok=True)
    save_file({"emb_params": torch.zeros(2, 32)}, str(config_dir() / "embeddings" / "my-style.safetensors"))
    try:
        client = TestClient(create_app(Worker(tmp_path)))
        styles = client.get("/sdapi/v1/prompt-styles").json()
        assert {"name", "prompt", "negative_prompt"} <= set(styles[0]) and "negative-sd" in {s["name"] for s in styles}
        embedded = client.get("/sdapi/v1/embeddings").json()
        assert embedded["loaded"]["my-style"]["shape"] == 32 and embedded["loaded"]["my-style"]["vectors"] == 2
        assert str(config_dir()) not in str(embedded)  # names, never the server's paths
        assert client.get("/sdapi/v1/face-restorers").json() == [] and client.get("/sdapi/v1/hypernetworks").json() == []
        assert "demo-upscaler" in {m["name"] for m in client.get("/sdapi/v1/realesrgan-models").json()}
        assert client.get("/sdapi/v1/memory").json()["ram"]["total"] > 0
        assert client.get("/sdapi/v1/cmd-flags").json()["api"] is True
        assert client.post("/sdapi/v1/refresh-checkpoints").status_code == 200
        refused = client.post("/sdapi/v1/interrogate", json={"image": ""})  # a bad image: a 400, not a 501
        assert refused.status_code == 400 and "image" in refused.json()["error"]
    finally:
        (config_dir() / "embeddings" / "my-style.safetensors").unlink()


def test_an_unknown_a1111_style_is_skipped_with_a_log_line(caplog):
    import logging

    from genimg.serve.a1111_request import a1111_settings

    with caplog.at_level(logging.INFO, logger="genimg.serve"):
        settings, _ = a1111_settings({"prompt": "x", "styles": ["negative-sd", "no-such-style"]}, "txt2img", {})
    assert settings["styles"] == ["negative-sd"]
    assert any("'no-such-style' is not one genimg has; skipped" in r.getMessage() for r in caplog.records)


def test_a1111s_interrupt_answers_200_with_the_image_as_far_as_it_got(tmp_path):
    """A1111's /interrupt: the running request still answers 200, with one image made of the steps done
    (the batch's other images and the hires pass are not made); genimg's own cancel stays a cancel."""
    import base64
    import io
    import threading
    import time

    from PIL import Image

    worker = Worker(tmp_path).start()
    client = TestClient(create_app(worker))
    answers = []
    body = {"prompt": "a ring", "steps": 400, "width": 64, "height": 64, "n_iter": 3, "seed": 2,
            "enable_hr": True, "hr_scale": 2, "denoising_strength": 0.5}
    request = threading.Thread(target=lambda: answers.append(client.post("/sdapi/v1/txt2img", json=body)))
    try:
        request.start()
        deadline = time.monotonic() + 120
        while not any(e["event"] == "step" for job in list(worker.jobs.values()) for e in job.events):
            assert time.monotonic() < deadline, "no step was ever made"
            time.sleep(0.01)
        assert client.post("/sdapi/v1/interrupt").status_code == 200
        request.join(120)
    finally:
        worker.stop(wait=5)
    [answer] = answers
    assert answer.status_code == 200, answer.text
    [image] = answer.json()["images"]
    assert Image.open(io.BytesIO(base64.b64decode(image))).size == (64, 64)  # no hires pass
    [job] = worker.jobs.values()
    assert job.status == "done" and len(job.results) == 1
    assert 1 <= job.results[0][1]["steps_run"] < 400


def test_a1111_upscaler_names_are_the_files_its_users_have_in_an_upscaler_folder(tmp_path, monkeypatch):
    """`R-ESRGAN 4x+` is RealESRGAN_x4plus.safetensors in an upscaler folder (here genimg's built-in compact
    Real-ESRGAN under that name); without the file, a 400 that says which file and what the server has."""
    folder = tmp_path / "upscalers"
    folder.mkdir()
    monkeypatch.setenv("GENIMG_UPSCALER_DIRS", str(folder))
    worker = Worker(tmp_path / "served").start()
    try:
        _upscaler_names(TestClient(create_app(worker)), folder)
    finally:
        worker.stop(wait=5)


def _upscaler_names(client, folder):
    import base64
    import io
    import shutil

    import numpy as np
    from PIL import Image

    from genimg.upscale.models import resolve_upscaler

    photo = io.BytesIO()
    Image.fromarray(np.random.default_rng(3).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(photo, "PNG")
    body = {"image": base64.b64encode(photo.getvalue()).decode(), "upscaler_1": "R-ESRGAN 4x+", "upscaling_resize": 4}
    missing = client.post("/sdapi/v1/extra-single-image", json=body)
    assert missing.status_code == 400
    assert "upscaler_1: 'R-ESRGAN 4x+'" in missing.json()["error"] and "RealESRGAN_x4plus.safetensors" in missing.json()["error"]
    assert "demo-upscaler" in missing.json()["error"]  # what it has
    shutil.copy(resolve_upscaler("demo-upscaler").location, folder / "RealESRGAN_x4plus.safetensors")
    names = [u["name"] for u in client.get("/sdapi/v1/upscalers").json()]
    assert {"R-ESRGAN 4x+", "RealESRGAN_x4plus", "demo-upscaler", "None", "Lanczos"} <= set(names)
    made = client.post("/sdapi/v1/extra-single-image", json=body)
    assert made.status_code == 200, made.text
    big = Image.open(io.BytesIO(base64.b64decode(made.json()["image"])))
    direct = client.post("/sdapi/v1/extra-single-image", json={**body, "upscaler_1": "demo-upscaler"})
    same = Image.open(io.BytesIO(base64.b64decode(direct.json()["image"])))
    assert big.size == (128, 128) and np.array_equal(np.asarray(big), np.asarray(same))  # that very model ran
    hires = client.post("/sdapi/v1/txt2img", json={"prompt": "x", "steps": 2, "width": 64, "height": 64,
                                                    "enable_hr": True, "hr_upscaler": "SwinIR 4x"})
    assert hires.status_code == 400 and hires.json()["error"].startswith("hr_upscaler: 'SwinIR 4x'")


def test_an_a1111_size_off_the_models_grid_is_made_at_the_multiple_below_as_a1111_makes_it(tmp_path, caplog):
    import base64
    import io
    import json
    import logging

    from PIL import Image

    worker = Worker(tmp_path).start()
    try:
        client = TestClient(create_app(worker))
        with caplog.at_level(logging.INFO, logger="genimg.serve"):
            answer = client.post("/sdapi/v1/txt2img", json={"prompt": "x", "steps": 2, "width": 100, "height": 71})
    finally:
        worker.stop(wait=5)
    assert answer.status_code == 200, answer.text
    assert Image.open(io.BytesIO(base64.b64decode(answer.json()["images"][0]))).size == (96, 64)
    info = json.loads(answer.json()["info"])
    assert (info["width"], info["height"]) == (96, 64)
    assert "width 100 is made at 96" in caplog.text and "height 71 is made at 64" in caplog.text


def test_what_a_server_sends_names_its_models_by_name_never_by_its_paths(tmp_path, tiny_models, monkeypatch):
    """The server's default model is a folder on its machine: the answer, the PNG's A1111 text and genimg's
    record name it by the folder's name."""
    import json

    from genimg.output.metadata import read_text_chunks

    folder = str(tiny_models["sd"])
    monkeypatch.setenv("GENIMG_MODEL", folder)
    worker = Worker(tmp_path).start()
    try:
        client = TestClient(create_app(worker))
        job = client.post("/v1/jobs", json={"spec": {"prompt": "x", "steps": 2, "width": 64, "height": 64, "seed": 1}})
        assert job.status_code == 202, job.text
        assert worker.jobs[job.json()["id"]].finished.wait(60)
        view = client.get(f"/v1/jobs/{job.json()['id']}").json()
        png = client.get(view["images"][0]["url"])
        a1111 = client.post("/sdapi/v1/txt2img", json={"prompt": "x", "steps": 2, "width": 64, "height": 64})
    finally:
        worker.stop(wait=5)
    (tmp_path / "got.png").write_bytes(png.content)
    chunks = read_text_chunks(tmp_path / "got.png")
    sent = [json.dumps(view), chunks["parameters"], chunks["genimg"], a1111.text]
    assert not [text for text in sent if folder in text]
    record = json.loads(chunks["genimg"])
    assert record["model"]["location"] == record["spec"]["model"] == tiny_models["sd"].name
    assert f"Model: {tiny_models['sd'].name}" in chunks["parameters"]


def test_a1111s_variation_seed_and_tiling_fields_are_honoured(tmp_path):
    import json

    worker = Worker(tmp_path).start()
    try:
        client = TestClient(create_app(worker))
        base = {"prompt": "a ring", "steps": 3, "width": 64, "height": 64, "sampler_name": "Euler"}
        varied = client.post("/sdapi/v1/txt2img", json={**base, "seed": 3, "subseed": 9, "subseed_strength": 1.0})
        plain = client.post("/sdapi/v1/txt2img", json={**base, "seed": 9})
        tiled = client.post("/sdapi/v1/txt2img", json={**base, "seed": 3, "tiling": True})
    finally:
        worker.stop(wait=5)
    assert varied.status_code == plain.status_code == tiled.status_code == 200, varied.text
    assert _pixels(varied) == _pixels(plain)  # strength 1: the subseed's image
    info = json.loads(varied.json()["info"])
    assert (info["seed"], info["subseed"], info["subseed_strength"], info["all_subseeds"]) == (3, 9, 1.0, [9])
    assert "Variation seed: 9, Variation seed strength: 1" in info["infotexts"][0]
    assert "Tiling: True" in json.loads(tiled.json()["info"])["infotexts"][0] and json.loads(tiled.json()["info"])["tiling"]


def _pixels(answer) -> bytes:
    import base64
    import io

    from PIL import Image

    return Image.open(io.BytesIO(base64.b64decode(answer.json()["images"][0]))).convert("RGB").tobytes()


@pytest.mark.parametrize("args, axes, values, lone", [
    ([4, "10-30 (+10)", [], 0, "", [], 0, "", []], ("steps=10-30 (+10)",), [(10, 20, 30)], False),
    (["Checkpoint name", "", ["demo [0123abcd]", "sd15"], "CFG Scale", "4,7", [], "Nothing", "", [],
      True, True], ('model=demo,sd15', "guidance=4,7"), [("demo", "sd15"), (4, 7)], True),
    # csv_mode (the 18th argument): a choice axis reads its values from the text, not the dropdown
    ([9, "Euler a, DDIM", ["Euler"]] + [0, "", []] * 2 + [True, False, False, False, False, False, False, 0, True],
     ("scheduler=Euler a, DDIM",), [("Euler a", "DDIM")], False),
])
def test_a1111_plot_arguments_become_the_axes_xyz_takes(args, axes, values, lone):
    from genimg.serve.a1111_request import a1111_plot
    from genimg.xyz import parse_axis

    assert a1111_plot({"script_name": "X/Y/Z plot", "script_args": args}, "txt2img") == (axes, lone)
    assert [parse_axis(axis).values for axis in axes] == values  # each one an axis --xyz takes
    assert a1111_plot({"prompt": "no script"}, "txt2img") == ((), False)
