"""`genimg edit`: instruction editing as a task of its own (FLUX.1 Kontext), on the tiny FLUX model."""

import json

import numpy as np
import pytest
from PIL import Image

from genimg.testing.images import pixels


@pytest.fixture
def photo(tmp_path):
    from skimage import data

    Image.fromarray(data.astronaut()).resize((80, 48)).save(tmp_path / "in.png")
    return tmp_path / "in.png"


def _edit(cli, out, photo, model, instruction, *extra):
    result = cli("edit", photo, instruction, "-m", model, "--steps", "3", "--seed", "7", "-o", out, "--json", *extra)
    assert result.code == 0, result
    return json.loads(result.out)


def test_an_edit_keeps_the_inputs_size_and_follows_its_instruction(cli, tmp_path, tiny_models, photo):
    night = _edit(cli, tmp_path / "night.png", photo, tiny_models["flux"], "make it night")
    _edit(cli, tmp_path / "again.png", photo, tiny_models["flux"], "make it night")
    snow = _edit(cli, tmp_path / "snow.png", photo, tiny_models["flux"], "add snow")
    assert Image.open(tmp_path / "night.png").size == (80, 48)  # the input's, a multiple of 16 already
    assert np.array_equal(pixels(tmp_path / "night.png"), pixels(tmp_path / "again.png"))
    assert np.abs(pixels(tmp_path / "night.png") - pixels(tmp_path / "snow.png")).mean() > 0.5
    assert night["settings"]["task"] == "edit" and "strength" not in night["settings"] and snow["steps_run"] == 3


def test_the_edit_is_kontexts_own_picture(cli, tmp_path, tiny_models, photo):
    import torch
    from diffusers import FluxKontextPipeline

    _edit(cli, tmp_path / "g.png", photo, tiny_models["flux"], "make it night", "--preset", "cpu")
    pipe = FluxKontextPipeline.from_pretrained(tiny_models["flux"])
    expected = pipe(prompt="make it night", image=Image.open(photo).convert("RGB"), width=80, height=48,
                    num_inference_steps=3, guidance_scale=3.5, generator=torch.Generator("cpu").manual_seed(7),
                    output_type="np", _auto_resize=False, max_area=80 * 48).images[0]
    assert np.abs(pixels(tmp_path / "g.png") - (expected * 255).round()).max() <= 1


def test_an_edit_png_remakes_itself_and_other_families_say_what_edits(cli, tmp_path, tiny_models, photo):
    _edit(cli, tmp_path / "e.png", photo, tiny_models["flux"], "make it night")
    again = cli("edit", photo, "make it night", "--from", tmp_path / "e.png", "-o", tmp_path / "f.png")
    assert again.code == 0, again
    assert np.array_equal(pixels(tmp_path / "e.png"), pixels(tmp_path / "f.png"))
    sd = cli("edit", photo, "make it night", "-m", tiny_models["sd"], "-o", tmp_path / "s.png")
    assert sd.code == 2 and "instruction editing is for FLUX.1 Kontext and FLUX.2 models" in sd.err, sd


def test_an_edit_with_a_mask_changes_only_inside_it_and_is_kontext_inpaints_picture(cli, tmp_path, tiny_models, photo):
    import torch
    from diffusers import FluxKontextInpaintPipeline

    mask = Image.new("L", (80, 48), 0)
    mask.paste(255, (16, 8, 64, 40))
    mask.save(tmp_path / "mask.png")
    made = _edit(cli, tmp_path / "m.png", photo, tiny_models["flux"], "make it night", "--mask", tmp_path / "mask.png",
                 "--mask-blur", "0", "--preset", "cpu")
    assert made["settings"]["task"] == "edit" and made["settings"]["mask"]["path"] == str(tmp_path / "mask.png")
    edited, original = pixels(tmp_path / "m.png"), pixels(photo)
    assert edited.shape == original.shape
    assert np.array_equal(edited[:8], original[:8]) and np.array_equal(edited[:, :16], original[:, :16])  # kept
    assert np.abs(edited[8:40, 16:64] - original[8:40, 16:64]).mean() > 5  # repainted
    pipe = FluxKontextInpaintPipeline.from_pretrained(tiny_models["flux"])
    expected = pipe(prompt="make it night", image=Image.open(photo).convert("RGB"), mask_image=mask, width=80,
                    height=48, strength=1.0, num_inference_steps=3, guidance_scale=3.5,
                    generator=torch.Generator("cpu").manual_seed(7), output_type="np", _auto_resize=False,
                    max_area=80 * 48).images[0]
    inside = np.asarray(mask) == 255
    assert np.abs(edited[inside] - (expected * 255).round()[inside]).max() <= 1
    again = cli("edit", photo, "make it night", "--from", tmp_path / "m.png", "-o", tmp_path / "m2.png")
    assert again.code == 0 and np.array_equal(pixels(tmp_path / "m2.png"), edited)


def test_edit_from_its_png_needs_neither_image_nor_instruction(cli, tmp_path, tiny_models, photo):
    _edit(cli, tmp_path / "e.png", photo, tiny_models["flux"], "make it night")
    again = cli("edit", "--from", tmp_path / "e.png", "-o", tmp_path / "f.png")
    assert again.code == 0, again
    assert np.array_equal(pixels(tmp_path / "e.png"), pixels(tmp_path / "f.png"))
