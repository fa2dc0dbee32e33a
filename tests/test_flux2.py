"""FLUX.2 as a model line ([dev] and [klein]): txt2img, editing from several images, [klein]'s inpainting,
LoRAs (loaded and trained), and what the line refuses — on tiny models of the real classes (Mistral 3 and
Qwen3 text encoders, the 32-channel VAE), each picture checked against diffusers' own pipeline."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from genimg.testing.images import pixels


@pytest.fixture(scope="module")
def flux2(tmp_path_factory):
    from genimg.testing.tiny_models import save_tiny

    root = tmp_path_factory.mktemp("flux2")
    return {family: save_tiny(family, root / family) for family in ("flux2", "flux2-klein")}


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    from skimage import data

    root = tmp_path_factory.mktemp("flux2-photos")
    Image.fromarray(data.astronaut()).resize((96, 64)).save(root / "in.png")
    Image.fromarray(data.coffee()).resize((64, 64)).save(root / "ref.png")
    Image.fromarray(data.chelsea()).resize((32, 32)).save(root / "small.png")
    return root


def _pipe(flux2, family):
    from diffusers import Flux2KleinPipeline, Flux2Pipeline

    return (Flux2KleinPipeline if family == "flux2-klein" else Flux2Pipeline).from_pretrained(flux2[family])


def _theirs(pipe, **kwargs):
    image = pipe(**kwargs, generator=torch.Generator("cpu").manual_seed(kwargs.pop("seed", 5)), output_type="np").images[0]
    return (image * 255).round()


@pytest.mark.parametrize("family,guidance", [("flux2", 4.0), ("flux2-klein", 1.0)])
def test_txt2img_is_the_pipelines_own_picture_with_the_lines_defaults(cli, tmp_path, flux2, family, guidance):
    made = cli("txt2img", "a red fox", "-m", flux2[family], "-W", "64", "-H", "48", "--steps", "3", "--seed", "5",
               "--preset", "cpu", "-o", tmp_path / "a.png", "--json")
    assert made.code == 0, made
    settings = json.loads(made.out)["settings"]
    assert settings["guidance"] == guidance and settings["scheduler"] == "FlowMatch Euler"  # families.toml
    image = Image.open(tmp_path / "a.png")
    assert image.size == (64, 48) and image.mode == "RGB"
    expected = _theirs(_pipe(flux2, family), prompt="a red fox", width=64, height=48, num_inference_steps=3,
                       guidance_scale=guidance)
    assert np.abs(pixels(tmp_path / "a.png") - expected).max() <= 1
    again = cli("txt2img", "a red fox", "--from", tmp_path / "a.png", "-o", tmp_path / "b.png")
    assert again.code == 0 and np.array_equal(pixels(tmp_path / "a.png"), pixels(tmp_path / "b.png"))


@pytest.mark.parametrize("family", ["flux2", "flux2-klein"])
def test_an_edit_from_several_images_is_the_pipelines_own_and_remakes_itself(cli, tmp_path, flux2, photos, family):
    def edit(name, instruction, *extra):
        result = cli("edit", photos / "in.png", instruction, "-m", flux2[family], "--ref", photos / "ref.png", "--steps",
                     "3", "--seed", "5", "--preset", "cpu", "-o", tmp_path / name, "--json", *extra)
        assert result.code == 0, result
        return json.loads(result.out)

    night, snow = edit("night.png", "make it night"), edit("snow.png", "add snow")
    assert Image.open(tmp_path / "night.png").size == (96, 64)  # the input's size
    assert night["settings"]["references"] == [str(photos / "ref.png")] and "strength" not in night["settings"]
    pipe = _pipe(flux2, family)
    inputs = [Image.open(photos / "in.png").convert("RGB"), Image.open(photos / "ref.png").convert("RGB")]
    guidance = night["settings"]["guidance"]
    for name, instruction in (("night.png", "make it night"), ("snow.png", "add snow")):
        expected = _theirs(pipe, prompt=instruction, image=inputs, width=96, height=64, num_inference_steps=3,
                           guidance_scale=guidance)
        assert np.abs(pixels(tmp_path / name) - expected).max() <= 1, name
    assert not np.array_equal(pixels(tmp_path / "night.png"), pixels(tmp_path / "snow.png"))
    with Image.open(tmp_path / "night.png") as png:
        record = json.loads(png.text["genimg"])
    assert len(record["reference_hashes"]) == 1 and record["source_hash"] != record["reference_hashes"][0]
    again = cli("edit", photos / "in.png", "make it night", "--from", tmp_path / "night.png", "-o", tmp_path / "again.png")
    assert again.code == 0 and np.array_equal(pixels(tmp_path / "night.png"), pixels(tmp_path / "again.png"))
    assert snow["steps_run"] == 3


def test_klein_inpaints_inside_the_mask_as_its_own_pipeline_does(cli, tmp_path, flux2, photos):
    from diffusers import Flux2KleinInpaintPipeline

    result = cli("inpaint", photos / "in.png", "a dog", "-m", flux2["flux2-klein"], "--mask-rect", "16,16,48,32",
                 "--mask-blur", "0", "--steps", "4", "--seed", "5", "--preset", "cpu", "-o", tmp_path / "i.png")
    assert result.code == 0, result
    made, original = pixels(tmp_path / "i.png"), pixels(photos / "in.png")
    assert np.array_equal(made[:16], original[:16]) and np.abs(made[16:48, 16:64] - original[16:48, 16:64]).mean() > 5
    mask = Image.new("L", (96, 64), 0)
    mask.paste(255, (16, 16, 64, 48))
    pipe = Flux2KleinInpaintPipeline.from_pretrained(flux2["flux2-klein"])
    expected = _theirs(pipe, prompt="a dog", image=Image.open(photos / "in.png").convert("RGB"), mask_image=mask,
                       width=96, height=64, strength=1.0, num_inference_steps=4, guidance_scale=1.0)
    inside = np.asarray(mask) == 255
    assert np.abs(made[inside] - expected[inside]).max() <= 1


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    """Three captioned photos to train a LoRA on."""
    from skimage import data

    root = tmp_path_factory.mktemp("flux2-shots")
    for name in ("astronaut", "coffee", "chelsea"):
        Image.fromarray(getattr(data, name)()).resize((64, 64)).save(root / f"{name}.png")
        (root / f"{name}.txt").write_text(f"a photo of {name}")
    return root


def _train(cli, shots, model, out, steps: int) -> dict:
    trained = cli("lora-train", shots, "-m", model, "-o", out, "--max-steps", str(steps), "--lr", "1e-2",
                  "--resolution", "64", "--rank", "4", "--alpha", "4", "--json")
    assert trained.code == 0, trained
    return json.loads(trained.out.strip().splitlines()[-1])


def test_a_trained_klein_lora_lowers_the_loss_and_loads_as_diffusers_loads_it(cli, tmp_path, flux2, tiny_models,
                                                                             shots):
    record = _train(cli, shots, flux2["flux2-klein"], tmp_path / "lora", 30)
    assert record["eval_loss_after"] < 0.95 * record["eval_loss_before"]
    made = cli("txt2img", "a photo of coffee", "-m", flux2["flux2-klein"], "--lora", tmp_path / "lora", "-W", "64",
               "-H", "64", "--steps", "3", "--seed", "5", "--preset", "cpu", "-o", tmp_path / "l.png", "--json")
    assert made.code == 0, made
    assert json.loads(made.out)["lora_layers"] == [{"name": "lora", "layers": 9, "matched": 9}]  # to_qkv_mlp_proj too
    pipe = _pipe(flux2, "flux2-klein")
    plain = _theirs(pipe, prompt="a photo of coffee", width=64, height=64, num_inference_steps=3)
    pipe.load_lora_weights(str(tmp_path / "lora"))
    expected = _theirs(pipe, prompt="a photo of coffee", width=64, height=64, num_inference_steps=3)
    assert np.abs(pixels(tmp_path / "l.png") - expected).max() <= 1
    assert np.abs(expected - plain).mean() > np.abs(pixels(tmp_path / "l.png") - expected).mean()
    refused = cli("txt2img", "x", "-m", tiny_models["flux"], "--lora", tmp_path / "lora", "-o", tmp_path / "r.png")
    assert refused.code == 2 and "was made for a FLUX.2 [klein] model" in refused.err, refused


@pytest.mark.parametrize("args,words", [
    (("img2img", "{in}", "x"), ("no img2img pipeline for flux2-klein", "genimg edit")),
    (("txt2img", "x", "--hires", "2"), ("hires fix", "FLUX.2 [klein]", "genimg upscale")),
    (("txt2img", "x", "--ip-adapter", "{in}"), ("takes no IP-Adapter", "--ref")),
    (("edit", "{in}", "x", *(["--ref", "{ref}"] * 10)), ("at most 10 images", "got 10")),
    (("edit", "{in}", "x", "--ref", "{small}"), ("--ref small.png is 32x32", "at least 64")),
    (("txt2img", "x", "--control", "canny={in}"), ("no txt2img pipeline with ControlNets for flux2-klein",)),
    (("txt2img", "x", "--embedding", "{ref}"), ("FLUX.2 [klein]'s text encoders take none",)),
])
def test_what_flux2_cannot_do_is_one_line_before_loading(cli, tmp_path, flux2, photos, args, words):
    names = {"in": photos / "in.png", "ref": photos / "ref.png", "small": photos / "small.png"}
    argv = [str(a).format(**names) for a in args]
    result = cli(*argv, "-m", flux2["flux2-klein"], "-o", tmp_path / "x.png")
    assert result.code == 2 and result.err.count("\n") == 1, result
    assert all(w in result.err for w in words), result.err


def test_kontext_takes_no_references(cli, tmp_path, tiny_models, photos):
    result = cli("edit", photos / "in.png", "x", "-m", tiny_models["flux"], "--ref", photos / "ref.png",
                 "-o", tmp_path / "k.png")
    assert result.code == 2 and "several (--ref) are for FLUX.2 models" in result.err, result


def test_a_prompt_past_the_sequence_length_names_what_is_cut(cli, tmp_path, flux2):
    prompt = "a fox in the snow " + "and then " * 4 + "THE END"
    result = cli("txt2img", prompt, "-m", flux2["flux2-klein"], "-W", "64", "-H", "64", "--steps", "1",
                 "--max-sequence-length", "64", "-o", tmp_path / "c.png")
    assert result.code == 0, result
    assert "past --max-sequence-length 64 this is cut" in result.err and "END" in result.err  # the end, not the start
    assert "fox" not in result.err


@pytest.mark.parametrize("gb,klein,dev", [
    (8, ("bf16", "model", "nf4"), ("bf16", "sequential", "nf4")),
    (12, ("bf16", "model", "int8"), ("bf16", "sequential", "nf4")),
    (24, ("bf16", "model", "none"), ("bf16", "model", "nf4")),
])
def test_each_gpu_tier_runs_flux2_as_its_parameter_counts_allow(fake_device, flux2, gb, klein, dev):
    from genimg.generation import plan
    from genimg.spec import GenerationSpec

    fake_device("cuda", gb)
    for family, expected in (("flux2-klein", klein), ("flux2", dev)):
        preset = plan(GenerationSpec("x", model=str(flux2[family]), width=64, height=64)).preset
        assert (preset.device, preset.name) == ("cuda", f"{gb}gb")
        assert (preset.dtype, preset.offload, preset.quantize) == expected, family


def test_the_line_is_told_by_its_files(flux2, tmp_path):
    from safetensors.torch import save_file

    from genimg.errors import UsageError
    from genimg.models import resolve_model
    from genimg.models.families import family_from_checkpoint_keys, family_from_lora_keys, same_line

    assert resolve_model(str(flux2["flux2"])).family == "flux2"
    assert resolve_model(str(flux2["flux2-klein"])).family == "flux2-klein"
    assert same_line("flux2", "flux2-klein") and not same_line("flux", "flux2")
    # BFL's single files: FLUX.2's shared modulation, FLUX.1's per-block one
    assert family_from_checkpoint_keys(["single_stream_modulation.lin.weight", "double_blocks.0.img_attn.qkv.weight"]) == "flux2"
    assert family_from_checkpoint_keys(["double_blocks.0.img_attn.qkv.weight"]) == "flux"
    assert family_from_lora_keys(["transformer.single_transformer_blocks.0.attn.to_qkv_mlp_proj.lora_A.weight"]) == "flux2"
    assert family_from_lora_keys(["transformer.single_transformer_blocks.0.attn.to_q.lora_A.weight"]) == "flux"
    assert family_from_lora_keys(["transformer.transformer_blocks.0.attn.to_q.lora_A.weight"]) is None  # both lines
    save_file({"single_stream_modulation.lin.weight": torch.zeros(2, 2)}, str(tmp_path / "flux2-dev.safetensors"))
    with pytest.raises(UsageError, match="from a diffusers folder or hub id only"):
        resolve_model(str(tmp_path / "flux2-dev.safetensors"))


def test_references_are_uploads_and_only_edits_take_them():
    from genimg.errors import UsageError
    from genimg.serve.safety import image_fields
    from genimg.spec import GenerationSpec

    spec = GenerationSpec.from_dict({"prompt": "x", "task": "edit", "image": "a.png", "ref": ["b.png", "c.png"]})
    assert spec.references == ("b.png", "c.png") and image_fields(spec) == ["a.png", "b.png", "c.png"]
    assert GenerationSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(UsageError, match="--ref images are for genimg edit"):
        spec.replace(task="img2img").validate(16)


def test_a_batch_row_edits_with_references(cli, tmp_path, flux2, photos):
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"prompt": "make it night", "task": "edit", "image": str(photos / "in.png"),
                                "ref": [str(photos / "ref.png")], "model": str(flux2["flux2-klein"]), "steps": 3,
                                "seed": 5, "preset": "cpu"}) + "\n")
    result = cli("batch", rows, "-o", tmp_path / "out")
    assert result.code == 0, result
    [made] = list((tmp_path / "out").glob("*.png"))
    with Image.open(made) as png:
        assert json.loads(png.text["genimg"])["spec"]["references"] == [str(photos / "ref.png")]
    pipe = _pipe(flux2, "flux2-klein")
    inputs = [Image.open(photos / "in.png").convert("RGB"), Image.open(photos / "ref.png").convert("RGB")]
    expected = _theirs(pipe, prompt="make it night", image=inputs, width=96, height=64, num_inference_steps=3,
                       guidance_scale=1.0)
    assert np.abs(pixels(made) - expected).max() <= 1


def test_a_flux2_gguf_transformer_runs_in_dev_and_klein_folders_alike(cli, tmp_path, flux2, tiny_models):
    pytest.importorskip("gguf")
    from genimg.testing.tiny_models import save_tiny_gguf

    gguf = save_tiny_gguf(flux2["flux2-klein"], tmp_path / "klein-Q8_0.gguf")
    common = ("a red fox", "-m", flux2["flux2-klein"], "-W", "64", "-H", "64", "--steps", "3", "--seed", "5", "--preset", "cpu")
    assert cli("txt2img", *common, "--denoiser", gguf, "-o", tmp_path / "q.png").code == 0
    assert cli("txt2img", *common, "-o", tmp_path / "full.png").code == 0
    rounding = np.abs(pixels(tmp_path / "q.png") - pixels(tmp_path / "full.png"))
    assert 0 < rounding.mean() < 2 and rounding.max() <= 4  # Q8_0's rounding, the same picture
    refused = cli("txt2img", "x", "-m", tiny_models["flux"], "--denoiser", gguf, "-o", tmp_path / "r.png")
    assert refused.code == 2 and "is a flux2 denoiser" in refused.err, refused


def test_a_dev_lora_trains_with_the_guidance_embedding_and_loads_whole(cli, tmp_path, flux2, shots):
    record = _train(cli, shots, flux2["flux2"], tmp_path / "lora", 20)
    assert record["eval_loss_after"] < record["eval_loss_before"]
    made = cli("txt2img", "a photo of coffee", "-m", flux2["flux2"], "--lora", tmp_path / "lora", "-W", "64", "-H",
               "64", "--steps", "2", "--seed", "5", "--preset", "cpu", "-o", tmp_path / "l.png", "--json")
    assert made.code == 0, made
    assert json.loads(made.out)["lora_layers"] == [{"name": "lora", "layers": 9, "matched": 9}]
