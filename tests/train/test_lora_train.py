"""genimg lora-train on tiny models and skimage's sample photos."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file

from genimg.testing.images import pixels


@pytest.fixture(scope="session")
def photos(tmp_path_factory):
    from skimage import data

    folder = tmp_path_factory.mktemp("dataset")
    for name in ("astronaut", "chelsea", "coffee"):
        Image.fromarray(getattr(data, name)()).save(folder / f"{name}.png")
        (folder / f"{name}.txt").write_text(f"a photo of {name}")
    return folder


def _train(cli, dataset, model, out, *extra):
    result = cli("lora-train", dataset, "--model", model, "-o", out, "--resolution", "64", "--rank", "4", "--alpha", "4",
                 "--lr", "5e-3", "--checkpoint-every", "5", "--json", *extra)
    assert result.code == 0, result
    return json.loads(result.out)


def test_loss_decreases_and_the_lora_loads_into_plain_diffusers(cli, tmp_path, tiny_models, photos):
    from diffusers import StableDiffusionPipeline

    record = _train(cli, photos, tiny_models["sd"], tmp_path / "run", "--max-steps", "30")
    assert record["eval_loss_after"] < record["eval_loss_before"]
    pipe = StableDiffusionPipeline.from_pretrained(tiny_models["sd"], safety_checker=None)
    kwargs = dict(prompt="a photo of chelsea", num_inference_steps=4, height=64, width=64, output_type="np")
    before = pipe(**kwargs, generator=torch.Generator().manual_seed(0)).images
    pipe.load_lora_weights(tmp_path / "run")
    after = pipe(**kwargs, generator=torch.Generator().manual_seed(0)).images
    assert np.abs(before - after).mean() > 1e-3
    for name in ("loss.csv", "loss.png", "genimg_lora.json"):
        assert (tmp_path / "run" / name).is_file()
    with safe_open(str(tmp_path / "run" / "pytorch_lora_weights.safetensors"), "pt") as f:
        meta = f.metadata()
    assert meta["base_family"] == "sd" and json.loads(meta["genimg_config"])["rank"] == 4


def test_resumed_run_reaches_the_same_weights_as_an_uninterrupted_one(cli, tmp_path, tiny_models, photos):
    from genimg.train.config import LoraTrainConfig
    from genimg.train.loop import train_lora

    def config(out):
        return LoraTrainConfig(dataset=str(photos), model=str(tiny_models["sd"]), output=str(out), resolution=64, rank=4,
                               alpha=4, lr=5e-3, max_steps=10, checkpoint_every=5, caption_dropout=0.3,
                               lr_scheduler="cosine", warmup_steps=2, noise_offset=0.05)

    train_lora(config(tmp_path / "whole"))
    train_lora(config(tmp_path / "parts"), stop_after=5)
    assert not (tmp_path / "parts" / "pytorch_lora_weights.safetensors").exists()
    resumed = train_lora(config(tmp_path / "parts"), resume="latest")
    assert (resumed["steps"], resumed["steps_run"]) == (10, 5)  # where the run stands, and what this process did
    a = load_file(str(tmp_path / "whole" / "pytorch_lora_weights.safetensors"))
    b = load_file(str(tmp_path / "parts" / "pytorch_lora_weights.safetensors"))
    assert a.keys() == b.keys()
    for key in a:  # same steps, same noise, same optimizer state: equal to float rounding
        assert torch.allclose(a[key], b[key], atol=1e-6), key
    steps = [line.split(",")[0] for line in (tmp_path / "parts" / "loss.csv").read_text().splitlines()[1:]]
    assert steps == [str(i) for i in range(1, 11)]


def test_8bit_adam_trains_and_resumes_exactly(tmp_path, tiny_models, photos):
    """bitsandbytes' AdamW8bit (its CPU kernels here): blockwise-quantized moments survive a checkpoint."""
    pytest.importorskip("bitsandbytes")  # in the test extra; a plain install trains with torch's AdamW
    from genimg.state_file import load_state
    from genimg.train.config import LoraTrainConfig
    from genimg.train.loop import train_lora

    def config(out):  # rank 64 makes 64x64 matrices: the 4,096 values bitsandbytes needs before it quantizes
        return LoraTrainConfig(dataset=str(photos), model=str(tiny_models["sd"]), output=str(out), resolution=64,
                               rank=64, alpha=64, lr=1e-3, max_steps=6, checkpoint_every=3, use_8bit_adam=True)

    train_lora(config(tmp_path / "whole"))
    train_lora(config(tmp_path / "parts"), stop_after=3)
    halfway = load_state(tmp_path / "parts" / "checkpoints" / "step-000003.safetensors")
    # bitsandbytes keeps its quantized moments one level down, under __bnb_optimizer_quant_state__
    moments = [v for s in halfway["optimizer"]["state"].values() for inner in s.values() if isinstance(inner, dict)
               for v in inner.values() if torch.is_tensor(v)]
    assert any(v.dtype == torch.uint8 for v in moments)
    resumed = train_lora(config(tmp_path / "parts"), resume="latest")
    assert (resumed["steps"], resumed["steps_run"]) == (6, 3)  # where the run stands, and what this process did
    a = load_file(str(tmp_path / "whole" / "pytorch_lora_weights.safetensors"))
    b = load_file(str(tmp_path / "parts" / "pytorch_lora_weights.safetensors"))
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key
    ups = [v for k, v in a.items() if k.endswith("lora.up.weight")]  # zeros until the optimizer moves them
    assert ups and all(torch.isfinite(v).all() and v.abs().max() > 0 for v in ups)


def test_kohya_export_gives_the_same_images_as_the_diffusers_layout(cli, tmp_path, tiny_models, photos):
    _train(cli, photos, tiny_models["sd"], tmp_path / "k", "--max-steps", "6", "--save-format", "kohya", "--train-text-encoder")
    kohya = tmp_path / "k" / "k.safetensors"
    keys = list(load_file(str(kohya)))
    assert any(k.startswith("lora_unet_") for k in keys) and any(k.startswith("lora_te_text_model_") for k in keys)
    common = ("a photo of coffee", "--model", tiny_models["sd"], "-W", "64", "-H", "64", "--steps", "3", "--seed", "2")
    assert cli("txt2img", *common, "--lora", tmp_path / "k", "-o", tmp_path / "d.png").code == 0
    assert cli("txt2img", *common, "--lora", kohya, "-o", tmp_path / "k.png").code == 0
    assert cli("txt2img", *common, "-o", tmp_path / "none.png").code == 0
    assert np.abs(pixels(tmp_path / "d.png") - pixels(tmp_path / "k.png")).max() <= 1
    assert not np.array_equal(pixels(tmp_path / "d.png"), pixels(tmp_path / "none.png"))


def test_sdxl_kohya_export_uses_sd_scripts_names_and_gives_the_same_images(cli, tmp_path, tiny_models, photos):
    _train(cli, photos, tiny_models["sdxl"], tmp_path / "x", "--max-steps", "4", "--save-format", "kohya",
           "--train-text-encoder")
    kohya = load_file(str(tmp_path / "x" / "x.safetensors"))
    prefixes = {k.split("_text_model_")[0] if "_text_model_" in k else k.split("_")[0] + "_" + k.split("_")[1]
                for k in kohya}
    # A1111, Forge and ComfyUI read SDXL LoRAs as lora_unet_*, lora_te1_text_model_* and lora_te2_text_model_*.
    assert {"lora_unet", "lora_te1", "lora_te2"} <= prefixes and "lora_te" not in prefixes
    assert all(k.endswith((".lora_down.weight", ".lora_up.weight", ".alpha")) for k in kohya)
    assert any(k.startswith("lora_te2_text_model_encoder_layers_0_self_attn_q_proj.") for k in kohya)
    with safe_open(str(tmp_path / "x" / "x.safetensors"), "pt") as f:
        assert f.metadata()["ss_base_model_version"] == "sdxl_base_v1-0"
    common = ("a photo of coffee", "--model", tiny_models["sdxl"], "-W", "64", "-H", "64", "--steps", "3", "--seed", "2")
    assert cli("txt2img", *common, "--lora", tmp_path / "x", "-o", tmp_path / "d.png").code == 0
    assert cli("txt2img", *common, "--lora", tmp_path / "x" / "x.safetensors", "-o", tmp_path / "k.png").code == 0
    assert np.abs(pixels(tmp_path / "d.png") - pixels(tmp_path / "k.png")).max() <= 1


def test_flux_kohya_export_is_the_same_update_in_sd_scripts_names(cli, tmp_path, tiny_models, photos):
    from diffusers import FluxTransformer2DModel
    from diffusers.loaders.lora_conversion_utils import _convert_kohya_flux_lora_to_diffusers

    from genimg.models.lines.flux_kohya import fused_modules

    _train(cli, photos, tiny_models["flux"], tmp_path / "f", "--max-steps", "3", "--save-format", "kohya")
    kohya = load_file(str(tmp_path / "f" / "f.safetensors"))
    diffusers_layout = load_file(str(tmp_path / "f" / "pytorch_lora_weights.safetensors"))
    assert any(k.startswith("lora_unet_double_blocks_0_img_attn_qkv.") for k in kohya)
    assert any(k.startswith("lora_unet_single_blocks_0_linear1.") for k in kohya)

    def delta(layers, module, prefix=""):
        for down, up in (("lora_A", "lora_B"), ("lora.down", "lora.up")):  # peft's names, diffusers' file names
            if f"{prefix}{module}.{down}.weight" in layers:
                return layers[f"{prefix}{module}.{up}.weight"] @ layers[f"{prefix}{module}.{down}.weight"]
        return None

    transformer = FluxTransformer2DModel.from_pretrained(tiny_models["flux"], subfolder="transformer")
    checked = 0
    for name, parts in fused_modules(transformer).items():
        if f"{name}.lora_down.weight" not in kohya:
            continue
        down, up = kohya[f"{name}.lora_down.weight"], kohya[f"{name}.lora_up.weight"]
        fused = up @ down * (kohya[f"{name}.alpha"] / down.shape[0])
        expected = torch.cat([
            d if (d := delta(diffusers_layout, part, "transformer.")) is not None
            else torch.zeros(transformer.get_submodule(part).weight.shape) for part in parts])
        assert torch.allclose(fused, expected, atol=1e-6), name
        checked += 1
    assert checked == len({k.rsplit(".", 2)[0] for k in kohya})
    # diffusers' own sd-scripts reader gets the diffusers layout back (its single-block reader assumes
    # full-size FLUX widths, so the tiny model's double blocks are what it can check here).
    double = {k: v for k, v in kohya.items() if "single_blocks" not in k}
    back = _convert_kohya_flux_lora_to_diffusers(double)
    compared = 0
    for key in back:
        if key.endswith("lora_A.weight"):
            module = key[:-len(".lora_A.weight")]
            assert torch.allclose(delta(back, module), delta(diffusers_layout, module), atol=1e-6), module
            compared += 1
    assert compared >= sum(k.endswith(".lora_down.weight") for k in double)


@pytest.mark.parametrize("family", ["sdxl", "flux"])
def test_sdxl_and_flux_loras_train_and_load(cli, tmp_path, tiny_models, photos, family):
    _train(cli, photos, tiny_models[family], tmp_path / "run", "--max-steps", "4")
    common = ("x", "--model", tiny_models[family], "-W", "64", "-H", "64", "--steps", "3", "--seed", "2")
    assert cli("txt2img", *common, "--lora", f"{tmp_path / 'run'}:1", "-o", tmp_path / "l.png").code == 0
    assert cli("txt2img", *common, "--lora", f"{tmp_path / 'run'}:0", "-o", tmp_path / "z.png").code == 0
    assert cli("txt2img", *common, "-o", tmp_path / "n.png").code == 0
    assert np.array_equal(pixels(tmp_path / "z.png"), pixels(tmp_path / "n.png"))
    assert not np.array_equal(pixels(tmp_path / "l.png"), pixels(tmp_path / "n.png"))


def test_lora_weights_stay_fp32_under_bf16_mixed_precision(tmp_path, tiny_models, photos):
    from genimg.state_file import load_state
    from genimg.train.config import LoraTrainConfig
    from genimg.train.loop import train_lora

    train_lora(LoraTrainConfig(dataset=str(photos), model=str(tiny_models["sd"]), output=str(tmp_path / "bf16"),
                               resolution=64, rank=4, max_steps=2, checkpoint_every=2, mixed_precision="bf16"))
    state = load_state(next((tmp_path / "bf16" / "checkpoints").glob("*.safetensors")))
    assert {v.dtype for v in state["lora"].values()} == {torch.float32}


def test_runs_in_one_process_may_change_mixed_precision_and_fp16_needs_a_gpu(cli, tmp_path, tiny_models, photos):
    """accelerate fixes one mixed-precision setting per process; genimg's Python API and server run many."""
    from genimg.train.loop import train_lora

    bf16 = train_lora(_config(photos, tiny_models, tmp_path / "bf16", max_steps=1, mixed_precision="bf16"))
    plain = train_lora(_config(photos, tiny_models, tmp_path / "no", max_steps=1))
    train_lora(_config(photos, tiny_models, tmp_path / "again", max_steps=1))
    assert bf16["steps"] == plain["steps"] == 1
    assert _same_weights(_weights(tmp_path / "no"), _weights(tmp_path / "again"), atol=0)
    assert not _same_weights(_weights(tmp_path / "no"), _weights(tmp_path / "bf16"), atol=1e-7)  # bf16 did run in bf16
    result = cli("lora-train", photos, "--model", tiny_models["sd"], "-o", tmp_path / "fp16", "--mixed-precision", "fp16",
                 "--max-steps", "1")
    assert result.code == 2 and "needs a GPU" in result.err and not (tmp_path / "fp16").exists()


def test_dataset_layouts(tmp_path, photos):
    from genimg.train.dataset import collect

    kohya = tmp_path / "kohya"
    (kohya / "5_mydog").mkdir(parents=True)
    for name in ("astronaut", "chelsea"):
        (kohya / "5_mydog" / f"{name}.png").write_bytes((photos / f"{name}.png").read_bytes())
        (kohya / "5_mydog" / f"{name}.caption").write_text(f"sks {name}")
    examples = collect(kohya, None, 1)
    assert [(e.caption, e.repeats) for e in examples] == [("sks astronaut", 5), ("sks chelsea", 5)]
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "a.png").write_bytes((photos / "coffee.png").read_bytes())
    (hf / "metadata.jsonl").write_text('{"file_name": "a.png", "text": "a cup"}\n')
    assert [e.caption for e in collect(hf, None, 2)] == ["a cup"]
    assert [e.caption for e in collect(hf, "one for all", 1)] == ["one for all"]


def test_aspect_ratio_buckets_keep_the_shape():
    from genimg.train.dataset import buckets, fit_to_bucket

    sizes = buckets(512, 64)
    assert (512, 512) in sizes and all(w % 64 == 0 and h % 64 == 0 for w, h in sizes)
    wide = fit_to_bucket(Image.new("RGB", (1600, 900)), sizes, False, 512)
    assert wide.width > wide.height and wide.width % 64 == 0
    assert fit_to_bucket(Image.new("RGB", (1600, 900)), sizes, True, 512).size == (512, 512)


@pytest.mark.parametrize("setup,args,words", [
    ("empty", (), ("holds no images",)),
    ("nocaptions", (), ("have no caption", "--caption")),
    ("photos", ("--rank", "0"), ("--rank",)),
    ("photos", ("--resolution", "60"), ("--resolution 60", "multiple of 8")),
    ("photos", (), ("--max-steps",)),
    ("photos", ("--quantize", "fp8"), ("--quantize must be none, nf4 or int8",)),
    ("photos", ("--prior-weight", "-1"), ("--prior-weight must be 0 or more",)),
    ("photos", ("--quantize", "nf4"), ("needs a CUDA GPU",)),
])
def test_bad_training_input(cli, tmp_path, tiny_models, photos, setup, args, words, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the same branch on a machine with a GPU
    dataset = {"photos": photos, "empty": tmp_path / "empty", "nocaptions": tmp_path / "nocap"}[setup]
    (tmp_path / "empty").mkdir()
    (tmp_path / "nocap").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "nocap" / "lonely.png")
    steps = () if words == ("--max-steps",) else ("--max-steps", "1")
    result = cli("lora-train", dataset, "--model", tiny_models["sd"], "-o", tmp_path / "out", *steps, *args)
    assert result.code == 2, result
    assert len(result.err.strip().splitlines()) == 1
    for word in words:
        assert word in result.err
    assert not (tmp_path / "out").exists()


def test_an_earlier_run_is_never_lost(cli, tmp_path, tiny_models, photos):
    _train(cli, photos, tiny_models["sd"], tmp_path / "run", "--max-steps", "2")
    before = (tmp_path / "run" / "pytorch_lora_weights.safetensors").read_bytes()
    result = cli("lora-train", photos, "--model", tiny_models["sd"], "-o", tmp_path / "run", "--max-steps", "2")
    assert result.code == 2 and "--resume" in result.err
    assert (tmp_path / "run" / "pytorch_lora_weights.safetensors").read_bytes() == before


def test_unreadable_images_are_skipped_or_stop_with_strict(cli, tmp_path, tiny_models, photos):
    data = tmp_path / "data"
    data.mkdir()
    for p in photos.iterdir():
        (data / p.name).write_bytes(p.read_bytes())
    (data / "broken.png").write_bytes(b"not an image")
    (data / "broken.txt").write_text("broken")
    result = cli("lora-train", data, "--model", tiny_models["sd"], "-o", tmp_path / "a", "--max-steps", "1",
                 "--resolution", "64")
    assert result.code == 0 and "broken.png" in result.err
    result = cli("lora-train", data, "--model", tiny_models["sd"], "-o", tmp_path / "b", "--max-steps", "1",
                 "--resolution", "64", "--strict")
    assert result.code == 2 and "broken.png" in result.err


def test_config_file_and_flags(cli, tmp_path, tiny_models, photos):
    template = cli("lora-train", "--print-config")
    assert template.code == 0 and "max_steps" in template.out
    (tmp_path / "train.toml").write_text(f'dataset = "{photos}"\nmodel = "{tiny_models["sd"]}"\noutput = "{tmp_path / "o"}"\n'
                                         'max_steps = 50\nresolution = 64\nrank = 2\n')
    result = cli("lora-train", "--config", tmp_path / "train.toml", "--max-steps", "2", "--json")
    assert result.code == 0, result
    assert json.loads(result.out)["steps"] == 2
    saved = json.loads((tmp_path / "o" / "genimg_lora.json").read_text())
    assert saved["config"]["rank"] == 2 and saved["base_model"]["family"] == "sd"
    (tmp_path / "bad.toml").write_text("rnak = 4\n")
    result = cli("lora-train", "--config", tmp_path / "bad.toml")
    assert result.code == 2 and "did you mean 'rank'" in result.err


def test_tensorboard_log_matches_the_csv(cli, tmp_path, tiny_models, photos):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _train(cli, photos, tiny_models["sd"], tmp_path / "run", "--max-steps", "4")
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    logged = [(e.step, round(e.value, 5)) for e in events.Scalars("train/loss")]
    rows = (tmp_path / "run" / "loss.csv").read_text().splitlines()[1:]
    assert logged == [(int(r.split(",")[0]), round(float(r.split(",")[2]), 5)) for r in rows]


@pytest.mark.slow
def test_two_processes_train_what_one_process_with_twice_the_batch_trains(tmp_path, tiny_models, photos, launch_two):
    """`accelerate launch` on two CPU processes (gloo): gradients are averaged across them."""
    import os
    import subprocess
    import sys

    args = [str(photos), "--model", str(tiny_models["sd"]), "--resolution", "64", "--rank", "4", "--alpha", "4",
            "--lr", "5e-3", "--max-steps", "3", "--center-crop", "--quiet"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    two = subprocess.run([*launch_two, "-m", "genimg", "lora-train", *args, "--batch-size", "1", "-o", str(tmp_path / "two")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-2000:]
    assert two.stdout.count("pytorch_lora_weights.safetensors") == 1  # only the main process reports
    one = subprocess.run([sys.executable, "-m", "genimg", "lora-train", *args, "--batch-size", "2",
                          "-o", str(tmp_path / "one")], env=env, capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-2000:]
    assert (tmp_path / "one" / "loss.csv").read_text() == (tmp_path / "two" / "loss.csv").read_text()
    a = load_file(str(tmp_path / "one" / "pytorch_lora_weights.safetensors"))
    b = load_file(str(tmp_path / "two" / "pytorch_lora_weights.safetensors"))
    assert a.keys() == b.keys()
    for key in a:  # an all-reduce sums in another order than a batch: equal to float rounding
        assert torch.allclose(a[key], b[key], atol=1e-4), key


def _config(photos, tiny_models, out, **kw):
    from genimg.train.config import LoraTrainConfig

    settings = dict(dataset=str(photos), model=str(tiny_models["sd"]), output=str(out), resolution=64, rank=4, alpha=4,
                    lr=5e-3, max_steps=4, checkpoint_every=100, center_crop=True)
    return LoraTrainConfig(**{**settings, **kw})


def _weights(out):
    return load_file(str(out / "pytorch_lora_weights.safetensors"))


def _same_weights(a, b, atol):
    return a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=atol) for k in a)


def test_gradient_accumulation_trains_what_a_larger_batch_trains(tmp_path, tiny_models, photos):
    from genimg.train.loop import train_lora

    train_lora(_config(photos, tiny_models, tmp_path / "accum", batch_size=1, grad_accum=2))
    train_lora(_config(photos, tiny_models, tmp_path / "batch", batch_size=2, grad_accum=1))
    assert (tmp_path / "accum" / "loss.csv").read_text() == (tmp_path / "batch" / "loss.csv").read_text()
    # two backward passes sum in another order than one batch; Adam's normalised steps carry that rounding
    assert _same_weights(_weights(tmp_path / "accum"), _weights(tmp_path / "batch"), atol=1e-4)


def test_gradient_checkpointing_changes_memory_not_the_result(tmp_path, tiny_models, photos):
    from genimg.train.loop import train_lora

    train_lora(_config(photos, tiny_models, tmp_path / "plain"))
    train_lora(_config(photos, tiny_models, tmp_path / "ckpt", gradient_checkpointing=True))
    assert _same_weights(_weights(tmp_path / "plain"), _weights(tmp_path / "ckpt"), atol=1e-5)


def test_epochs_repeats_and_batch_set_the_step_count(tmp_path, tiny_models, photos):
    from genimg.train.loop import train_lora

    # 3 images x 2 repeats = 6 samples an epoch; batch 2 -> 3 steps an epoch; 2 epochs -> 6 steps
    record = train_lora(_config(photos, tiny_models, tmp_path / "run", max_steps=None, epochs=2, repeats=2, batch_size=2))
    rows = (tmp_path / "run" / "loss.csv").read_text().splitlines()[1:]
    assert record["steps"] == 6 and [r.split(",")[1] for r in rows] == ["1"] * 3 + ["2"] * 3


def test_ema_keeps_a_running_average_of_the_lora(tmp_path, tiny_models, photos):
    from genimg.state_file import load_state
    from genimg.train.loop import train_lora

    train_lora(_config(photos, tiny_models, tmp_path / "ema", ema_decay=0.5, checkpoint_every=1, keep_checkpoints=10))
    train_lora(_config(photos, tiny_models, tmp_path / "raw"))
    states = [load_state(p) for p in sorted((tmp_path / "ema" / "checkpoints").glob("step-*.safetensors"))]
    for before, after in zip(states, states[1:]):  # ema_k = d·ema_(k-1) + (1 - d)·lora_k
        for name, value in after["ema"].items():
            assert torch.allclose(value, 0.5 * before["ema"][name] + 0.5 * after["lora"][name], atol=1e-6), name
    assert not _same_weights(_weights(tmp_path / "ema"), _weights(tmp_path / "raw"), atol=1e-6)


def test_validation_prompts_are_rendered_to_samples(cli, tmp_path, tiny_models, photos):
    _train(cli, photos, tiny_models["sd"], tmp_path / "run", "--max-steps", "4", "--validation-prompt", "a photo of coffee",
           "--validation-every", "2", "--validation-steps", "2")
    names = sorted(p.name for p in (tmp_path / "run" / "samples").glob("*.png"))
    assert names == ["step-000002-0.png", "step-000004-0.png"]
    with Image.open(tmp_path / "run" / "samples" / names[0]) as image:
        assert image.size == (64, 64)


def test_class_images_take_part_with_their_prior_weight(tmp_path, tiny_models, photos, cli):
    from genimg.train.loop import train_lora

    classes = tmp_path / "class"
    classes.mkdir()
    for i, colour in enumerate(("red", "green")):
        Image.new("RGB", (96, 96), colour).save(classes / f"{i}.png")
    common = dict(caption="a photo of sks", class_prompt="a photo", class_images=str(classes), max_steps=6)
    train_lora(_config(photos, tiny_models, tmp_path / "with", **common))
    train_lora(_config(photos, tiny_models, tmp_path / "without", **common, prior_weight=0.0))
    assert not _same_weights(_weights(tmp_path / "with"), _weights(tmp_path / "without"), atol=1e-6)
    result = cli("lora-train", photos, "--model", tiny_models["sd"], "-o", tmp_path / "x", "--max-steps", "1",
                 "--class-images", classes)
    assert result.code == 2 and "--class-prompt" in result.err


def test_captions_get_the_trigger_word_shuffled_tags_and_dropout():
    import random

    from genimg.train.dataset import Example, caption_for

    tagged = Example(None, "a dog, red collar, grass, sunny", 1, False)
    shuffled = {caption_for(tagged, "", True, 0.0, random.Random(i)) for i in range(20)}
    assert len(shuffled) > 1 and all(c.startswith("a dog, ") for c in shuffled)  # the first tag stays first
    assert caption_for(tagged, "sks", False, 0.0, random.Random(0)) == "sks, a dog, red collar, grass, sunny"
    assert caption_for(Example(None, "a dog", 1, True), "sks", False, 0.0, random.Random(0)) == "a dog"  # class images
    dropped = [caption_for(tagged, "sks", False, 0.5, random.Random(i)) for i in range(200)]
    assert 60 < dropped.count("") < 140


def test_min_snr_weights_each_timestep_by_min_snr_gamma_over_snr(tmp_path, tiny_models, photos):
    from genimg.train.loop import train_lora

    train_lora(_config(photos, tiny_models, tmp_path / "snr", min_snr_gamma=1.0, max_steps=2))
    train_lora(_config(photos, tiny_models, tmp_path / "flat", min_snr_gamma=None, max_steps=2))
    first = [float((tmp_path / r / "loss.csv").read_text().splitlines()[1].split(",")[2]) for r in ("snr", "flat")]
    # same noise and timesteps; min(SNR, 1)/SNR <= 1 only ever shrinks a sample's loss
    assert first[0] < first[1]


def test_the_config_template_names_every_setting_and_loads(tmp_path):
    import re

    from genimg.train.config import FIELD_NAMES, TEMPLATE, load_config_file

    named = set(re.findall(r"^#? ?(\w+) = ", TEMPLATE, flags=re.M))
    assert named == FIELD_NAMES
    (tmp_path / "train.toml").write_text(TEMPLATE)
    assert set(load_config_file(tmp_path / "train.toml")) <= FIELD_NAMES


def test_the_default_resolution_is_the_models_own_size(cli, tmp_path, photos):
    out = tmp_path / "demo-lora"
    result = cli("lora-train", photos, "-m", "demo", "-o", out, "--max-steps", "1", "--rank", "2", "--json")
    assert result.code == 0, result
    assert json.loads((out / "genimg_lora.json").read_text())["config"]["resolution"] == 64


@pytest.mark.parametrize("family,vae_dtype", [("sdxl", torch.float32), ("sd", torch.bfloat16)])
def test_sdxls_training_latents_come_from_an_fp32_vae_under_half_precision(tmp_path, tiny_models, photos, family,
                                                                          vae_dtype, monkeypatch):
    """SDXL's VAE overflows in fp16 (NaN latents at step 1): its line encodes in fp32 whatever the mixed precision,
    as diffusers' own SDXL script does; SD's VAE runs in the mixed precision (bf16 stands in for fp16 here)."""
    from genimg.models.families import line_of
    from genimg.train.config import LoraTrainConfig
    from genimg.train.loop import train_lora

    objective = line_of(family).objective
    seen, encode = [], objective.encode_latents

    def recording(self, pixels):
        latents = encode(self, pixels)
        seen.append((self.pipe.vae.dtype, bool(torch.isfinite(latents).all())))
        return latents

    monkeypatch.setattr(objective, "encode_latents", recording)
    train_lora(LoraTrainConfig(dataset=str(photos), model=str(tiny_models[family]), output=str(tmp_path / "run"),
                               resolution=64, rank=4, max_steps=1, checkpoint_every=1, mixed_precision="bf16"))
    assert seen and set(seen) == {(vae_dtype, True)}
