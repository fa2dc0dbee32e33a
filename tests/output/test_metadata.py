"""PNG metadata: A1111's `parameters` text and genimg's own record round-trip."""

import json

from PIL import Image

from genimg.output.metadata import a1111_parameters, parse_parameters, quote, read_metadata
from genimg.spec import GenerationSpec


def test_a1111_layout_and_key_order():
    spec = GenerationSpec("a cat, best quality", negative="blurry", width=512, height=768, steps=20, guidance=7.0,
                          scheduler="DPM++ 2M Karras", seed=1234)
    text = a1111_parameters(spec, "v1-5-pruned", "6ce0161689")
    assert text.splitlines() == [
        "a cat, best quality",
        "Negative prompt: blurry",
        'Steps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 1234, Size: 512x768, Model hash: 6ce0161689, '
        'Model: v1-5-pruned, Version: genimg 0.1.0',
    ]


def test_values_with_commas_or_colons_are_quoted_like_a1111():
    assert quote("plain") == "plain"
    assert quote("a, b") == '"a, b"'
    assert quote("k: v") == '"k: v"'


def test_parses_a_real_a1111_string():
    text = ("masterpiece, 1girl\nsecond line\nNegative prompt: lowres, bad hands\n"
            'Steps: 28, Sampler: Euler a, Schedule type: Automatic, CFG scale: 6.5, Seed: 42, Size: 832x1216, '
            'Model hash: abcdef1234, Model: "my, model", Denoising strength: 0.4, Version: v1.10.1')
    parsed = parse_parameters(text)
    assert parsed["prompt"] == "masterpiece, 1girl\nsecond line"
    assert parsed["negative"] == "lowres, bad hands"
    assert parsed["Steps"] == "28" and parsed["Sampler"] == "Euler a" and parsed["Model"] == "my, model"
    assert parsed["Denoising strength"] == "0.4"


def test_single_file_models_record_the_a1111_model_hash(cli, tmp_path, tiny_models, sd_single_file):
    import hashlib

    target = tmp_path / "h.png"
    assert cli("txt2img", "x", "--model", sd_single_file, "--config", tiny_models["sd"], "-W", "64", "-H", "64",
               "--steps", "2", "--seed", "1", "-o", target).code == 0
    expected = hashlib.sha256(sd_single_file.read_bytes()).hexdigest()[:10]
    assert read_metadata(target)["parameters"]["Model hash"] == expected


def test_info_command_prints_the_parameters(cli, tmp_path, tiny_models):
    target = tmp_path / "i.png"
    assert cli("txt2img", "a star", "--model", tiny_models["sd"], "-W", "64", "-H", "64", "--steps", "2", "--seed", "3",
               "-o", target).code == 0
    shown = cli("info", target)
    assert shown.code == 0 and shown.out.startswith("a star\n") and "Seed: 3" in shown.out
    as_json = json.loads(cli("info", target, "--json").out)
    assert as_json["genimg"]["spec"]["seed"] == 3


def test_info_on_an_image_without_metadata(cli, tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "plain.png")
    result = cli("info", tmp_path / "plain.png")
    assert result.code == 2 and "no generation metadata" in result.err
