"""ControlNets modify any task: --control on txt2img, img2img and inpaint; several at once; start/end."""

import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from genimg.testing.images import pixels
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
    ("mlsd={img}", "ControlNet lllyasviel/control_v11p_sd15_mlsd is not in the Hugging Face cache"),
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


@pytest.fixture(scope="session")
def union_controlnet(tiny_models, tmp_path_factory):
    from genimg.testing.tiny_models import save_tiny_union_controlnet

    return save_tiny_union_controlnet(tiny_models["sdxl"], tmp_path_factory.mktemp("union") / "union")


def test_a_union_controlnet_reads_each_map_by_its_mode(cli, tmp_path, tiny_models, union_controlnet, maps):
    model = ("txt2img", "x", "-m", tiny_models["sdxl"])
    control = f"none={maps / 'ring.png'},model={union_controlnet}"
    plain = _make(cli, tmp_path / "plain.png", *model)
    canny = _make(cli, tmp_path / "canny.png", *model, "--control", control + ",mode=canny")
    depth = _make(cli, tmp_path / "depth.png", *model, "--control", control + ",mode=depth")
    zero = _make(cli, tmp_path / "zero.png", *model, "--control", control + ",mode=canny,scale=0")
    assert np.abs(canny - plain).mean() > 0.5 and np.abs(canny - depth).mean() > 0.5
    assert np.abs(zero - plain).max() <= 1
    # The type gives the mode: a canny control on the union model is read as canny.
    typed = _make(cli, tmp_path / "typed.png", *model, "--control", f"canny={maps / 'bars.png'},model={union_controlnet}")
    from genimg.control import preprocess

    preprocess(Image.open(maps / "bars.png").convert("RGB"), "canny").save(tmp_path / "bars-edges.png")
    by_hand = _make(cli, tmp_path / "hand.png", *model, "--control",
                    f"none={tmp_path / 'bars-edges.png'},mode=canny,model={union_controlnet}")
    assert np.array_equal(typed, by_hand)
    assert "Union mode: 3" in read_metadata(tmp_path / "typed.png")["parameters"]["ControlNet 0"]


def test_two_maps_on_one_union_controlnet_each_with_its_scale(cli, tmp_path, tiny_models, union_controlnet, maps):
    model = ("img2img", maps / "photo.png", "x", "-m", tiny_models["sdxl"], "--strength", "0.9")
    ring = f"none={maps / 'ring.png'},mode=canny,model={union_controlnet}"
    bars = f"none={maps / 'bars.png'},mode=depth,model={union_controlnet}"
    one = _make(cli, tmp_path / "one.png", *model, "--control", ring)
    both = _make(cli, tmp_path / "both.png", *model, "--control", ring, "--control", bars)
    off = _make(cli, tmp_path / "off.png", *model, "--control", ring, "--control", bars + ",scale=0")
    assert np.abs(both - one).mean() > 0.5 and np.abs(off - one).max() <= 1


@pytest.mark.parametrize("control,words", [
    ("none={img},model={union}", "must be told what kind of map it is: add ,mode= one of openpose, depth"),
    ("none={img},mode=cany,model={union}", "control mode 'cany' (did you mean 'canny'?)"),
    ("shuffle={img},model={union}", "add ,mode="),
])
def test_bad_union_controls_are_one_line(cli, tmp_path, tiny_models, union_controlnet, maps, control, words):
    control = control.format(img=maps / "ring.png", union=union_controlnet)
    result = cli("txt2img", "x", "-m", tiny_models["sdxl"], *FAST, "--control", control, "-o", tmp_path / "o.png")
    assert result.code == 2 and result.err.count("\n") == 1, result
    assert words in result.err


def test_union_and_plain_controlnets_do_not_mix_and_sd_refuses_a_union(cli, tmp_path, tiny_models, tiny_controlnets,
                                                                        union_controlnet, maps):
    ring = maps / "ring.png"
    mixed = cli("txt2img", "x", "-m", tiny_models["sdxl"], *FAST, "--control", f"canny={ring},model={union_controlnet}",
                "--control", f"none={ring},model={tiny_controlnets['sdxl']}", "-o", tmp_path / "a.png")
    assert mixed.code == 2 and "union and single-purpose ControlNets cannot steer one generation" in mixed.err
    sd = cli("txt2img", "x", "-m", tiny_models["sd"], *FAST, "--control", f"canny={ring},model={union_controlnet}",
             "-o", tmp_path / "b.png")
    assert sd.code == 2 and "ControlNetUnionModel, not a ControlNet for this SD model" in sd.err


def test_a_union_controlnet_is_found_by_hub_id_in_the_cache(cli, tmp_path, tiny_models, union_controlnet, maps):
    import os
    from pathlib import Path

    from genimg.testing.tiny_models import install_in_hf_cache

    install_in_hf_cache(union_controlnet, "genimg-test/tiny-union", Path(os.environ["HF_HUB_CACHE"]))
    model = ("txt2img", "x", "-m", tiny_models["sdxl"])
    by_id = _make(cli, tmp_path / "id.png", *model, "--control", f"canny={maps / 'ring.png'},model=genimg-test/tiny-union")
    by_path = _make(cli, tmp_path / "path.png", *model, "--control", f"canny={maps / 'ring.png'},model={union_controlnet}")
    assert np.array_equal(by_id, by_path)


def test_a_flux_union_controlnet_takes_its_own_modes(cli, tmp_path, tiny_models, maps, monkeypatch):
    """FLUX's union ControlNets read the mode as one extra text token, which barely moves a 64² picture
    of the tiny model: what is checked is the mode each map reaches the ControlNet with."""
    from diffusers import FluxControlNetModel

    from genimg.testing.tiny_models import save_tiny_controlnet

    seen = []
    forward = FluxControlNetModel.forward

    def spy(self, *args, controlnet_mode=None, **kwargs):
        seen.append(sorted(set(controlnet_mode.flatten().tolist())))
        return forward(self, *args, controlnet_mode=controlnet_mode, **kwargs)

    monkeypatch.setattr(FluxControlNetModel, "forward", spy)
    union = save_tiny_controlnet(tiny_models["flux"], tmp_path / "flux-union", modes=7)
    model = ("txt2img", "x", "-m", tiny_models["flux"])
    _make(cli, tmp_path / "depth.png", *model, "--control", f"none={maps / 'ring.png'},mode=depth,model={union}")
    assert seen and all(modes == [2] for modes in seen)  # InstantX's depth
    seen.clear()
    _make(cli, tmp_path / "typed.png", *model, "--control", f"canny={maps / 'ring.png'},model={union}",
          "--control", f"none={maps / 'bars.png'},mode=openpose,model={union}")
    assert {tuple(m) for m in seen} == {(0,), (4,)}  # canny, pose: each map its own
    assert "Union mode: 0" in read_metadata(tmp_path / "typed.png")["parameters"]["ControlNet 0"]
    softedge = cli(*model, *FAST, "--control", f"none={maps / 'ring.png'},mode=softedge,model={union}",
                   "-o", tmp_path / "s.png")
    assert softedge.code == 2 and "'softedge' is not one FLUX union ControlNets know; use one of canny, tile" in softedge.err


def test_a_control_without_a_model_takes_the_familys_default_from_the_cache(cli, tmp_path, tiny_models,
                                                                            tiny_controlnets, union_controlnet, maps):
    import os
    from pathlib import Path

    from genimg.testing.tiny_models import install_in_hf_cache

    cache = Path(os.environ["HF_HUB_CACHE"])
    install_in_hf_cache(tiny_controlnets["sd"], "lllyasviel/control_v11p_sd15_canny", cache)
    install_in_hf_cache(union_controlnet, "xinsir/controlnet-union-sdxl-1.0", cache)
    for family, repo in (("sd", "lllyasviel/control_v11p_sd15_canny"), ("sdxl", "xinsir/controlnet-union-sdxl-1.0")):
        model = ("txt2img", "x", "-m", tiny_models[family])
        default = _make(cli, tmp_path / f"{family}-default.png", *model, "--control", f"canny={maps / 'photo.png'}")
        named = _make(cli, tmp_path / f"{family}-named.png", *model, "--control", f"canny={maps / 'photo.png'},model={repo}")
        assert np.array_equal(default, named)
        [control] = read_metadata(tmp_path / f"{family}-default.png")["genimg"]["spec"]["controls"]
        assert control["model"] == repo  # recorded, so --from needs no table
    flux = cli("txt2img", "x", "-m", tiny_models["flux"], *FAST, "--control", f"normal={maps / 'ring.png'}",
               "-o", tmp_path / "f.png")
    assert flux.code == 2 and "no ControlNet is configured for normal controls on FLUX models" in flux.err


def test_the_demo_model_steers_with_demo_canny_by_default(cli, tmp_path, maps):
    common = ("txt2img", "a red circle", "-m", "demo", "--steps", "4", "--seed", "3", "-o")
    assert cli(*common, tmp_path / "a.png", "--control", f"canny={maps / 'photo.png'}").code == 0
    assert cli(*common, tmp_path / "b.png", "--control", f"canny={maps / 'photo.png'},model=demo-canny").code == 0
    assert np.array_equal(pixels(tmp_path / "a.png"), pixels(tmp_path / "b.png"))
