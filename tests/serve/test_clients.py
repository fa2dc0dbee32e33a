"""`genimg serve` answering the clients people already run, as their users call them, with a token: the
`openai` SDK (what Open WebUI's OpenAI engine and most front-ends use) and `webuiapi` (A1111's Python client,
sending HTTP Basic as Open WebUI's A1111 engine does)."""

from __future__ import annotations

import base64
import io
import os
import signal
import subprocess
import sys

import httpx
import numpy as np
import pytest
from PIL import Image

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("clients")
    env = {**os.environ, "GENIMG_STATE_DIR": str(tmp / "state")}
    process = subprocess.Popen([sys.executable, "-m", "genimg", "serve", "--port", "0", "--token", TOKEN,
                                "-o", str(tmp / "served"), "--preset", "cpu"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert line.startswith("serving on "), (line, process.stderr.read() if process.poll() is not None else "")
        yield line.split()[-1]
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)
    finally:  # never a server left behind, whatever failed
        if process.poll() is None:
            process.kill()
            process.communicate()


def _png(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_the_openai_sdk_generates_with_openais_model_names_as_b64_and_as_url(server):
    from openai import OpenAI

    client = OpenAI(base_url=f"{server}/v1", api_key=TOKEN)
    made = client.images.generate(model="dall-e-3", prompt="a red circle", n=2, size="64x64",
                                  response_format="b64_json")
    images = [_png(base64.b64decode(item.b64_json)) for item in made.data]
    assert [im.size for im in images] == [(64, 64), (64, 64)] and made.data[0].revised_prompt == "a red circle"
    linked = client.images.generate(model="gpt-image-1", prompt="a red circle", size="64x64", response_format="url")
    fetched = httpx.get(linked.data[0].url, headers={"Authorization": f"Bearer {TOKEN}"})
    assert fetched.status_code == 200 and _png(fetched.content).size == (64, 64)
    assert "demo" in {model.id for model in client.models.list()}


def test_the_openai_sdk_edits_and_reads_errors_as_it_reads_openais(server, tmp_path):
    from openai import BadRequestError, OpenAI

    client = OpenAI(base_url=f"{server}/v1", api_key=TOKEN)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "in.png")
    with open(tmp_path / "in.png", "rb") as image:
        edited = client.images.edit(model="demo", image=image, prompt="a ring", size="64x64")
    assert _png(base64.b64decode(edited.data[0].b64_json)).size == (64, 64)
    with pytest.raises(BadRequestError) as refused:
        client.images.generate(model="demo", prompt="x", size="65x64")
    assert "65" in refused.value.message and "multiple of 8" in refused.value.message
    with pytest.raises(BadRequestError) as streaming:
        client.images.generate(model="demo", prompt="x", size="64x64", extra_body={"stream": True})
    assert "does not stream" in streaming.value.message
    anonymous = OpenAI(base_url=f"{server}/v1", api_key="wrong")
    with pytest.raises(Exception) as unauthorized:
        anonymous.models.list()
    assert getattr(unauthorized.value, "status_code", None) == 401


def test_the_openai_sdk_makes_variations_as_img2img_redraws_of_the_image(server, tmp_path):
    import json

    from openai import OpenAI

    client = OpenAI(base_url=f"{server}/v1", api_key=TOKEN)
    source = np.zeros((64, 64, 3), dtype=np.uint8)
    source[:, :32] = (230, 30, 30)  # left red, right blue: a layout a redraw keeps
    source[:, 32:] = (30, 30, 230)
    Image.fromarray(source).save(tmp_path / "in.png")
    with open(tmp_path / "in.png", "rb") as image:
        made = client.images.create_variation(model="dall-e-2", image=image, n=2, size="64x64",
                                              response_format="b64_json")
    pictures = [_png(base64.b64decode(item.b64_json)) for item in made.data]
    assert [p.size for p in pictures] == [(64, 64), (64, 64)]
    records = [json.loads(p.text["genimg"])["spec"] for p in pictures]
    assert {(r["task"], r["strength"], r["prompt"]) for r in records} == {("img2img", 0.6, "an image")}
    assert records[0]["seed"] != records[1]["seed"]
    for picture in pictures:  # the layout kept: red stays left of blue
        rgb = np.asarray(picture.convert("RGB"), dtype=float)
        assert rgb[:, :32, 0].mean() > rgb[:, 32:, 0].mean() and rgb[:, 32:, 2].mean() > rgb[:, :32, 2].mean()
    from PIL.PngImagePlugin import PngInfo

    said = PngInfo()  # a PNG that says its prompt (A1111's text) is varied with that prompt
    said.add_text("parameters", "a red and blue flag\nSteps: 4, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 64x64")
    Image.fromarray(source).save(tmp_path / "said.png", pnginfo=said)
    with open(tmp_path / "said.png", "rb") as image:
        second = client.images.create_variation(image=image, size="64x64", response_format="b64_json")
    record = json.loads(_png(base64.b64decode(second.data[0].b64_json)).text["genimg"])
    assert record["spec"]["prompt"] == "a red and blue flag"


def test_webuiapi_with_a_token_as_its_password_txt2img_with_hires_options_and_png_info(server):
    import webuiapi

    host, port = server.rsplit("//", 1)[1].rsplit(":", 1)
    api = webuiapi.WebUIApi(host=host, port=int(port))
    api.set_auth("anyone", TOKEN)
    made = api.txt2img(prompt="a red circle", steps=4, width=64, height=64, seed=3, sampler_name="Euler",
                       enable_hr=True, hr_scale=2, hr_second_pass_steps=2, denoising_strength=0.5)
    assert made.image.size == (128, 128)  # the hires fix, as A1111 answers it
    assert made.info["all_seeds"] == [3] and made.info["sampler_name"] == "Euler"
    assert api.png_info(made.image).info.startswith("a red circle")
    options = api.get_options()
    assert options["sd_model_checkpoint"] == "demo" and options["send_seed"] is True
    auth = httpx.BasicAuth("anyone", TOKEN)
    older = httpx.post(f"{server}/sdapi/v1/txt2img", auth=auth, timeout=120,  # an older client: sampler_index only
                       json={"prompt": "a dot", "steps": 4, "width": 64, "height": 64, "sampler_index": "DDIM"})
    assert older.status_code == 200 and '"sampler_name": "DDIM"' in older.json()["info"], older.text
    for bad in ("/etc/passwd", "no-such-model"):
        answer = httpx.post(f"{server}/sdapi/v1/options", json={"sd_model_checkpoint": bad}, auth=auth)
        assert answer.status_code == 400 and "sd_model_checkpoint" in answer.json()["error"], answer.text
    assert api.get_options()["sd_model_checkpoint"] == "demo"  # the refused ones changed nothing


def test_webuiapi_img2img_with_a_mask_and_extras_and_a_wrong_password(server):
    import webuiapi

    host, port = server.rsplit("//", 1)[1].rsplit(":", 1)
    api = webuiapi.WebUIApi(host=host, port=int(port))
    api.set_auth("anyone", TOKEN)
    photo = Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    painted = api.img2img(images=[photo], mask_image=mask, prompt="a ring", steps=4, denoising_strength=0.9,
                          width=64, height=64, seed=5, mask_blur=0)
    assert painted.image.size == (64, 64)
    outside = np.asarray(painted.image.convert("RGB"), dtype=np.int16)[:8]  # far from the mask: kept
    assert np.abs(outside - np.asarray(photo, dtype=np.int16)[:8]).max() <= 1
    only = api.img2img(images=[photo], mask_image=mask, prompt="a ring", steps=4, denoising_strength=0.9, width=64,
                       height=64, seed=5, mask_blur=0, inpaint_full_res=True, inpaint_full_res_padding=8)
    assert "Inpaint area: Only masked, Masked area padding: 8" in api.png_info(only.image).info  # A1111's words
    outside = np.asarray(only.image.convert("RGB"), dtype=np.int16)[:8]
    assert np.abs(outside - np.asarray(photo, dtype=np.int16)[:8]).max() <= 1
    bigger = api.extra_single_image(image=photo, upscaler_1="Lanczos", upscaling_resize=2)
    assert bigger.image.size == (128, 128)
    api.set_auth("anyone", "wrong")
    with pytest.raises(RuntimeError) as refused:  # webuiapi's results raise on a status other than 200
        api.txt2img(prompt="a dot", steps=2, width=64, height=64)
    assert refused.value.args[0] == 401
    assert httpx.get(f"{server}/sdapi/v1/options", auth=httpx.BasicAuth("anyone", "wrong")).status_code == 401


def test_webuiapi_interrupt_ends_the_running_txt2img_with_its_image_so_far(server):
    import threading
    import time

    import webuiapi

    host, port = server.rsplit("//", 1)[1].rsplit(":", 1)
    api = webuiapi.WebUIApi(host=host, port=int(port))
    api.set_auth("anyone", TOKEN)
    made = []
    running = threading.Thread(target=lambda: made.append(api.txt2img(prompt="a dot", steps=1000, width=64, height=64,
                                                                      seed=7, n_iter=2)))
    running.start()
    deadline = time.monotonic() + 120
    while api.get_progress()["state"]["sampling_step"] < 2:
        assert time.monotonic() < deadline and running.is_alive(), "the request never got going"
        time.sleep(0.05)
    api.interrupt()
    running.join(120)
    [result] = made
    assert len(result.images) == 1 and result.image.size == (64, 64)  # the second image was not begun
    assert result.info["steps"] == 1000 and result.info["all_seeds"] == [7]  # what was asked, as A1111 says
