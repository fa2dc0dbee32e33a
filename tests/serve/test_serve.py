"""`genimg serve` as a real process on 127.0.0.1, with real clients: the CLI finding it, genimg's own API,
A1111's and OpenAI's, names instead of paths, a full queue, bad requests, many clients, and stopping."""

import base64
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

DEMO = {"model": "demo", "steps": 2, "width": 64, "height": 64}


_STARTED: list = []  # every server process a test or fixture started


@pytest.fixture(autouse=True)
def _no_server_left_behind():
    """A test that fails half-way must not leave the servers it started running (module fixtures' servers
    are started before this records, and stopped by their fixtures)."""
    before = len(_STARTED)
    yield
    for process in _STARTED[before:]:
        if process.poll() is None:
            process.kill()
            process.communicate()


def _start(tmp_path, *args, env=None):
    state = tmp_path / "state"
    env = {**os.environ, "GENIMG_STATE_DIR": str(state), **(env or {})}
    process = subprocess.Popen([sys.executable, "-m", "genimg", "serve", "--port", "0", "-o", str(tmp_path / "served"),
                                *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _STARTED.append(process)
    line = process.stdout.readline()
    assert line.startswith("serving on "), (line, process.stderr.read() if process.poll() is not None else "")
    return line.split()[-1], process, state


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("server")
    url, process, state = _start(tmp)
    yield url, state
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=60)


def _png(array) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="PNG")
    return out.getvalue()


def _pixels(data: bytes):
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def test_the_cli_finds_the_server_and_writes_what_a_local_run_writes(cli, tmp_path, server, monkeypatch):
    url, state = server
    assert oct((state / "server.json").stat().st_mode & 0o777) == "0o600"
    monkeypatch.setenv("GENIMG_STATE_DIR", str(state))
    # --preset cpu: this test process sees a CPU without bf16 (conftest), the server the real one
    args = ("txt2img", "a red circle", "-m", "demo", "--steps", "3", "--seed", "8", "--count", "2", "--json", "--preset", "cpu")
    remote = cli(*args, "-o", tmp_path / "remote")
    local = cli(*args, "--local", "-o", tmp_path / "local")
    assert remote.code == 0 and local.code == 0, (remote, local)
    remote_lines, local_lines = ([json.loads(x) for x in r.out.splitlines()] for r in (remote, local))
    assert [Path(r["path"]).name for r in remote_lines] == [Path(r["path"]).name for r in local_lines]
    for r, l in zip(remote_lines, local_lines):
        assert r["settings"] == l["settings"] and r["seed"] == l["seed"]
        assert np.array_equal(np.asarray(Image.open(r["path"])), np.asarray(Image.open(l["path"])))
        assert Image.open(r["path"]).text["parameters"] == Image.open(l["path"]).text["parameters"]


def test_img2img_through_the_server_uploads_the_input_and_records_the_clients_name(cli, tmp_path, server, monkeypatch):
    _, state = server
    monkeypatch.setenv("GENIMG_STATE_DIR", str(state))
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "in.png")
    args = ("img2img", tmp_path / "in.png", "a ring", "-m", "demo", "--steps", "4", "--seed", "2", "--preset", "cpu")
    assert cli(*args, "-o", tmp_path / "remote.png").code == 0
    assert cli(*args, "--local", "-o", tmp_path / "local.png").code == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "remote.png")), np.asarray(Image.open(tmp_path / "local.png")))
    record = json.loads(Image.open(tmp_path / "remote.png").text["genimg"])
    assert record["spec"]["image"] == str(tmp_path / "in.png")


def test_genimg_api_jobs_events_images_and_lists(server):
    url, _ = server
    with httpx.Client(base_url=url, timeout=60) as client:
        job = client.post("/v1/jobs", json={"spec": {"prompt": "bars", **DEMO, "seed": 4, "count": 2}})
        assert job.status_code == 202
        events = []
        with client.stream("GET", f"/v1/jobs/{job.json()['id']}/events") as stream:
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    events.append(line[len("event: "):])
        assert events[-1] == "done" and events.count("image_ready") == 2 and "step" in events
        view = client.get(f"/v1/jobs/{job.json()['id']}").json()
        assert view["status"] == "done" and [i["seed"] for i in view["images"]] == [4, 5]
        png = client.get(view["images"][1]["url"])
        assert png.headers["content-type"] == "image/png" and _pixels(png.content).shape == (64, 64, 3)
        assert "genimg" in Image.open(io.BytesIO(png.content)).text
        assert "demo" in [m["name"] for m in client.get("/v1/models").json()["models"]]
        assert "cpu" in client.get("/v1/presets").json()["presets"]
        assert "Euler a" in [s["name"] for s in client.get("/v1/schedulers").json()["schedulers"]]
        assert client.get("/v1/styles").json()["styles"]
        assert client.get("/v1/health").json()["status"] == "ok"


def test_the_page_and_its_gallery_show_what_the_server_made_and_how_to_remake_it(server):
    url, _ = server
    page = httpx.get(url + "/", timeout=30)
    assert page.status_code == 200 and '<form id="make">' in page.text and '<option value="demo">' in page.text
    made = httpx.post(f"{url}/v1/images/generations", json={"model": "demo", "prompt": "a <b>ring</b>",
                                                           "size": "64x64"}, timeout=60)
    assert made.status_code == 200
    newest = httpx.get(f"{url}/v1/gallery", timeout=30).json()["images"][0]
    assert newest["settings"]["prompt"] == "a <b>ring</b>" and httpx.get(url + newest["url"]).status_code == 200
    assert newest["command"].startswith("genimg txt2img 'a <b>ring</b>' -m demo -W 64 -H 64")
    assert f"--seed {newest['settings']['seed']}" in newest["command"]


def test_a1111_api_as_its_clients_call_it(server):
    url, _ = server
    with httpx.Client(base_url=url, timeout=60) as client:
        assert "demo" in [m["title"] for m in client.get("/sdapi/v1/sd-models").json()]
        assert "DPM++ 2M Karras" in [s["name"] for s in client.get("/sdapi/v1/samplers").json()]
        client.post("/sdapi/v1/options", json={"sd_model_checkpoint": "demo"})
        assert client.get("/sdapi/v1/options").json()["sd_model_checkpoint"] == "demo"
        made = client.post("/sdapi/v1/txt2img", json={
            "prompt": "a (red:1.2) circle", "negative_prompt": "blurry", "steps": 2, "cfg_scale": 5, "seed": 11,
            "width": 64, "height": 64, "sampler_name": "DPM++ 2M", "scheduler": "Karras", "batch_size": 2,
            "n_iter": 1, "restore_faces": False})
        assert made.status_code == 200, made.text
        body = made.json()
        info = json.loads(body["info"])
        assert len(body["images"]) == 2 and info["all_seeds"] == [11, 12] and info["sampler_name"] == "DPM++ 2M Karras"
        assert "Seed: 11" in info["infotexts"][0]
        first = _pixels(base64.b64decode(body["images"][0]))
        init = base64.b64encode(_png(first)).decode()
        shown = client.post("/sdapi/v1/png-info", json={"image": body["images"][0]}).json()
        assert "Seed: 11" in shown["info"] and shown["parameters"]["Seed"] == "11"
        assert "demo-upscaler" in [u["name"] for u in client.get("/sdapi/v1/upscalers").json()]
        assert client.get("/sdapi/v1/loras").json() == []  # none in this server's LoRA folders
        edited = client.post("/sdapi/v1/img2img", json={"prompt": "a ring", "init_images": [init], "steps": 4,
                                                        "denoising_strength": 0.5, "seed": 3})
        assert edited.status_code == 200 and _pixels(base64.b64decode(edited.json()["images"][0])).shape == (64, 64, 3)


def test_openai_images_api(server):
    url, _ = server
    answer = httpx.post(f"{url}/v1/images/generations", json={"model": "demo", "prompt": "a star", "n": 2,
                                                              "size": "64x64", "response_format": "b64_json"}, timeout=60)
    assert answer.status_code == 200, answer.text
    data = answer.json()["data"]
    assert len(data) == 2 and all(_pixels(base64.b64decode(d["b64_json"])).shape == (64, 64, 3) for d in data)


@pytest.mark.parametrize("spec,files,words", [
    ({"prompt": "x", "model": "/etc/passwd"}, {}, "is a filesystem path"),
    ({"prompt": "x", "model": "demo", "lora": ["../../secret.safetensors"]}, {}, "is a filesystem path"),
    ({"prompt": "x", "model": "demo", "vae": "~/vae"}, {}, "is a filesystem path"),
    ({"prompt": "x", "model": "demo", "task": "img2img", "image": "/etc/hosts"}, {}, "was not uploaded"),
    ({"prompt": "x", "model": "demo", "cfg": "lots"}, {}, "guidance must be a number"),
    ({"prompt": "x", "model": "demo", "task": "img2img", "image": "a.png"}, {"a.png": "bm90IGFuIGltYWdl"},
     "is not an image"),
])
def test_bad_requests_are_4xx_json_naming_the_problem_and_the_server_goes_on(server, spec, files, words):
    url, _ = server
    answer = httpx.post(f"{url}/v1/jobs", json={"spec": spec, "files": files}, timeout=30)
    assert answer.status_code == 400 and words in answer.json()["error"], answer.text
    assert httpx.post(f"{url}/v1/jobs", content=b"{not json", timeout=30).status_code == 400
    assert httpx.get(f"{url}/v1/health", timeout=30).json()["status"] == "ok"


def test_an_uploads_name_chooses_nothing_of_where_the_server_writes(server, tmp_path):
    url, state = server
    served = state.parent / "served"
    name = "../../../escaped.png"
    image = base64.b64encode(_png(np.zeros((64, 64, 3), np.uint8))).decode()
    with httpx.Client(base_url=url, timeout=60) as client:
        job = client.post("/v1/jobs", json={"spec": {"prompt": "x", **DEMO, "task": "img2img", "image": name},
                                            "files": {name: image}}).json()
        while client.get(f"/v1/jobs/{job['id']}").json()["status"] in ("queued", "running"):
            time.sleep(0.1)
        view = client.get(f"/v1/jobs/{job['id']}").json()
        assert view["status"] == "done" and view["images"][0]["settings"]["image"] == name
    everything = [p for p in state.parent.parent.rglob("*") if p.name == "escaped.png"]
    assert everything == [] and all(served in p.parents for p in served.rglob("*.png"))


def test_a_decompression_bomb_is_refused(server):
    url, _ = server
    bomb = io.BytesIO()
    Image.new("1", (20000, 20000)).save(bomb, format="PNG")  # 400 MP in a few kB
    answer = httpx.post(f"{url}/v1/jobs", json={"spec": {"prompt": "x", "model": "demo", "task": "img2img",
                                                          "image": "b.png"},
                                                 "files": {"b.png": base64.b64encode(bomb.getvalue()).decode()}})
    assert answer.status_code == 400 and "pixels" in answer.json()["error"]


@pytest.mark.slow  # 100 generations: ten seconds quiet, a minute beside other work
def test_twenty_clients_at_once_all_get_what_they_asked_for(server):
    url, _ = server
    answers, failures = {}, []

    def client(n):
        with httpx.Client(base_url=url, timeout=300) as http:
            for k in range(5):
                seed = n * 10 + k
                body = http.post("/sdapi/v1/txt2img", json={"prompt": "a ring", "seed": seed, "steps": 2,
                                                            "width": 64, "height": 64,
                                                            "override_settings": {"sd_model_checkpoint": "demo"}})
                if body.status_code != 200:
                    failures.append(body.status_code)
                else:
                    answers[seed] = _pixels(base64.b64decode(body.json()["images"][0]))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == [] and len(answers) == 100
    alone = httpx.post(f"{url}/sdapi/v1/txt2img", json={"prompt": "a ring", "seed": 34, "steps": 2, "width": 64,
                                                        "height": 64, "override_settings": {"sd_model_checkpoint": "demo"}},
                       timeout=60)
    assert np.array_equal(_pixels(base64.b64decode(alone.json()["images"][0])), answers[34])


def test_a_full_queue_answers_503_a_cancelled_job_stops_and_sigterm_says_what_happened(tmp_path):
    url, process, state = _start(tmp_path, "--queue", "1")
    with httpx.Client(base_url=url, timeout=60) as client:
        long = {"spec": {"prompt": "x", **DEMO, "steps": 2000}}
        first = client.post("/v1/jobs", json=long).json()
        while client.get(f"/v1/jobs/{first['id']}").json()["status"] != "running":
            time.sleep(0.1)
        second = client.post("/v1/jobs", json=long)
        third = client.post("/v1/jobs", json=long)
        assert second.status_code == 202 and third.status_code == 503 and third.headers["retry-after"] == "5"
        assert client.delete(f"/v1/jobs/{first['id']}").json()["id"] == first["id"]
        deadline = time.time() + 30
        while client.get(f"/v1/jobs/{first['id']}").json()["status"] != "cancelled" and time.time() < deadline:
            time.sleep(0.1)
        assert client.get(f"/v1/jobs/{first['id']}").json()["status"] == "cancelled"
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0 and "stopped;" in err and "cancelled" in err, err
    assert not (state / "server.json").exists()


def test_another_address_needs_a_token_and_then_every_request_sends_it(cli, tmp_path):
    refused = cli("serve", "--host", "0.0.0.0")
    assert refused.code == 2 and "--token" in refused.err
    url, process, _ = _start(tmp_path, "--token", "s3cret")
    try:
        assert httpx.get(f"{url}/v1/health").status_code == 401
        assert httpx.get(f"{url}/v1/health", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)




def _noise_png(path, seed=1, size=64):
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)
    return path


def test_upscale_through_the_server_writes_what_a_local_run_writes(cli, tmp_path, server, monkeypatch):
    _, state = server
    monkeypatch.setenv("GENIMG_STATE_DIR", str(state))
    (tmp_path / "in").mkdir()
    _noise_png(tmp_path / "in" / "a.png", 1)
    _noise_png(tmp_path / "in" / "b.png", 2, 48)
    args = ("upscale", tmp_path / "in", "--scale", "2", "--preset", "cpu", "--json")
    remote = cli(*args, "-o", tmp_path / "remote")
    local = cli(*args, "--local", "-o", tmp_path / "local")
    assert remote.code == 0 and local.code == 0, (remote, local)
    remote_lines = [json.loads(line) for line in remote.out.splitlines()]
    assert [Path(r["path"]).name for r in remote_lines] == ["a-x2.png", "b-x2.png"]
    assert [r["size"] for r in remote_lines] == [[128, 128], [96, 96]]
    for name in ("a-x2.png", "b-x2.png"):
        there, here = Image.open(tmp_path / "remote" / name), Image.open(tmp_path / "local" / name)
        assert np.array_equal(np.asarray(there), np.asarray(here)) and there.text == here.text
    again = cli(*args, "-o", tmp_path / "remote")  # a folder's outputs that exist are skipped, as locally
    assert again.code == 0 and again.out == ""


def test_a_batch_through_the_server_writes_the_same_images_and_manifest(cli, tmp_path, server, monkeypatch):
    _, state = server
    monkeypatch.setenv("GENIMG_STATE_DIR", str(state))
    (tmp_path / "jobs.txt").write_text("a red circle\na blue square\n")
    args = ("batch", tmp_path / "jobs.txt", "-m", "demo", "--steps", "2", "--seed", "5", "--preset", "cpu", "--quiet")
    assert cli(*args, "-o", tmp_path / "remote").code == 0
    assert cli(*args, "--local", "-o", tmp_path / "local").code == 0
    made = sorted(p.name for p in (tmp_path / "remote").glob("*.png"))
    assert len(made) == 2 and made == sorted(p.name for p in (tmp_path / "local").glob("*.png"))
    for name in made:
        assert np.array_equal(np.asarray(Image.open(tmp_path / "remote" / name)),
                              np.asarray(Image.open(tmp_path / "local" / name)))

    def records(folder):
        lines = [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]
        return [{k: v for k, v in r.items() if k not in ("seconds", "file")} for r in lines]

    assert records(tmp_path / "remote") == records(tmp_path / "local")
    assert cli(*args, "-o", tmp_path / "remote").code == 0  # resumed: all made, nothing run again
    assert len(records(tmp_path / "remote")) == 3  # the batch seed line and two images


def test_a1111_xyz_plot_script_answers_its_grid_then_each_image_a_plain_request_makes(server):
    url, _ = server
    base = {"prompt": "a red circle", "seed": 5, "width": 64, "height": 64, "cfg_scale": 5}
    #        x: Steps by number        y: Sampler by label, from its dropdown   z: Nothing  legend, lone images, …
    args = [4, "2-4 (+2)", [], "Sampler", "", ["Euler", "DDIM"], 0, "", [], True, True, False, False, False, False,
            False, 0, False]
    with httpx.Client(base_url=url, timeout=120) as client:
        assert client.get("/sdapi/v1/scripts").json()["txt2img"] == ["x/y/z plot"]
        made = client.post("/sdapi/v1/txt2img", json={**base, "steps": 3, "script_name": "X/Y/Z plot",
                                                       "script_args": args})
        assert made.status_code == 200, made.text
        body, info = made.json(), json.loads(made.json()["info"])
        assert len(body["images"]) == 5 and len(info["infotexts"]) == 5  # the grid, then the four images
        grid = _pixels(base64.b64decode(body["images"][0]))
        assert grid.shape[0] > 2 * 64 and grid.shape[1] > 2 * 64  # two rows, two columns and their labels
        assert 'Script: X/Y/Z plot, X Type: steps, X Values: "2-4 (+2)", Y Type: scheduler, Y Values: "Euler,DDIM"' \
            in info["infotexts"][0]
        for n, (steps, sampler) in enumerate([(2, "Euler"), (4, "Euler"), (2, "DDIM"), (4, "DDIM")]):  # X fastest
            alone = client.post("/sdapi/v1/txt2img", json={**base, "steps": steps, "sampler_name": sampler})
            assert np.array_equal(_pixels(base64.b64decode(alone.json()["images"][0])),
                                  _pixels(base64.b64decode(body["images"][1 + n])))
            assert f"Steps: {steps}, Sampler: {sampler}" in info["infotexts"][1 + n]
        shown = client.get("/v1/gallery")  # the page's gallery shows the grid with its axes
        assert shown.status_code == 200
        assert [(i["plot"], i["size"]) for i in shown.json()["images"] if "plot" in i] == \
            [(["steps=2-4 (+2)", "scheduler=Euler,DDIM"], [grid.shape[1], grid.shape[0]])]
        only_grid = client.post("/sdapi/v1/txt2img", json={**base, "steps": 2, "script_name": "x/y/z plot",
                                                            "script_args": [4, "1,2", [], 0, "", [], 0, "", []]})
        assert only_grid.status_code == 200 and len(only_grid.json()["images"]) == 1  # lone images not asked for
        for script_args, words in [([12, "1,2", []], "'Negative Guidance minimum sigma' varies a setting genimg does not have"),
                                   ([4, "1-20", []], "the X/Y/Z plot makes 20 images, more than this server makes"),
                                   (["Stepz", "1,2", []], "x_type 'Stepz' is not an axis")]:
            refused = client.post("/sdapi/v1/txt2img", json={**base, "script_name": "x/y/z plot",
                                                             "script_args": script_args})
            assert refused.status_code == 400 and words in refused.json()["error"], refused.text


def test_a1111_extras_upscale_one_image_and_a_batch(server, tmp_path):
    url, _ = server
    image = base64.b64encode(_noise_png(tmp_path / "in.png").read_bytes()).decode()
    with httpx.Client(base_url=url, timeout=120) as client:
        one = client.post("/sdapi/v1/extra-single-image", json={"image": image, "upscaling_resize": 2,
                                                                 "upscaler_1": "Lanczos", "resize_mode": 0})
        assert one.status_code == 200, one.text
        upscaled = Image.open(io.BytesIO(base64.b64decode(one.json()["image"])))
        expected = Image.open(tmp_path / "in.png").resize((128, 128), Image.LANCZOS)
        assert upscaled.size == (128, 128) and np.array_equal(np.asarray(upscaled.convert("RGB")), np.asarray(expected))
        many = client.post("/sdapi/v1/extra-batch-images", json={
            "imageList": [{"data": image, "name": "a.png"}, {"data": image, "name": "b.png"}],
            "upscaling_resize": 4, "upscaler_1": "demo-upscaler"})
        assert many.status_code == 200, many.text
        assert [Image.open(io.BytesIO(base64.b64decode(i))).size for i in many.json()["images"]] == [(256, 256)] * 2
        path = client.post("/sdapi/v1/extra-single-image", json={"image": image, "upscaler_1": "/tmp/x.safetensors"})
        assert path.status_code == 400 and "filesystem path" in path.json()["error"]


def test_a1111_controlnet_unit_steers_as_the_cli_control_does(cli, server, tmp_path):
    from genimg.testing.images import save_ring

    url, _ = server
    circle = save_ring(tmp_path / "circle.png")
    control = base64.b64encode(Path(circle).read_bytes()).decode()
    request = {"prompt": "a ring", "steps": 3, "seed": 6, "width": 64, "height": 64, "cfg_scale": 5,
               "override_settings": {"sd_model_checkpoint": "demo"},
               "alwayson_scripts": {"controlnet": {"args": [{"enabled": True, "image": control, "module": "canny",
                                                             "model": "demo-canny [0f0f0f0f]", "weight": 0.9,
                                                             "guidance_start": 0.0, "guidance_end": 1.0}]}}}
    steered = httpx.post(f"{url}/sdapi/v1/txt2img", json=request, timeout=120)
    assert steered.status_code == 200, steered.text
    info = json.loads(steered.json()["info"])
    assert "ControlNet 0" in info["infotexts"][0] and "demo-canny" in info["infotexts"][0]
    local = cli("txt2img", "a ring", "-m", "demo", "--steps", "3", "--seed", "6", "--cfg", "5", "-W", "64", "-H", "64",
                "--control", f"canny={circle},model=demo-canny,scale=0.9", "--local", "-o", tmp_path / "l.png")
    assert local.code == 0, local
    # the server runs its own preset (auto: bf16 where the CPU has it): the same steering, up to rounding
    there = _pixels(base64.b64decode(steered.json()["images"][0])).astype(int)
    here = np.asarray(Image.open(tmp_path / "l.png").convert("RGB")).astype(int)
    free = dict(request, alwayson_scripts={})
    unsteered = _pixels(base64.b64decode(httpx.post(f"{url}/sdapi/v1/txt2img", json=free, timeout=120).json()["images"][0]))
    assert np.abs(there - here).mean() < np.abs(there - unsteered.astype(int)).mean() / 2
    bad = dict(request, alwayson_scripts={"controlnet": {"args": [{"module": "nosuch", "image": control}]}})
    answer = httpx.post(f"{url}/sdapi/v1/txt2img", json=bad, timeout=60)
    assert answer.status_code == 400 and "module" in answer.json()["error"]


def test_openai_edits_inpaint_where_the_mask_is_clear_and_keep_the_rest(server, tmp_path):
    url, _ = server
    source = _noise_png(tmp_path / "in.png", 4)
    mask = Image.new("RGBA", (64, 64), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (16, 16, 48, 48))  # transparent: repaint
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    with open(source, "rb") as image:
        answer = httpx.post(f"{url}/v1/images/edits", timeout=120,
                            data={"prompt": "a red circle", "model": "demo", "n": "1"},
                            files={"image": ("in.png", image, "image/png"), "mask": ("mask.png", buffer.getvalue(), "image/png")})
    assert answer.status_code == 200, answer.text
    edited = _pixels(base64.b64decode(answer.json()["data"][0]["b64_json"])).astype(int)
    original = np.asarray(Image.open(source).convert("RGB")).astype(int)
    outside = np.ones((64, 64), bool)
    outside[8:56, 8:56] = False  # away from the hole and its blurred edge
    kept = np.abs(edited - original)[outside]
    assert edited.shape == (64, 64, 3) and kept.max() <= 4 and kept.mean() < 0.1
    beyond_the_seam = np.ones((64, 64), bool)
    beyond_the_seam[4:60, 4:60] = False  # past the feathered seam (12 px for mask_blur 4): the CLI's paste-back, exact
    assert np.abs(edited - original)[beyond_the_seam].max() == 0
    assert np.abs(edited - original)[20:44, 20:44].mean() > 20
    with open(source, "rb") as image:
        whole = httpx.post(f"{url}/v1/images/edits", timeout=120, data={"prompt": "a ring", "model": "demo"},
                           files={"image": ("in.png", image, "image/png")})
    assert whole.status_code == 200 and _pixels(base64.b64decode(whole.json()["data"][0]["b64_json"])).shape == (64, 64, 3)


def test_step_events_carry_an_eta_that_counts_down(server):
    url, _ = server
    with httpx.Client(base_url=url, timeout=60) as client:
        job = client.post("/v1/jobs", json={"spec": {"prompt": "bars", **DEMO, "steps": 6, "seed": 1}}).json()
        steps = []
        with client.stream("GET", f"/v1/jobs/{job['id']}/events") as stream:
            for line in stream.iter_lines():
                if line.startswith("data: ") and '"step"' in line:
                    steps.append(json.loads(line[6:]))
    assert [s["step"] for s in steps] == list(range(1, 7))
    assert all(s["eta"] >= 0 for s in steps) and steps[-1]["eta"] == 0 and steps[2]["eta"] > 0


# -- the page in a real headless Chromium (Debian's chromium and chromium-driver) ------------------------

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.mark.slow  # a browser and a server process
@pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs Debian's chromium and chromium-driver")
def test_the_form_makes_an_image_and_the_gallery_shows_it(tmp_path):
    pytest.importorskip("selenium", reason="pip install selenium (left out of [test]: its trio slows httpx's import)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    url, process, _ = _start(tmp_path)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        browser.get(url + "/")
        browser.find_element(By.ID, "prompt").send_keys("a red circle")
        Select(browser.find_element(By.NAME, "model")).select_by_value("demo")
        for name, value in (("width", "64"), ("height", "64"), ("steps", "2"), ("seed", "42")):
            browser.find_element(By.NAME, name).send_keys(value)
        browser.find_element(By.ID, "go").click()
        WebDriverWait(browser, 120).until(lambda b: b.find_elements(By.CSS_SELECTOR, "#gallery figure img"))
        figure = browser.find_element(By.CSS_SELECTOR, "#gallery figure")
        WebDriverWait(browser, 30).until(lambda b: b.execute_script(
            "const i = document.querySelector('#gallery img'); return i.complete && i.naturalWidth > 0"))
        size = browser.execute_script("const i = document.querySelector('#gallery img'); return [i.naturalWidth, i.naturalHeight]")
        assert size == [64, 64]
        assert "a red circle (seed 42)" in figure.text
        command = figure.find_element(By.TAG_NAME, "code").text
        assert command.startswith("genimg txt2img 'a red circle' -m demo -W 64 -H 64 --steps 2") and "--seed 42" in command
        assert browser.find_element(By.ID, "state").text == ""
    finally:
        browser.quit()
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)


@pytest.mark.slow  # a server process of its own with two workers
def test_one_worker_per_device_runs_jobs_side_by_side(tmp_path):
    """Two lanes (two CPU "devices" here; cuda:0 and cuda:1 on a two-GPU machine) take jobs from one queue."""
    url, process, _ = _start(tmp_path, "--device", "cpu", "--device", "cpu")
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            long = {"spec": {"prompt": "x", **DEMO, "steps": 2000}}
            jobs = [client.post("/v1/jobs", json=long).json()["id"] for _ in range(3)]
            deadline = time.time() + 120
            while client.get("/v1/health").json()["running"] < 2 and time.time() < deadline:
                time.sleep(0.1)
            states = [client.get(f"/v1/jobs/{job}").json()["status"] for job in jobs]
            assert states == ["running", "running", "queued"]
            for job in jobs:
                client.delete(f"/v1/jobs/{job}")
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    assert "3 cancelled" in err, err
    refused = subprocess.run([sys.executable, "-m", "genimg", "serve", "--device", "gpu7"], capture_output=True, text=True)
    assert refused.returncode == 2 and "gpu7" in refused.stderr


@pytest.mark.parametrize("args", [
    ("txt2img", "x", "--lora", "{tmp}/style.safetensors"),
    ("upscale", "{tmp}/in.png", "-m", "{tmp}/model.safetensors"),
])
def test_server_asked_for_with_a_local_path_is_one_line_naming_it(cli, tmp_path, args):
    (tmp_path / "style.safetensors").write_bytes(b"x")
    (tmp_path / "model.safetensors").write_bytes(b"x")
    _noise_png(tmp_path / "in.png")
    result = cli(*(a.replace("{tmp}", str(tmp_path)) for a in args), "--server", "http://127.0.0.1:9")
    assert result.code == 2 and "is a path on this machine" in result.err and "--server" in result.err, result


def test_a_name_clash_fails_before_the_server_runs_anything(cli, tmp_path, server, monkeypatch):
    """Remote runs plan their file names first (the server plans the spec; nothing loads) and check them here,
    as a local run does, so a clash costs no GPU time."""
    url, state = server
    monkeypatch.setenv("GENIMG_STATE_DIR", str(state))
    args = ("txt2img", "a blue square", "-m", "demo", "--steps", "2", "--seed", "31", "--preset", "cpu",
            "-o", tmp_path / "x.png")
    assert cli(*args).code == 0
    made = len(httpx.get(f"{url}/v1/gallery").json()["images"])
    again = cli(*args)
    assert again.code == 2 and "already exists" in again.err and again.err.count("\n") == 1, again
    assert len(httpx.get(f"{url}/v1/gallery").json()["images"]) == made  # no job made an image
    assert cli(*args, "--overwrite").code == 0


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, pytest.param(signal.SIGTERM, marks=pytest.mark.slow)])
def test_ctrl_c_answers_waiting_clients_and_stops_within_seconds(tmp_path, stop_signal):
    """The first Ctrl-C (or SIGTERM) stops taking jobs, cancels the waiting one, stops the running one at its next
    step, answers the clients waiting on them (503, "server stopping"), says what was done and removes its
    runtime file — in seconds, not when the running job would have ended."""
    url, process, state = _start(tmp_path)
    answers = {}

    def ask(name, steps):
        answers[name] = httpx.post(f"{url}/sdapi/v1/txt2img", json={"prompt": "a dot", "steps": steps, "width": 64,
                                                                    "height": 64, "sampler_name": "Euler"}, timeout=120)

    clients = [threading.Thread(target=ask, args=("running", 5000)), threading.Thread(target=ask, args=("queued", 2))]
    clients[0].start()
    deadline = time.time() + 60
    while httpx.get(f"{url}/sdapi/v1/progress").json()["state"]["sampling_step"] < 1 and time.time() < deadline:
        time.sleep(0.1)
    clients[1].start()
    while httpx.get(f"{url}/v1/health").json()["queued"] < 1 and time.time() < deadline:
        time.sleep(0.05)
    began = time.time()
    process.send_signal(stop_signal)
    for client in clients:
        client.join(timeout=30)
    out, err = process.communicate(timeout=30)
    assert time.time() - began < 15, err
    for name in ("running", "queued"):
        assert answers[name].status_code == 503 and "server stopping" in answers[name].json()["error"], answers[name].text
    assert process.returncode == 0 and "stopped; 0 jobs done, 0 failed, 2 cancelled" in err, err
    assert "Traceback" not in err and not (state / "server.json").exists()


@pytest.mark.parametrize("stop_signal,words", [(signal.SIGKILL, "stopped answering"),
                                               pytest.param(signal.SIGTERM, "cancelled the job", marks=pytest.mark.slow)])
def test_the_cli_says_what_it_wrote_when_its_server_goes_away(tmp_path, stop_signal, words):
    import re

    url, server, state = _start(tmp_path)
    out = tmp_path / "out"
    env = {**os.environ, "GENIMG_STATE_DIR": str(state)}
    cli = subprocess.Popen([sys.executable, "-m", "genimg", "txt2img", "a dot", "-m", "demo", "--count", "12", "--steps", "60",
                            "--seed", "1", "--preset", "cpu", "--json", "-q", "-o", str(out)],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        made = [cli.stdout.readline() for _ in range(2)]
        assert all(line.startswith("{") for line in made), (made, cli.stderr.read() if cli.poll() is not None else "")
        server.send_signal(stop_signal)
        rest, err = cli.communicate(timeout=60)
        server.communicate(timeout=60)
    finally:  # a failed assertion must not leave either process behind
        for process in (cli, server):
            if process.poll() is None:
                process.kill()
                process.communicate()
    written = re.search(r"(\d+) of 12 images were written before it \(last ", err)
    assert cli.returncode == 1 and words in err and written and err.count("\n") == 1, err
    assert int(written.group(1)) == len(list(out.glob("*.png"))) >= 2 and "--local" in err


@pytest.mark.parametrize("route,request_body", [
    ("/sdapi/v1/txt2img", {"prompt": "a dot", "steps": 5000, "width": 64, "height": 64}),
    ("/v1/images/generations", {"prompt": "a dot", "model": "demo", "size": "512x512", "n": 16}),
])
def test_a_client_that_goes_away_cancels_its_job(server, route, request_body):
    url, _ = server
    with pytest.raises(httpx.TimeoutException):
        httpx.post(f"{url}{route}", json=request_body, timeout=4)
    deadline = time.time() + 20
    while httpx.get(f"{url}/v1/health").json()["running"] and time.time() < deadline:
        time.sleep(0.2)
    assert httpx.get(f"{url}/v1/health").json()["running"] == 0


@pytest.mark.slow  # a server process of its own; the first Ctrl-C is checked in the default run
def test_a_second_ctrl_c_still_says_what_happened_and_leaves_nothing_behind(tmp_path):
    url, process, state = _start(tmp_path)
    answers = {}

    def ask():
        answers["running"] = httpx.post(f"{url}/sdapi/v1/txt2img", timeout=120, json={
            "prompt": "a dot", "steps": 5000, "width": 64, "height": 64, "sampler_name": "Euler"})

    client = threading.Thread(target=ask)
    client.start()
    deadline = time.time() + 60
    while httpx.get(f"{url}/sdapi/v1/progress").json()["state"]["sampling_step"] < 1 and time.time() < deadline:
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    client.join(timeout=30)
    assert "stopped;" in err and "Traceback" not in err and "CancelledError" not in err, err
    assert not (state / "server.json").exists()
    assert answers["running"].status_code == 503, answers["running"].text
