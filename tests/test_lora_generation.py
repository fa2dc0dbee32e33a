"""--lora on the generation commands: changes the image, weight 0 is no LoRA, both layouts load."""

import json

import numpy as np
import pytest

from genimg.testing.images import pixels
from genimg.output.metadata import read_metadata

FAST = ("-W", "64", "-H", "64", "--steps", "3", "--seed", "4")


@pytest.fixture(scope="session")
def loras(tiny_models, tmp_path_factory):
    from genimg.testing.loras import save_random_lora

    root = tmp_path_factory.mktemp("loras")
    return {
        "sd": save_random_lora(tiny_models["sd"], root / "sd-lora"),
        "sd-kohya": save_random_lora(tiny_models["sd"], root / "sd-kohya.safetensors", kohya=True),
        "sdxl": save_random_lora(tiny_models["sdxl"], root / "sdxl-lora"),
        "flux": save_random_lora(tiny_models["flux"], root / "flux-lora"),
    }


@pytest.mark.parametrize("family", ["sd", "sdxl", "flux"])
def test_lora_changes_the_image_and_weight_zero_equals_none(cli, tmp_path, tiny_models, loras, family):
    model = ("--model", tiny_models[family])
    assert cli("txt2img", "x", *model, *FAST, "-o", tmp_path / "plain.png").code == 0
    assert cli("txt2img", "x", *model, *FAST, "--lora", loras[family], "-o", tmp_path / "lora.png").code == 0
    assert cli("txt2img", "x", *model, *FAST, "--lora", f"{loras[family]}:0", "-o", tmp_path / "zero.png").code == 0
    assert np.abs(pixels(tmp_path / "plain.png") - pixels(tmp_path / "lora.png")).mean() > 0.5
    assert np.array_equal(pixels(tmp_path / "plain.png"), pixels(tmp_path / "zero.png"))


def test_kohya_layout_loads_and_matches_the_diffusers_one(cli, tmp_path, tiny_models, loras):
    model = ("--model", tiny_models["sd"])
    assert cli("txt2img", "x", *model, *FAST, "--lora", loras["sd"], "-o", tmp_path / "d.png").code == 0
    assert cli("txt2img", "x", *model, *FAST, "--lora", loras["sd-kohya"], "-o", tmp_path / "k.png").code == 0
    assert np.abs(pixels(tmp_path / "d.png") - pixels(tmp_path / "k.png")).max() <= 1
    assert "Lora hashes" in read_metadata(tmp_path / "k.png")["parameters"]


def test_lora_weights_are_switched_between_generations_on_one_loaded_model(tiny_models, loras):
    from genimg.factory import PipelineFactory
    from genimg.generation import generate
    from genimg.spec import GenerationSpec

    factory = PipelineFactory()
    spec = GenerationSpec("x", model=str(tiny_models["sd"]), width=64, height=64, steps=3, seed=4)
    plain = np.asarray(generate(spec, factory)[0].image)
    with_lora = np.asarray(generate(spec.replace(loras=[str(loras["sd"])]), factory)[0].image)
    half = np.asarray(generate(spec.replace(loras=[f"{loras['sd']}:0.5"]), factory)[0].image)
    again = np.asarray(generate(spec, factory)[0].image)
    assert not np.array_equal(plain, with_lora) and not np.array_equal(half, with_lora)
    assert np.array_equal(plain, again)


def test_missing_lora_and_wrong_family(cli, tmp_path, tiny_models, loras):
    result = cli("txt2img", "x", "--model", tiny_models["sd"], *FAST, "--lora", tmp_path / "nope.safetensors",
                 "-o", tmp_path / "a.png")
    assert result.code == 2 and "does not exist" in result.err
    result = cli("txt2img", "x", "--model", tiny_models["sd"], *FAST, "--lora", loras["flux"], "-o", tmp_path / "b.png")
    assert result.code == 2 and "LoRA flux-lora was made for a FLUX.1 model" in result.err


def test_a_lora_for_another_architecture_is_refused_in_one_line_before_loading(cli, tmp_path, tiny_models, loras):
    # A LoRA of the tiny SDXL model, without metadata: its cross-attention inputs are wider than the SD model's.
    result = cli("txt2img", "x", "--model", tiny_models["sd"], *FAST, "--lora", loras["sdxl"], "-o", tmp_path / "b.png")
    assert result.code == 2, result
    assert len(result.err.strip().splitlines()) == 1 and "size mismatch" not in result.err
    assert "LoRA sdxl-lora was made for a Stable Diffusion XL model, not for sd (Stable Diffusion 1.x/2.x)" in result.err
    assert not (tmp_path / "b.png").exists()


def test_a_batch_row_with_a_wrong_lora_is_reported_and_the_rest_run(cli, tmp_path, tiny_models, loras):
    import json

    (tmp_path / "p.csv").write_text(f"prompt,lora\nfirst,\nwrong,{loras['sdxl']}\nlast,{loras['sd']}:0.5\n")
    args = ("batch", tmp_path / "p.csv", "-m", tiny_models["sd"], *FAST, "-o", tmp_path / "out")
    checked = cli(*args, "--check")
    assert checked.code == 2 and "p.csv:3" in checked.err and "made for a Stable Diffusion XL model" in checked.err
    result = cli(*args, "--json")
    summary = json.loads(result.out.splitlines()[-1])["summary"]
    assert result.code == 1 and (summary["done"], summary["failed"]) == (2, 1)


def test_lora_paths_with_colons_and_weights_that_are_not_numbers(cli, tmp_path, tiny_models, loras):
    import shutil

    odd = tmp_path / "style:v2"
    shutil.copytree(loras["sd"], odd)
    model = ("--model", tiny_models["sd"], *FAST)
    assert cli("txt2img", "x", *model, "--lora", odd, "-o", tmp_path / "a.png").code == 0
    assert cli("txt2img", "x", *model, "--lora", f"{odd}:0.5", "-o", tmp_path / "b.png").code == 0
    assert not np.array_equal(pixels(tmp_path / "a.png"), pixels(tmp_path / "b.png"))
    result = cli("txt2img", "x", *model, "--lora", f"{loras['sd']}:abc", "-o", tmp_path / "c.png")
    assert result.code == 2 and "the weight 'abc' is not a number" in result.err and "does not exist" not in result.err


def test_inline_loras_equal_the_flag_and_weight_zero_equals_none(cli, tmp_path, tiny_models, loras, monkeypatch):
    import shutil

    from safetensors.torch import load_file, save_file

    folder = tmp_path / "my-loras"
    folder.mkdir()
    shutil.copy(loras["sd-kohya"], folder / "inky.safetensors")
    # A kohya file found by the ss_output_name in its metadata, not its file name.
    save_file(load_file(str(loras["sd-kohya"])), str(folder / "renamed.safetensors"), metadata={"ss_output_name": "blotch"})
    monkeypatch.setenv("GENIMG_LORA_DIRS", str(folder))
    model = ("--model", tiny_models["sd"], *FAST)
    assert cli("txt2img", "a tree", *model, "-o", tmp_path / "plain.png").code == 0
    assert cli("txt2img", "a tree", *model, "--lora", f"{folder / 'inky.safetensors'}:1", "-o", tmp_path / "flag.png").code == 0
    assert cli("txt2img", "a tree <lora:inky:1>", *model, "-o", tmp_path / "inline.png").code == 0
    assert cli("txt2img", "a tree <lora:inky:0>", *model, "-o", tmp_path / "zero.png").code == 0
    assert cli("txt2img", "a tree <lora:blotch:1>", *model, "-o", tmp_path / "meta.png").code == 0
    assert np.array_equal(pixels(tmp_path / "flag.png"), pixels(tmp_path / "inline.png"))
    assert np.array_equal(pixels(tmp_path / "plain.png"), pixels(tmp_path / "zero.png"))
    assert np.array_equal(pixels(tmp_path / "inline.png"), pixels(tmp_path / "meta.png"))
    assert not np.array_equal(pixels(tmp_path / "plain.png"), pixels(tmp_path / "inline.png"))
    meta = read_metadata(tmp_path / "inline.png")
    assert meta["parameters"]["prompt"] == "a tree <lora:inky:1>" and "Lora hashes" in meta["parameters"]
    missing = cli("txt2img", "a tree <lora:inkk:1>", *model, "-o", tmp_path / "m.png")
    assert missing.code == 2 and "is in no LoRA folder" in missing.err and "did you mean 'inky'" in missing.err


def test_two_loras_compose_as_diffusers_composes_them(cli, tmp_path, tiny_models, loras):
    """Two LoRAs at 0.7 and 0.4 make the image plain diffusers makes with both adapters at those weights."""
    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline

    from genimg.testing.loras import save_random_lora

    other = save_random_lora(tiny_models["sd"], tmp_path / "other-lora", seed=7)
    pipe = StableDiffusionPipeline.from_pretrained(tiny_models["sd"])
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    pipe.load_lora_weights(loras["sd"], adapter_name="a")
    pipe.load_lora_weights(other, adapter_name="b")
    pipe.set_adapters(["a", "b"], adapter_weights=[0.7, 0.4])
    expected = pipe("a fox", num_inference_steps=3, guidance_scale=6.0, width=64, height=64, output_type="np",
                    generator=torch.Generator("cpu").manual_seed(9)).images[0]
    args = ("txt2img", "a fox", "-m", tiny_models["sd"], "-W", "64", "-H", "64", "--steps", "3", "--cfg", "6",
            "--seed", "9", "--sampler", "Euler", "--preset", "cpu")
    both = cli(*args, "--lora", f"{loras['sd']}:0.7", "--lora", f"{other}:0.4", "-o", tmp_path / "ab.png")
    assert both.code == 0, both
    made = pixels(tmp_path / "ab.png")
    assert np.abs(made - (expected * 255).round()).max() <= 1
    alone = cli(*args, "--lora", f"{loras['sd']}:0.7", "-o", tmp_path / "a.png")
    assert alone.code == 0 and np.abs(made - pixels(tmp_path / "a.png")).mean() > 0.5  # the second one acts


@pytest.mark.parametrize("family", ["sd", "sdxl", "flux"])
def test_json_counts_the_layers_of_a_lora_that_matched(cli, tmp_path, tiny_models, loras, family):
    from safetensors import safe_open

    from genimg.adapters import lora_file

    with safe_open(str(lora_file(loras[family])), "pt") as f:
        downs = sum(k.endswith(("lora_A.weight", "lora.down.weight")) for k in f.keys())
    result = cli("txt2img", "x", "--model", tiny_models[family], *FAST, "--lora", loras[family], "--json",
                 "-o", tmp_path / "a.png")
    assert result.code == 0, result
    [layers] = json.loads(result.out)["lora_layers"]
    assert layers["layers"] == layers["matched"] == downs > 0
    assert "match nothing" not in result.err
    assert read_metadata(tmp_path / "a.png")["genimg"]["lora_layers"] == [layers]
    fused = cli("txt2img", "x", "--model", tiny_models[family], *FAST, "--lora", loras[family], "--fuse-lora",
                "-o", tmp_path / "fused.png")
    assert fused.code == 0, fused
    assert np.abs(pixels(tmp_path / "fused.png").astype(int) - pixels(tmp_path / "a.png").astype(int)).max() <= 1


def test_a_lora_that_half_loads_is_a_warning_with_the_count(cli, tmp_path, tiny_models, loras):
    """diffusers loads a LoRA whose layers partly name nothing in the model without a word."""
    from safetensors.torch import load_file, save_file

    from genimg.adapters import lora_file

    state = load_file(str(lora_file(loras["sd"])))
    stray = {k.replace("attn1.to_q", "attn1.to_qq"): v.clone() for k, v in state.items() if "attn1.to_q" in k}
    save_file(state | stray, str(tmp_path / "half.safetensors"))
    result = cli("txt2img", "x", "--model", tiny_models["sd"], *FAST, "--lora", tmp_path / "half.safetensors",
                 "--json", "-o", tmp_path / "a.png")
    assert result.code == 0, result
    [layers] = json.loads(result.out)["lora_layers"]
    assert layers["layers"] - layers["matched"] == len(stray) // 2 > 0
    assert f"{len(stray) // 2} of its {layers['layers']} layers match nothing" in result.err


def test_a_fused_lora_makes_the_unfused_image_and_unfuses_for_the_next_job(tiny_models, loras):
    from genimg.factory import PipelineFactory
    from genimg.generation import generate
    from genimg.spec import GenerationSpec

    factory = PipelineFactory()
    spec = GenerationSpec("x", model=str(tiny_models["sd"]), width=64, height=64, steps=3, seed=4)
    plain = np.asarray(generate(spec, factory)[0].image).astype(int)
    lora = spec.replace(loras=[f"{loras['sd']}:0.8"])
    unfused = np.asarray(generate(lora, factory)[0].image).astype(int)
    fused = np.asarray(generate(lora.replace(fuse_lora=True), factory)[0].image).astype(int)
    fused_other_weight = np.asarray(generate(lora.replace(fuse_lora=True, loras=[str(loras["sd"])]), factory)[0].image)
    after = np.asarray(generate(spec, factory)[0].image).astype(int)
    assert np.abs(fused - unfused).max() <= 1 and np.abs(unfused - plain).mean() > 0.5
    assert np.abs(fused_other_weight.astype(int) - fused).mean() > 0.1  # fused again with the new weight, not the old
    assert np.abs(after - plain).max() <= 1  # unfused: the model is itself again
    assert factory.loads == 1


def test_a_lora_made_by_peft_gives_the_image_plain_diffusers_gives(cli, tmp_path, tiny_models, loras):
    """The LoRA comes from peft + diffusers' save_lora_weights, not from genimg's trainer."""
    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(tiny_models["sd"])
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    pipe.load_lora_weights(loras["sd"])
    pipe.set_adapters(pipe.get_list_adapters()["unet"], adapter_weights=[0.7])
    plain = pipe("a fox", num_inference_steps=3, guidance_scale=6.0, width=64, height=64, output_type="np",
                 generator=torch.Generator("cpu").manual_seed(9)).images[0]
    result = cli("txt2img", "a fox", "-m", tiny_models["sd"], "-W", "64", "-H", "64", "--steps", "3", "--cfg", "6",
                 "--seed", "9", "--scheduler", "Euler", "--lora", f"{loras['sd']}:0.7", "-o", tmp_path / "g.png")
    assert result.code == 0, result
    assert np.abs(pixels(tmp_path / "g.png").astype(int) - (plain * 255).round().astype(int)).max() <= 1
