"""The pipeline factory: what each preset field sets on a pipeline, loading once, releasing, OOM advice."""

import json

import numpy as np
import pytest
import torch

from genimg.factory import LoadedModel, PipelineFactory
from genimg.quantization import quantization_config
from genimg.pipeline_setup import apply_preset
from genimg.presets import get_preset


@pytest.fixture
def fresh_sd(tiny_models):
    """A freshly loaded tiny SD pipeline (not shared: presets change it)."""
    from diffusers import StableDiffusionPipeline

    def load(dtype=torch.float32):
        pipe = StableDiffusionPipeline.from_pretrained(tiny_models["sd"], dtype=dtype, safety_checker=None)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    return load


def _image(pipe, **kw):
    out = pipe("a tree", num_inference_steps=2, width=64, height=64, output_type="np",
               generator=torch.Generator().manual_seed(3), **kw).images
    return np.asarray(out)


def test_the_cpu_preset_leaves_the_pipeline_plain(fresh_sd):
    pipe = fresh_sd()
    apply_preset(pipe, get_preset("cpu"))
    assert not pipe.vae.use_slicing and not pipe.vae.use_tiling
    assert pipe.unet.dtype == torch.float32 and pipe.unet.device.type == "cpu"


def test_slicing_and_tiling_are_set_and_keep_the_image(fresh_sd):
    plain = fresh_sd()
    apply_preset(plain, get_preset("cpu"))
    sliced = fresh_sd()
    apply_preset(sliced, get_preset("cpu").with_overrides(attention_slicing=True, vae_slicing=True, vae_tiling=True))
    from diffusers.models.attention_processor import SlicedAttnProcessor

    assert sliced.vae.use_slicing and sliced.vae.use_tiling
    assert all(isinstance(p, SlicedAttnProcessor) for p in sliced.unet.attn_processors.values())
    assert np.abs(_image(plain) - _image(sliced)).max() < 1e-4


def test_channels_last_and_vae_fp32(fresh_sd):
    pipe = fresh_sd(torch.bfloat16)
    apply_preset(pipe, get_preset("cpu").with_overrides(dtype="bf16", channels_last=True, vae_fp32=True))
    conv = pipe.unet.conv_in.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    assert pipe.unet.dtype == torch.bfloat16 and pipe.vae.dtype == torch.float32
    assert np.isfinite(_image(pipe)).all()  # bf16 latents reach the fp32 VAE through the cast


def test_model_offload_runs_on_a_cpu_target_and_gives_the_same_image(fresh_sd):
    plain = fresh_sd()
    apply_preset(plain, get_preset("cpu"))
    offloaded = fresh_sd()
    preset = get_preset("cpu").with_overrides(offload="model")
    apply_preset(offloaded, preset)
    assert hasattr(offloaded.unet, "_hf_hook")  # accelerate's hooks move each model in when it runs
    assert np.abs(_image(plain) - _image(offloaded)).max() < 1e-5


def test_sequential_offload_and_compile_reach_diffusers_and_torch(fresh_sd, monkeypatch):
    pipe = fresh_sd()
    calls = []
    monkeypatch.setattr(type(pipe), "enable_sequential_cpu_offload", lambda self, device=None: calls.append(device))
    apply_preset(pipe, get_preset("cpu").with_overrides(offload="sequential", compile="reduce-overhead"))
    assert calls == ["cpu"]
    assert pipe.unet._compiled_call_impl is not None  # nn.Module.compile wraps the denoiser's forward


@pytest.mark.parametrize("family,name,backend,components", [
    ("flux", "6gb", "bitsandbytes_4bit", ["transformer", "text_encoder_2"]),
    ("flux", "12gb", "bitsandbytes_8bit", ["transformer", "text_encoder_2"]),
    ("flux2", "24gb", "bitsandbytes_4bit", ["transformer", "text_encoder"]),  # the 24 B Mistral encoder too
    ("flux2-klein", "12gb", "bitsandbytes_8bit", ["transformer", "text_encoder"]),
])
def test_quantized_tiers_ask_diffusers_for_the_right_config(monkeypatch, family, name, backend, components):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: object() if n == "bitsandbytes" else real(n, *a))
    preset = get_preset(name).for_family(family)
    config = quantization_config(family, preset)
    assert config.quant_backend == backend and config.components_to_quantize == components
    if backend == "bitsandbytes_4bit":
        assert config.quant_kwargs["bnb_4bit_quant_type"] == "nf4"
        assert config.quant_kwargs["bnb_4bit_compute_dtype"] == torch.bfloat16


def test_a_model_is_loaded_once_across_tasks_and_released_when_it_changes(tiny_models):
    from genimg.generation import generate
    from genimg.spec import GenerationSpec

    factory = PipelineFactory()
    from PIL import Image

    spec = GenerationSpec("x", model=str(tiny_models["sd"]), width=64, height=64, steps=2, seed=1)
    [first] = generate(spec, factory)
    first.image.save(factory_path := tiny_models["sd"].parent / "factory-in.png")
    generate(spec.replace(task="img2img", image=str(factory_path)), factory)
    generate(spec.replace(task="inpaint", image=str(factory_path), mask={"rect": (0, 0, 32, 32)}), factory)
    assert (factory.loads, factory.released) == (1, 0)
    base = factory.current.base
    img2img = factory.current.pipelines[("StableDiffusionImg2ImgPipeline", ())]
    assert img2img.unet is base.unet and img2img.vae is base.vae  # the loaded components, shared
    generate(spec.replace(model=str(tiny_models["sdxl"])), factory)
    assert (factory.loads, factory.released) == (2, 1) and factory.current.ref.family == "sdxl"
    assert Image.open(factory_path).size == (64, 64)


def test_out_of_gpu_memory_is_one_line_naming_a_smaller_preset(cli, tmp_path, tiny_models, monkeypatch):
    from genimg import device, presets
    from genimg import factory as factory_module

    monkeypatch.setattr(device, "detect", lambda _=None: device.DeviceInfo("cuda", "Fake 8 GB", 8.0, 7.5))
    monkeypatch.setattr(presets, "_AUTO", {})

    from transformers import CLIPTokenizer

    class OutOfMemoryPipe:
        scheduler = None
        tokenizer = CLIPTokenizer.from_pretrained(tiny_models["sd"] / "tokenizer")

        def __call__(self, **kwargs):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    def get(self, ref, preset, choice=None, progress=None):
        return OutOfMemoryPipe(), LoadedModel(ref=ref, preset=preset, scheduler_config={})

    monkeypatch.setattr(factory_module.PipelineFactory, "get", get)
    result = cli("txt2img", "x", "-m", tiny_models["sd"], "-W", "64", "-H", "64", "--steps", "2",
                 "-o", tmp_path / "a.png")
    assert result.code == 1, result
    assert result.err.count("\n") == 1 and "out of GPU memory" in result.err and "--preset 6gb" in result.err
    assert not (tmp_path / "a.png").exists()


def test_auto_fallback_retries_once_on_the_next_smaller_preset(cli, tmp_path, tiny_models, monkeypatch, eight_gb_fits):
    from genimg import device, presets
    from genimg.output.metadata import read_metadata

    asked = eight_gb_fits
    args = ("txt2img", "x", "-m", tiny_models["sd"], "-W", "64", "-H", "64", "--steps", "2", "-n", "")
    result = cli(*args, "--auto-fallback", "-o", tmp_path / "a.png")
    assert result.code == 0, result
    assert asked == ["12gb", "8gb"]
    assert "out of GPU memory at 64x64 with preset 12gb; retrying once with --preset 8gb" in result.err
    assert read_metadata(tmp_path / "a.png")["genimg"]["spec"]["preset"] == "8gb"
    # Once only: when the smaller tier does not fit either, the error stands.
    asked.clear()
    monkeypatch.setattr(device, "detect", lambda _=None: device.DeviceInfo("cuda", "Fake 24 GB", 24.0, 23.0))
    monkeypatch.setattr(presets, "_AUTO", {})
    result = cli(*args, "--auto-fallback", "-o", tmp_path / "b.png")
    assert result.code == 1 and asked == ["24gb", "16gb"] and "preset 16gb; try --preset 12gb" in result.err, result
    assert not (tmp_path / "b.png").exists()


def test_presets_command_reports_the_tier_auto_picks_on_each_device(cli, monkeypatch):
    from genimg import device, presets

    for info, expected, words in (
        (device.DeviceInfo("cpu", "CPU"), "cpu", "no CUDA"),
        (device.DeviceInfo("cuda", "Fake 8 GB", 8.0, 2.0), "8gb", "8.0 GB"),
    ):
        monkeypatch.setattr(device, "detect", lambda _=None, info=info: info)
        monkeypatch.setattr(presets, "_AUTO", {})
        result = cli("presets", "--json")
        assert result.code == 0
        auto = json.loads(result.out)["auto"]
        assert auto["preset"] == expected and words in auto["reason"]


@pytest.mark.parametrize("device_kind,missing,words", [
    ("cpu", "compiler", "no C++ compiler"),
    ("cuda", "triton", "triton"),
    ("cpu", None, None),
])
def test_compile_without_a_compiler_warns_and_runs_eagerly(tiny_models, monkeypatch, device_kind, missing, words):
    import importlib.util
    import shutil

    from genimg import device
    from genimg.generation import plan
    from genimg.spec import GenerationSpec

    monkeypatch.setattr(device, "detect", lambda _=None: device.DeviceInfo(device_kind, "Fake", 24.0, 24.0))
    if missing == "compiler":
        monkeypatch.setattr(shutil, "which", lambda name: None)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if (n == "triton" and missing == "triton") else real(n, *a))
    preset = "cpu" if device_kind == "cpu" else "24gb"
    the_plan = plan(GenerationSpec("x", model=str(tiny_models["sd"]), preset=preset, preset_overrides={"compile": "default"}))
    if words:
        assert the_plan.preset.compile == "off"
        [warning] = [w for w in the_plan.warnings if "compile" in w]
        assert words in warning and "running eagerly" in warning
    else:
        assert the_plan.preset.compile == "default" and not any("compile" in w for w in the_plan.warnings)
