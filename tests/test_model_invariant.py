"""A loaded model stays what its preset made it, whatever jobs a server or a batch runs on it.

Every sequence of tasks on one warm model — img2img, inpaint, ControlNet, the hires fix, LoRAs on and off,
textual inversions, IP-Adapters, seamless tiling, prompt editing, variation seeds — leaves each component's parameters as loaded (names, dtypes, devices), and
the last txt2img equals the first bit for bit. bf16 stands in for a GPU's half precision: the cast that once
turned a warm model float32 after one img2img (diffusers' ``from_pipe``) shows the same on either."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from genimg.factory import PipelineFactory
from genimg.generation import generate
from genimg.spec import GenerationSpec


def _state(factory: PipelineFactory, base_only: bool = False) -> dict:
    """Every parameter and buffer of the loaded model's components: name -> (dtype, device); with
    ``base_only``, the model's own weights under the names they had before a LoRA wrapped their layers."""
    pipe = factory.current.base
    state = {}
    for name, component in pipe.components.items():
        if isinstance(component, torch.nn.Module):
            for key, tensor in [*component.named_parameters(), *component.named_buffers()]:
                if base_only and ".lora_" in key:
                    continue
                key = key.replace(".base_layer.", ".") if base_only else key
                state[f"{name}.{key}"] = (tensor.dtype, tensor.device.type)
    return state


@pytest.fixture(scope="module")
def files(tiny_models, tiny_controlnets, tmp_path_factory):
    from genimg.testing.ip_adapters import save_random_ip_adapter
    from genimg.testing.loras import save_random_lora
    from safetensors.torch import save_file

    root = tmp_path_factory.mktemp("invariant")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(root / "photo.png")
    edges = np.zeros((64, 64, 3), np.uint8)
    edges[16:48, 16:48] = 255
    Image.fromarray(edges).save(root / "square.png")
    torch.manual_seed(0)
    save_file({"emb_params": torch.randn(2, 32) * 3}, str(root / "my-style.safetensors"))
    return {"photo": root / "photo.png", "square": root / "square.png",
            "lora": save_random_lora(tiny_models["sd"], root / "lora"),
            "embedding": root / "my-style.safetensors",
            "ip_adapter": save_random_ip_adapter(tiny_models["sd"], root / "ip"),
            "controlnet": tiny_controlnets["sd"]}


def _jobs(base: GenerationSpec, files: dict) -> list[tuple[str, GenerationSpec]]:
    photo = str(files["photo"])
    return [
        ("img2img", base.replace(task="img2img", image=photo, strength=0.6)),
        ("inpaint", base.replace(task="inpaint", image=photo, mask={"rect": (8, 8, 32, 32)})),
        ("controlnet", base.replace(controls=[{"type": "canny", "image": str(files["square"]),
                                               "model": str(files["controlnet"])}])),
        ("controlnet img2img", base.replace(task="img2img", image=photo, controls=[
            {"type": "canny", "image": str(files["square"]), "model": str(files["controlnet"])}])),
        ("hires", base.replace(hires={"scale": 1.5, "upscaler": "lanczos", "steps": 2})),
        ("lora", base.replace(loras=[f"{files['lora']}:0.8"])),
        ("fused lora", base.replace(loras=[str(files["lora"])], fuse_lora=True)),
        ("embedding", base.replace(prompt="a my-style circle", embeddings=[str(files["embedding"])])),
        ("ip-adapter", base.replace(ip_adapters=[f"{photo},model={files['ip_adapter']}"])),
        ("inpaint with a lora", base.replace(task="inpaint", image=photo, mask={"rect": (0, 0, 32, 32)},
                                             loras=[str(files["lora"])])),
        ("tiling", base.replace(tiling="xy")),
        ("prompt editing and a variation seed", base.replace(prompt="a [red|blue] circle", variation_seed=9,
                                                             variation_strength=0.5)),
    ]


@pytest.mark.parametrize("overrides", [{"dtype": "bf16"}, {"dtype": "bf16", "vae_fp32": True}, {}],
                         ids=["bf16", "bf16-vae-fp32", "fp32"])
def test_every_task_sequence_leaves_the_loaded_model_as_loaded(tiny_models, files, overrides):
    factory = PipelineFactory()
    base = GenerationSpec("a red circle", model=str(tiny_models["sd"]), width=64, height=64, steps=3, seed=7,
                          preset="cpu", preset_overrides=overrides)
    first = np.asarray(generate(base, factory)[0].image)
    loaded = _state(factory)
    expected = torch.bfloat16 if overrides.get("dtype") == "bf16" else torch.float32
    assert {dtype for key, (dtype, _) in loaded.items() if key.startswith("unet.")} == {expected}
    vae = torch.float32 if overrides.get("vae_fp32") else expected
    assert {dtype for key, (dtype, _) in loaded.items() if key.startswith("vae.")} == {vae}
    for name, spec in _jobs(base, files):
        generate(spec, factory)
        assert factory.loads == 1, name  # one warm model served every job
        # A LoRA or IP-Adapter stays attached until a job without it (the next such job needs no reload),
        # so while one is, the model's own weights are compared; once a job has none, the exact state is back.
        after = _state(factory, base_only=True)
        changed = sorted(k for k in loaded if after.get(k) != loaded[k])
        assert not changed, f"after {name}: {changed[:5]}"
        again = np.asarray(generate(base, factory)[0].image)
        assert _state(factory) == loaded, f"after {name}, then txt2img"
        assert np.array_equal(first, again), f"the txt2img after {name} is not the first one"


def test_task_pipelines_share_the_loaded_components_without_casting_them(tiny_models, tiny_controlnets):
    """Half precision as a GPU loads it (fp16; nothing runs here, so the CPU's fp16 kernels do not matter):
    each task's pipeline holds the very modules the model loaded, still fp16."""
    from genimg.models import resolve_model
    from genimg.models.controlnets import resolve_controlnet
    from genimg.presets import get_preset

    from genimg.pipelines import choose_pipeline

    factory = PipelineFactory()
    ref = resolve_model(str(tiny_models["sd"]))
    preset = get_preset("cpu").with_overrides(dtype="fp16")
    base, loaded = factory.get(ref, preset)
    controlnet = resolve_controlnet(str(tiny_controlnets["sd"]), "sd")
    for task, nets in (("img2img", ()), ("inpaint", ()), ("txt2img", (controlnet,)), ("img2img", (controlnet,)),
                       ("inpaint", (controlnet,))):
        pipe, _ = factory.get(ref, preset, choose_pipeline("sd", None, task, nets))
        assert type(pipe).__name__ != type(base).__name__
        for name in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
            assert getattr(pipe, name) is getattr(base, name), (task, name)
        for name in ("unet", "vae", "text_encoder"):
            assert {p.dtype for p in getattr(base, name).parameters()} == {torch.float16}, (task, name)
        assert pipe.config.requires_safety_checker is False
    assert len(loaded.pipelines) == 6 and len(loaded.controlnets) == 1
