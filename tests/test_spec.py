import json

import pytest

from genimg.errors import UsageError
from genimg.spec import GenerationSpec, LoraSpec


def test_spec_dict_round_trip_keeps_only_what_differs():
    spec = GenerationSpec("p", seed=3, width=64, preset_overrides={"dtype": "bf16"})
    assert spec.to_dict() == {"prompt": "p", "seed": 3, "width": 64, "preset_overrides": {"dtype": "bf16"}}
    assert GenerationSpec.from_dict(spec.to_dict()) == spec


def test_unknown_setting_names_the_known_ones():
    with pytest.raises(UsageError, match="did you mean 'steps'"):
        GenerationSpec.from_dict({"prompt": "p", "stpes": 3})


@pytest.mark.parametrize("data,words", [
    ({"prompt": "p", "steps": "many"}, "steps must be a whole number (got 'many')"),
    ({"prompt": "p", "count": "x"}, "count must be a whole number (got 'x')"),
    ({"prompt": "p", "cfg": "high"}, "guidance must be a number (got 'high')"),
    ({"prompt": "p", "seed": 1.5}, "seed must be a whole number"),
    ({"prompt": "p", "size": "big"}, "size must look like 512x768"),
    ({"prompt": "p", "extend": "up:5"}, "give sides from left, right, top, bottom"),
    ({"prompt": "p", "mask_rect": "1,2"}, "rect takes 4 comma-separated numbers"),
    ({"prompt": "p", "control": "canny"}, "controlnet needs a ControlNet model"),
    ({"prompt": "p", "control": ["canny=a.png,scael=2"]}, "unknown key 'scael' (did you mean 'scale'?)"),
    ({"prompt": "p", "allow_pickle": "maybe"}, "allow_pickle must be true or false"),
    ({"prompt": "p", "stpes": 3}, "did you mean 'steps'"),
    ({"steps": 3}, "no prompt"),
])
def test_every_way_in_coerces_once_and_names_the_field(data, words):
    from genimg.errors import UsageError

    with pytest.raises(UsageError, match=None) as caught:
        GenerationSpec.from_dict(data, where="jobs.toml:4")
    assert str(caught.value).startswith("jobs.toml:4: ") and words in str(caught.value)


def test_names_users_know_map_to_the_same_spec():
    a = GenerationSpec.from_dict({"prompt": "p", "cfg_scale": "7", "sampler": "Euler a", "size": "64x32",
                                  "negative_prompt": "n", "denoising_strength": "0.5", "lora": "a.safetensors:0.5"})
    b = GenerationSpec.from_dict({"prompt": "p", "guidance": 7.0, "scheduler": "Euler a", "width": 64, "height": 32,
                                  "negative": "n", "strength": 0.5, "loras": [{"path": "a.safetensors", "weight": 0.5}]})
    assert a == b and a.loras == (LoraSpec("a.safetensors", 0.5),)


def test_parts_serialise_to_readable_json_and_back():
    spec = GenerationSpec.from_dict({"prompt": "p", "task": "inpaint", "image": "in.png", "mask_rect": "1,2,3,4",
                                     "mask_blur": 2, "control": ["canny=c.png,scale=0.5,end=0.6,model=cn"]})
    data = spec.to_dict()
    assert data["mask"] == {"rect": [1, 2, 3, 4], "blur": 2}
    assert data["controls"] == [{"type": "canny", "image": "c.png", "model": "cn", "scale": 0.5, "end": 0.6}]
    assert GenerationSpec.from_dict(json.loads(json.dumps(data))) == spec
    out = GenerationSpec.from_dict({"prompt": "p", "task": "inpaint", "image": "in.png", "extend": "left,top:32",
                                    "fill": "noise"})
    assert out.to_dict()["outpaint"] == {"left": 32, "top": 32, "fill": "noise"}
    assert GenerationSpec.from_dict(out.to_dict()) == out


def test_a_control_takes_a1111s_weight_for_its_scale_and_typed_settings():
    from genimg.spec import ControlSpec

    control = ControlSpec.parse("canny=a.png,weight=0.5,low=50,model=cn")
    assert (control.scale, control.settings) == (0.5, {"low": 50})
    assert ControlSpec.parse({"type": "canny", "image": "a.png", "settings": {"high": "150"}}).settings == {"high": 150}
