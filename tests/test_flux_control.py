"""FLUX.1 Depth/Canny: models that read a control map themselves (FluxControlPipeline), on a tiny model
of that shape — no ControlNet loaded, the map given to the transformer, the picture diffusers' own."""

import json

import numpy as np
import pytest
from PIL import Image

from genimg.testing.images import pixels


@pytest.fixture(scope="module")
def flux_control(tmp_path_factory):
    from genimg.testing.tiny_models import save_tiny

    return save_tiny("flux-control", tmp_path_factory.mktemp("tiny") / "flux-control")


@pytest.fixture
def edges(tmp_path):
    image = Image.new("RGB", (64, 48), "black")
    image.paste((255, 255, 255), (16, 8, 48, 40))
    image.save(tmp_path / "square.png")
    return tmp_path / "square.png"


def _run(cli, out, model, control, *extra):
    result = cli("txt2img", "a box", "-m", model, "--control", f"none={control}", "--steps", "3", "--seed", "4",
                 "--preset", "cpu", "-o", out, "--json", *extra)
    assert result.code == 0, result
    return json.loads(result.out)


def test_the_model_reads_the_map_itself_and_makes_diffusers_own_picture(cli, tmp_path, flux_control, edges):
    import torch
    from diffusers import FluxControlPipeline

    made = _run(cli, tmp_path / "a.png", flux_control, edges)
    assert Image.open(tmp_path / "a.png").size == (64, 48)  # the control image's size, as for ControlNets
    assert made["settings"]["controls"][0]["type"] == "none"
    pipe = FluxControlPipeline.from_pretrained(flux_control)
    expected = pipe(prompt="a box", control_image=Image.open(edges).convert("RGB"), width=64, height=48,
                    num_inference_steps=3, guidance_scale=3.5, generator=torch.Generator("cpu").manual_seed(4),
                    output_type="np").images[0]
    assert np.abs(pixels(tmp_path / "a.png") - (expected * 255).round()).max() <= 1


def test_another_map_another_picture_and_the_png_remakes_itself(cli, tmp_path, flux_control, edges):
    _run(cli, tmp_path / "a.png", flux_control, edges)
    flipped = tmp_path / "flipped.png"
    Image.open(edges).transpose(Image.Transpose.ROTATE_180).crop((0, 0, 64, 48)).save(flipped)
    Image.new("RGB", (64, 48), "black").save(tmp_path / "blank.png")
    _run(cli, tmp_path / "b.png", flux_control, tmp_path / "blank.png")
    assert np.abs(pixels(tmp_path / "a.png") - pixels(tmp_path / "b.png")).mean() > 0.5
    again = cli("txt2img", "--from", tmp_path / "a.png", "-o", tmp_path / "c.png")
    assert again.code == 0, again
    assert np.array_equal(pixels(tmp_path / "a.png"), pixels(tmp_path / "c.png"))


def test_it_needs_exactly_one_control_and_no_controlnet(cli, tmp_path, flux_control, edges):
    bare = cli("txt2img", "a box", "-m", flux_control, "--steps", "2", "-o", tmp_path / "x.png")
    assert bare.code == 2 and "reads one control map itself" in bare.err, bare
    named = cli("txt2img", "a box", "-m", flux_control, "--control", f"none={edges},model=other", "-o", tmp_path / "y.png")
    assert named.code == 2 and "without model=" in named.err and not (tmp_path / "y.png").exists()
    scaled = cli("txt2img", "a box", "-m", flux_control, "--control", f"none={edges},scale=0.5", "--steps", "2",
                 "-o", tmp_path / "z.png")
    assert scaled.code == 0 and "no scale, start or end; they are ignored" in scaled.err, scaled


def test_img2img_and_inpaint_take_the_map_too(cli, tmp_path, flux_control, edges):
    import torch
    from diffusers import FluxControlImg2ImgPipeline

    Image.new("RGB", (64, 48), (200, 40, 40)).save(tmp_path / "red.png")
    made = cli("img2img", tmp_path / "red.png", "a box", "-m", flux_control, "--control", f"none={edges}",
               "--steps", "4", "--strength", "0.5", "--seed", "4", "--preset", "cpu", "-o", tmp_path / "i.png")
    assert made.code == 0, made
    pipe = FluxControlImg2ImgPipeline.from_pretrained(flux_control)
    expected = pipe(prompt="a box", image=Image.open(tmp_path / "red.png"), control_image=Image.open(edges).convert("RGB"),
                    width=64, height=48, strength=0.5, num_inference_steps=4, guidance_scale=3.5,
                    generator=torch.Generator("cpu").manual_seed(4), output_type="np").images[0]
    assert np.abs(pixels(tmp_path / "i.png") - (expected * 255).round()).max() <= 1
    mask = Image.new("L", (64, 48), 0)
    mask.paste(255, (0, 0, 32, 48))
    mask.save(tmp_path / "mask.png")
    painted = cli("inpaint", tmp_path / "red.png", "a box", "--mask", tmp_path / "mask.png", "-m", flux_control, "--control",
                  f"none={edges}", "--steps", "4", "--seed", "4", "--preset", "cpu", "-o", tmp_path / "p.png")
    assert painted.code == 0, painted
    assert Image.open(tmp_path / "p.png").size == (64, 48)
    kept = pixels(tmp_path / "p.png")[:, 40:]  # right of the mask (and of its soft edge): the input
    assert np.abs(kept - np.array([200, 40, 40])).max() <= 6


def test_a_single_file_of_that_shape_is_told_apart_from_fill_and_plain_flux(tmp_path):
    from safetensors.torch import save_file
    import torch

    from genimg.models.resolve import resolve_model

    for channels, variant in ((64, None), (128, "control"), (384, "inpaint")):
        path = tmp_path / f"flux-{channels}.safetensors"
        save_file({"double_blocks.0.img_attn.qkv.weight": torch.zeros(1), "img_in.weight": torch.zeros(8, channels),
                   "single_blocks.0.linear1.weight": torch.zeros(1), "time_in.in_layer.weight": torch.zeros(1)}, path)
        assert resolve_model(str(path)).variant == variant, channels


@pytest.fixture(scope="module")
def control_lora(flux_control, tmp_path_factory):
    from genimg.testing.loras import save_control_lora

    return save_control_lora(flux_control, tmp_path_factory.mktemp("control-lora") / "depth-lora")


def test_a_control_lora_widens_the_base_model_as_diffusers_does_and_leaves_it_as_it_was(tmp_path, tiny_models, control_lora,
                                                                                          edges):
    import torch
    from diffusers import FluxControlPipeline

    from genimg.factory import PipelineFactory
    from genimg.generation import generate
    from genimg.spec import GenerationSpec

    factory = PipelineFactory()
    base = GenerationSpec("a box", model=str(tiny_models["flux"]), steps=3, seed=4, preset="cpu", width=64, height=48)
    plain = generate(base, factory)[0].image
    steered = generate(base.replace(controls=[f"none={edges},model={control_lora},scale=0.8"]), factory)[0]
    after = generate(base, factory)[0].image  # the same loaded model, the LoRA and its wider input gone
    assert factory.loads == 1 and np.array_equal(np.asarray(plain), np.asarray(after))
    assert steered.image.size == (64, 48)
    assert [(layers.layers, layers.matched) for layers in steered.lora_layers] == [(8, 8)]  # x_embedder too
    pipe = FluxControlPipeline.from_pretrained(tiny_models["flux"])
    pipe.load_lora_weights(str(control_lora), adapter_name="depth")
    pipe.set_adapters(["depth"], adapter_weights=[0.8])  # the control's scale is the LoRA's weight
    expected = pipe(prompt="a box", control_image=Image.open(edges).convert("RGB"), width=64, height=48,
                    num_inference_steps=3, guidance_scale=3.5, generator=torch.Generator("cpu").manual_seed(4),
                    output_type="np").images[0]
    assert np.abs(np.asarray(steered.image, dtype=np.float64) - (expected * 255).round()).max() <= 1


def test_a_control_lora_png_remakes_itself_and_the_lora_steers_alone(cli, tmp_path, tiny_models, control_lora, edges):
    made = _run(cli, tmp_path / "a.png", tiny_models["flux"], f"{edges},model={control_lora}")
    assert made["settings"]["controls"][0]["model"] == str(control_lora)
    again = cli("txt2img", "--from", tmp_path / "a.png", "-o", tmp_path / "b.png")
    assert again.code == 0 and np.array_equal(pixels(tmp_path / "a.png"), pixels(tmp_path / "b.png"))
    two = cli("txt2img", "a box", "-m", tiny_models["flux"], "--control", f"none={edges},model={control_lora}",
              "--control", f"canny={edges},model={control_lora}", "-o", tmp_path / "c.png")
    assert two.code == 2 and "steers a FLUX.1 base model (dev) alone" in two.err, two
    sd = cli("txt2img", "a box", "-m", tiny_models["sd"], "--control", f"none={edges},model={control_lora}",
             "-o", tmp_path / "d.png")
    assert sd.code == 2 and sd.err.count("\n") == 1, sd
