"""ControlNets modify any task: --control on txt2img, img2img and inpaint; several at once; start/end."""

import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from conftest import pixels
from genimg.output.metadata import read_metadata

FAST = ("-W", "64", "-H", "64", "--steps", "4", "--seed", "5")


@pytest.fixture
def maps(tmp_path):
    ring = Image.new("RGB", (64, 64), "black")
    ImageDraw.Draw(ring).ellipse((12, 12, 52, 52), outline="white", width=3)
    ring.save(tmp_path / "ring.png")
    bars = Image.new("RGB", (64, 64), "black")
    for x in range(4, 64, 12):
        ImageDraw.Draw(bars).rectangle((x, 0, x + 3, 63), fill="white")
    bars.save(tmp_path / "bars.png")
    photo = Image.new("RGB", (64, 64), (30, 90, 200))
    ImageDraw.Draw(photo).rectangle((16, 16, 48, 48), fill=(220, 40, 40))
    photo.save(tmp_path / "photo.png")
    return tmp_path


def _make(cli, out, *args):
    result = cli(*args, *FAST, "-o", out, "--json")
    assert result.code == 0, result
    return pixels(out).astype(int)


@pytest.mark.parametrize("family", ["sd", "sdxl"])
@pytest.mark.parametrize("task", ["img2img", "inpaint"])
def test_a_control_steers_img2img_and_inpaint_and_scale_zero_changes_nothing(cli, tmp_path, tiny_models,
                                                                             tiny_controlnets, maps, family, task):
    model = ("-m", tiny_models[family])
    extra = ("--mask-rect", "8,8,48,48") if task == "inpaint" else ()
    cn = tiny_controlnets[family]
    plain = _make(cli, tmp_path / "plain.png", task, maps / "photo.png", "a ring", *model, *extra)
    steered = _make(cli, tmp_path / "steered.png", task, maps / "photo.png", "a ring", *model, *extra,
                    "--control", f"none={maps / 'ring.png'},model={cn}")
    zero = _make(cli, tmp_path / "zero.png", task, maps / "photo.png", "a ring", *model, *extra,
                 "--control", f"none={maps / 'ring.png'},scale=0,model={cn}")
    assert np.abs(steered - plain).mean() > 1
    assert np.abs(zero - plain).max() <= 1
    meta = read_metadata(tmp_path / "steered.png")
    assert "ControlNet 0: \"Module: none, Model: " in meta["parameters_text"]
    assert meta["genimg"]["spec"]["controls"][0]["model"] == str(cn)


def test_two_controls_each_with_its_weight(cli, tmp_path, tiny_models, tiny_controlnets, maps):
    model = ("-m", tiny_models["sd"])
    cn = tiny_controlnets["sd"]
    ring = _make(cli, tmp_path / "only-ring.png", "txt2img", "x", *model, "--control", f"none={maps / 'ring.png'},model={cn}")
    both = _make(cli, tmp_path / "both.png", "txt2img", "x", *model, "--control", f"none={maps / 'ring.png'},model={cn}",
                 "--control", f"none={maps / 'bars.png'},scale=0.7,model={cn}")
    bars_off = _make(cli, tmp_path / "off.png", "txt2img", "x", *model,
                     "--control", f"none={maps / 'ring.png'},model={cn}",
                     "--control", f"none={maps / 'bars.png'},scale=0,model={cn}")
    assert np.abs(both - ring).mean() > 1  # the second control acts
    assert np.abs(bars_off - ring).max() <= 1  # and at weight 0 it is as if it were not there
    text = read_metadata(tmp_path / "both.png")["parameters_text"]
    assert "ControlNet 0: " in text and "ControlNet 1: \"Module: none" in text and "Weight: 0.7" in text


def test_start_and_end_limit_the_steps_where_the_control_acts(cli, tmp_path, tiny_models, tiny_controlnets, maps):
    model = ("-m", tiny_models["sd"])
    cn = tiny_controlnets["sd"]
    control = f"none={maps / 'ring.png'},model={cn}"
    full = _make(cli, tmp_path / "full.png", "txt2img", "x", *model, "--control", control)
    first_half = _make(cli, tmp_path / "half.png", "txt2img", "x", *model, "--control", control + ",end=0.5")
    none = _make(cli, tmp_path / "none.png", "txt2img", "x", *model)
    # A control acting on no step at all (start at the very end) equals no control.
    late = _make(cli, tmp_path / "late.png", "txt2img", "x", *model, "--control", control + ",start=0.99")
    assert np.abs(first_half - full).mean() > 0.5 and np.abs(first_half - none).mean() > 0.5
    assert np.abs(late - none).max() <= 1


def test_controlnet_command_is_txt2img_with_one_control(cli, tmp_path, tiny_models, tiny_controlnets, maps):
    cn = tiny_controlnets["sd"]
    a = _make(cli, tmp_path / "a.png", "controlnet", maps / "ring.png", "x", "-m", tiny_models["sd"], "--controlnet", cn,
              "--control-scale", "0.8")
    b = _make(cli, tmp_path / "b.png", "txt2img", "x", "-m", tiny_models["sd"],
              "--control", f"none={maps / 'ring.png'},scale=0.8,model={cn}")
    assert np.array_equal(a, b)
    again = cli("txt2img", "--from", tmp_path / "a.png", "-o", tmp_path / "c.png", "--json")
    assert again.code == 0, again
    assert np.array_equal(pixels(tmp_path / "c.png").astype(int), a)
    assert json.loads(again.out)["settings"]["controls"][0]["scale"] == 0.8


@pytest.mark.parametrize("control,words", [
    ("cany={img},model={cn}", "unknown control type 'cany' (did you mean 'canny'?)"),
    ("canny={img}", "names no ControlNet"),
    ("none={img},scale=3,model={cn}", "scale must be between 0 and 2"),
    ("none={img},start=0.6,end=0.4,model={cn}", "start < end"),
    ("none=missing.png,model={cn}", "does not exist"),
    ("none={img},model={flux_cn}", "not a ControlNet for this SD"),
    ("ring.png", "TYPE=IMAGE"),
])
def test_bad_controls(cli, tmp_path, tiny_models, tiny_controlnets, maps, control, words):
    control = control.format(img=maps / "ring.png", cn=tiny_controlnets["sd"], flux_cn=tiny_controlnets["flux"])
    result = cli("txt2img", "x", "-m", tiny_models["sd"], *FAST, "--control", control, "-o", tmp_path / "out.png")
    assert result.code == 2, result
    assert words in result.err and len(result.err.strip().splitlines()) == 1
    assert not (tmp_path / "out.png").exists()
