"""The cpu-openvino preset: the UNet run by OpenVINO inside the diffusers pipeline, converted once per
weights (LoRAs included) and size, and calls it cannot take run on torch. On the tiny models, with the
CPU seen without bf16 instructions (conftest) so OpenVINO computes in fp32, as the cpu preset does."""

import json

import numpy as np
import pytest

from genimg.testing.images import pixels

pytest.importorskip("openvino")
FAST = ("-W", "64", "-H", "64", "--steps", "3", "--seed", "4", "--json")


def _ir_files(part: str = "UNet"):
    """The IRs of the route's cache for one part of the model: "UNet", "VAE decoder", "VAE encoder", "text
    encoder" … (the sidecar beside each names the model and, for the other parts, the part)."""
    from genimg.openvino_cache import part_of
    from genimg.paths import cache_dir

    return sorted(xml for xml in (cache_dir() / "openvino").glob("*.xml")
                  if part_of(json.loads(xml.with_suffix(".json").read_text())["model"])[1] == part)


def _kernels(xml) -> set:
    """The convolution kernels of an IR: "3x3" for a stride-1 Convolution with a 3×3 kernel, "16-products"
    for Winograd's MatMul by a constant of 16 matrices; the rest ("other") are the UNet's 1×1 and strided
    convolutions."""
    import openvino as ov

    found = set()
    for op in ov.Core().read_model(xml).get_ops():
        shape = [list(op.get_input_shape(i)) for i in range(op.get_input_size())]  # static: saved for the call's shapes
        if op.get_type_name() == "Convolution":
            found.add("3x3" if shape[1][2:] == [3, 3] and list(op.get_strides()) == [1, 1] else "other")
        elif op.get_type_name() == "MatMul" and shape[1][0] == 16 and len(shape[1]) == 3:
            found.add("16-products")
    return found - {"other"}


@pytest.mark.parametrize("family", ["sd", pytest.param("sdxl", marks=pytest.mark.slow)])  # SDXL: its second text
# encoder is checked on the route below; its whole image, a conversion more, is slow
def test_openvino_makes_the_cpu_presets_image_and_converts_once(cli, tmp_path, tiny_models, family, monkeypatch):
    # a cache of its own: genimg processes other tests start see OpenVINO for `auto` (conftest pins only this
    # process), so they may have converted this model already
    monkeypatch.setenv("GENIMG_CACHE_DIR", str(tmp_path / "cache"))
    model = ("-m", tiny_models[family])
    torch_run = cli("txt2img", "a ring", *model, *FAST, "--preset", "cpu", "-o", tmp_path / "torch.png")
    before = _ir_files()
    first = cli("txt2img", "a ring", *model, *FAST, "--preset", "cpu-openvino", "-o", tmp_path / "ov.png")
    assert torch_run.code == 0 and first.code == 0, (torch_run, first)
    converted = [p for p in _ir_files() if p not in before]
    assert len(converted) == 1 and converted[0].with_suffix(".bin").is_file()
    # at 64² every 3×3 convolution is small enough for Winograd's: its 16 products, no 3×3 kernel left
    assert _kernels(converted[0]) == {"16-products"}
    assert np.abs(pixels(tmp_path / "ov.png") - pixels(tmp_path / "torch.png")).max() <= 1
    assert len(_ir_files("VAE decoder")) == 1 and not _ir_files("VAE encoder")  # the whole image on the route
    assert len(_ir_files("text encoder")) == 1 and len(_ir_files("text encoder 2")) == (family == "sdxl")
    assert json.loads(first.out)["settings"]["preset"] == "cpu-openvino"
    again = cli("txt2img", "a ring", *model, *FAST, "--preset", "cpu-openvino", "-o", tmp_path / "again.png")
    assert again.code == 0 and _ir_files() == sorted(before + converted)  # the IR on disk is reused
    assert np.array_equal(pixels(tmp_path / "again.png"), pixels(tmp_path / "ov.png"))
    assert "converting" not in again.err


def test_on_a_cpu_with_bf16_the_route_converts_and_computes_in_bf16(cli, tmp_path, tiny_models, monkeypatch):
    import openvino as ov

    from genimg import device
    from genimg.presets import get_preset

    assert get_preset("cpu-openvino").dtype == "fp32"  # conftest's CPU has no bf16: torch would only emulate it
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16\n")
    monkeypatch.setattr(device, "CPUINFO", str(cpuinfo))
    monkeypatch.setenv("GENIMG_CACHE_DIR", str(tmp_path / "cache"))
    assert get_preset("cpu-openvino").dtype == "bf16"
    model = ("-m", tiny_models["sd"])
    torch_run = cli("txt2img", "a ring", *model, *FAST, "--preset", "cpu-bf16", "-o", tmp_path / "torch.png")
    made = cli("txt2img", "a ring", *model, *FAST, "--preset", "cpu-openvino", "-o", tmp_path / "ov.png")
    assert torch_run.code == 0 and made.code == 0, (torch_run, made)
    [xml] = _ir_files()
    weights = [op for op in ov.Core().read_model(xml).get_ops()  # the UNet's parameters, by the tracer's names
               if op.get_type_name() == "Constant" and op.get_friendly_name().startswith("self.unet.")]
    assert len(weights) > 50 and {op.get_output_element_type(0).get_type_name() for op in weights} == {"bf16"}
    difference = np.abs(pixels(tmp_path / "ov.png").astype(float) - pixels(tmp_path / "torch.png"))
    # bf16 rounds differently in OpenVINO and torch (1.3 and 9 levels here); a CPU without bf16 emulates it
    assert difference.mean() < 3 and difference.max() < 40, (difference.mean(), difference.max())


@pytest.mark.slow  # a fourth conversion (the VAE's encoder); the route's own image is checked in the default run above
def test_img2img_runs_the_vae_encoder_on_the_route_too_and_a_tiled_decode_stays_on_torch(cli, tmp_path, tiny_models,
                                                                                          monkeypatch):
    from genimg.testing.images import save_ring

    monkeypatch.setenv("GENIMG_CACHE_DIR", str(tmp_path / "cache"))
    ring, model = save_ring(tmp_path / "ring.png"), ("-m", tiny_models["sd"])
    for preset in ("cpu", "cpu-openvino"):
        made = cli("img2img", ring, "a ring", *model, *FAST, "--strength", "0.6", "--preset", preset,
                   "-o", tmp_path / f"{preset}.png")
        assert made.code == 0, made
    assert [len(_ir_files(part)) for part in ("UNet", "VAE encoder", "VAE decoder")] == [1, 1, 1]
    assert np.abs(pixels(tmp_path / "cpu-openvino.png") - pixels(tmp_path / "cpu.png")).max() <= 1
    tiled = cli("txt2img", "a ring", *model, *FAST, "--vae-tiling", "--preset", "cpu-openvino", "-o", tmp_path / "t.png")
    assert tiled.code == 0 and "(VAE decoder) runs on torch for this call (tiled" in tiled.err, tiled


@pytest.mark.parametrize("part", ["text_encoder", "text_encoder_2"])
def test_a_text_encoder_on_the_route_gives_what_transformers_gives(tiny_models, tmp_path, part):
    import torch
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    from genimg.openvino_text import install_text
    from genimg.openvino_unet import RECIPES

    cls = CLIPTextModel if part == "text_encoder" else CLIPTextModelWithProjection  # SD's; SDXL's second
    encoder = cls.from_pretrained(f"{tiny_models['sdxl']}/{part}").eval()
    ids = torch.randint(0, encoder.config.vocab_size, (1, 77))
    with torch.inference_mode():
        expected = encoder(ids, output_hidden_states=True)
        install_text(encoder, tmp_path, RECIPES["fp32"], model="tiny")
        got = encoder(ids, output_hidden_states=True)
        assert type(got) is type(expected) and len(got.hidden_states) == len(expected.hidden_states) > 2
        pairs = [(got[0], expected[0]), (got[1], expected[1]), *zip(got.hidden_states, expected.hidden_states)]
        assert all(torch.allclose(a, b, atol=1e-4) for a, b in pairs)  # every layer: clip skip reads them
        assert encoder(ids)[0].shape == expected[0].shape and encoder(ids).hidden_states is None
        masked = encoder(ids, attention_mask=torch.ones_like(ids))  # not among the graph's inputs: torch runs it
    assert torch.allclose(masked[0], expected[0], atol=1e-5)
    assert len(list(tmp_path.glob("*.xml"))) == 1


@pytest.mark.parametrize("flags, kind, winograd, f32_graph", [
    ("avx2 avx512f avx512_bf16 amx_bf16 amx_tile", "amx", False, True),  # Intel Xeon, Sapphire Rapids on
    ("avx2 avx512f avx512_bf16", "avx512-bf16", True, False),  # AMD Zen 4
    ("avx2 fma", "fp32", True, True),
])
def test_each_cpu_kind_gets_its_recipe(tmp_path, monkeypatch, flags, kind, winograd, f32_graph):
    from genimg import device
    from genimg.openvino_unet import recipe_for_this_cpu

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: fpu sse2 {flags}\n")
    monkeypatch.setattr(device, "CPUINFO", str(cpuinfo))
    assert device.cpu_kind() == kind
    recipe = recipe_for_this_cpu()
    assert (recipe.winograd, recipe.f32_graph) == (winograd, f32_graph)


def test_on_an_amx_cpu_the_route_converts_a_float32_graph_and_leaves_the_bf16_unet_as_it_was(tmp_path, tiny_models,
                                                                                              monkeypatch):
    import openvino as ov
    import torch
    from diffusers import UNet2DConditionModel

    from genimg.openvino_unet import RECIPES, install

    unet = UNet2DConditionModel.from_pretrained(f"{tiny_models['sd']}/unet", torch_dtype=torch.bfloat16).eval()
    before = {name: t.clone() for name, t in unet.state_dict().items()}
    sample, context = torch.randn(2, 4, 8, 8), torch.randn(2, 77, unet.config.cross_attention_dim)
    with torch.inference_mode():
        expected = unet(sample.bfloat16(), 500, context.bfloat16()).sample.float()
        install(unet, tmp_path / "cache", recipe=RECIPES["amx"])
        got = unet(sample, 500, context).sample.float()
    [xml] = sorted((tmp_path / "cache").glob("*.xml"))
    assert "-static.f32-" in xml.name
    constants = {op.get_output_element_type(0).get_type_name() for op in ov.Core().read_model(xml).get_ops()
                 if op.get_type_name() == "Constant" and op.get_output_partial_shape(0).rank.get_length() == 4}
    assert constants == {"f32"}  # the convolutions' weights: a float32 graph, lowered to bf16 by OpenVINO
    assert _kernels(xml) == {"3x3"}  # no Winograd on AMX
    after = unet.state_dict()
    assert all(after[name].dtype == torch.bfloat16 and torch.equal(after[name], t) for name, t in before.items())
    # OpenVINO computes in fp32 here (conftest's CPU has no bf16) from the bf16 weights: torch's bf16 run
    # rounds every activation too, so the two agree as far as bf16 does
    assert (got - expected).norm() / expected.norm() < 0.02


@pytest.mark.slow  # 25-90 s each on 2 cores: the route's cache bookkeeping; `pytest -m slow` runs it
def test_a_lora_is_a_new_conversion_and_a_controlnet_runs_on_torch(cli, tmp_path, tiny_models, tiny_controlnets):
    from genimg.testing.images import save_ring
    from genimg.testing.loras import save_random_lora

    lora = save_random_lora(tiny_models["sd"], tmp_path / "lora")
    model = ("-m", tiny_models["sd"])
    for preset in ("cpu", "cpu-openvino"):
        made = cli("txt2img", "a ring", *model, *FAST, "--lora", f"{lora}:0.8", "--preset", preset,
                   "-o", tmp_path / f"lora-{preset}.png")
        assert made.code == 0, made
    count = len(_ir_files())
    assert cli("txt2img", "a ring", *model, *FAST, "--lora", f"{lora}:0.4", "--preset", "cpu-openvino",
               "-o", tmp_path / "lora-weaker.png").code == 0
    assert len(_ir_files()) == count + 1  # another LoRA weight: other weights, another graph, never the old one
    assert np.abs(pixels(tmp_path / "lora-cpu-openvino.png") - pixels(tmp_path / "lora-cpu.png")).max() <= 1
    ring = save_ring(tmp_path / "ring.png")
    steered = cli("controlnet", ring, "a ring", *model, "--controlnet", tiny_controlnets["sd"], *FAST,
                  "--preset", "cpu-openvino", "-o", tmp_path / "cn.png")
    assert steered.code == 0 and "ControlNets add residuals" in steered.err, steered
    assert steered.err.endswith("; running as preset cpu instead of cpu-openvino\n")
    plain = cli("controlnet", ring, "a ring", *model, "--controlnet", tiny_controlnets["sd"], *FAST, "--preset", "cpu",
                "-o", tmp_path / "cn-torch.png")
    assert plain.code == 0 and np.abs(pixels(tmp_path / "cn.png") - pixels(tmp_path / "cn-torch.png")).max() <= 1


def test_flux_says_it_stays_on_torch(cli, tmp_path, tiny_models):
    made = cli("txt2img", "a ring", "-m", tiny_models["flux"], *FAST, "--preset", "cpu-openvino", "-o", tmp_path / "f.png")
    assert made.code == 0 and "FLUX.1 runs on torch; running as preset cpu instead of cpu-openvino" in made.err, made


@pytest.mark.slow  # 25-90 s each on 2 cores: the route's cache bookkeeping; `pytest -m slow` runs it
def test_models_optimize_converts_ahead_of_time_so_the_first_image_does_not(cli, tmp_path, tiny_models):
    model = tiny_models["sd"]
    before = _ir_files()
    ready = cli("models", "optimize", model, "--for", "cpu", "-W", "48", "-H", "48")
    assert ready.code == 0 and "the OpenVINO UNet and VAE decoder for 48x48 are ready" in ready.out, ready
    assert len(_ir_files()) == len(before) + 1
    made = cli("txt2img", "a ring", "-m", model, "-W", "48", "-H", "48", "--steps", "2", "--preset", "cpu-openvino",
               "-o", tmp_path / "o.png")
    assert made.code == 0 and "converting" not in made.err and len(_ir_files()) == len(before) + 1
    wrong = cli("models", "optimize", model, "--for", "gpu")
    assert wrong.code == 2 and "--for cpu" in wrong.err


@pytest.mark.slow  # 25-90 s each on 2 cores: the route's cache bookkeeping; `pytest -m slow` runs it
def test_only_the_recent_compiled_graphs_stay_in_memory(tiny_models):
    from genimg.factory import PipelineFactory
    from genimg.generation import plan, run
    from genimg.openvino_unet import KEPT_GRAPHS
    from genimg.spec import GenerationSpec

    factory = PipelineFactory()
    for side in (32, 48, 64):
        spec = GenerationSpec(prompt="x", model=str(tiny_models["sd"]), preset="cpu-openvino", width=side,
                              height=side, steps=1, seed=1)
        list(run(plan(spec), factory))
    forward = factory.current.base.unet.forward
    assert len(forward.requests) == KEPT_GRAPHS
    latent_sides = [shapes[0][2] for _, shapes in forward.requests]
    assert latent_sides[1] * 48 == latent_sides[0] * 64  # the latents of 48 and 64 px, the newest last


@pytest.mark.parametrize("bf16", [True, False])
def test_auto_sends_what_openvino_cannot_run_to_the_torch_preset(fake_device, tiny_models, bf16):
    from genimg.generation import plan
    from genimg.spec import GenerationSpec

    fake_device("cpu", bf16=bf16, openvino=True)
    on_torch = "cpu-bf16" if bf16 else "cpu"

    def planned(family, **given):
        return plan(GenerationSpec(prompt="a ring", model=str(tiny_models[family]), width=64, height=64, steps=2,
                                   seed=1, **given))

    sd = planned("sd")
    assert (sd.preset.name, sd.preset.compile) == ("cpu-openvino", "openvino") and not sd.warnings
    flux = planned("flux")
    assert (flux.preset.name, flux.preset.compile) == (on_torch, "off")
    assert flux.warnings == (f"only UNet models (SD 1.x/2.x, SDXL) have an OpenVINO route; FLUX.1 runs on torch; "
                             f"running as preset {on_torch} instead of cpu-openvino (auto's choice on this CPU)",)
    cached = planned("sd", preset_overrides={"deepcache": 2})  # DeepCache patches the torch UNet
    assert (cached.preset.name, cached.preset.deepcache) == (on_torch, 2) and "DeepCache" in cached.warnings[0]
    demo = plan(GenerationSpec(prompt="a red circle", seed=1))  # the built-in model: too small to gain
    assert (demo.ref.name, demo.preset.name, demo.warnings) == ("demo", on_torch, ())
    assert planned("sdxl").preset.name == "cpu-openvino"
    assert planned("sdxl", preset="cpu").preset.name == "cpu"  # torch when asked for by name
    named = planned("flux", preset="cpu", preset_overrides={"compile": "openvino", "channels_last": True})
    assert (named.preset.name, named.preset.compile, named.preset.channels_last) == ("cpu", "off", True)


def _mapped_from(path) -> list[tuple[int, int]]:
    """The address ranges this process maps ``path`` at (/proc/self/maps)."""
    ranges = []
    for line in open("/proc/self/maps"):
        fields = line.split()
        if len(fields) >= 6 and fields[5] == str(path):
            start, end = fields[0].split("-")
            ranges.append((int(start, 16), int(end, 16)))
    return ranges


@pytest.mark.slow  # 25-90 s each on 2 cores: the route's cache bookkeeping; `pytest -m slow` runs it
def test_once_compiled_the_torch_weights_are_read_from_disk_and_a_fused_lora_never_writes_there(
        tiny_models, tmp_path, monkeypatch):
    import hashlib

    from genimg.factory import PipelineFactory
    from genimg.generation import generate
    from genimg.spec import GenerationSpec
    from genimg.testing.loras import save_random_lora

    monkeypatch.setenv("GENIMG_CACHE_DIR", str(tmp_path / "cache"))
    factory = PipelineFactory()
    spec = GenerationSpec("x", model=str(tiny_models["sd"]), preset="cpu-openvino", width=64, height=64, steps=3, seed=4)
    plain = np.asarray(generate(spec, factory)[0].image).astype(int)
    [weights] = (tmp_path / "cache" / "openvino").glob("*-weights.safetensors")
    unet = factory.current.base.unet
    ranges = _mapped_from(weights)
    outside = [name for name, t in unet.state_dict().items()
               if not any(start <= t.data_ptr() < end for start, end in ranges)]
    assert ranges and not outside, outside  # every tensor is a view of the file's pages, none a copy in RAM
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()

    lora = spec.replace(loras=[f"{save_random_lora(tiny_models['sd'], tmp_path / 'lora')}:0.8"], fuse_lora=True)
    fused = np.asarray(generate(lora, factory)[0].image).astype(int)  # fused into the mapped weights
    on_torch = np.asarray(generate(lora.replace(preset="cpu"), PipelineFactory())[0].image).astype(int)
    assert np.abs(fused - on_torch).max() <= 1 and np.abs(fused - plain).mean() > 0.5
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == digest  # the fused layers were copied, not written
    after = np.asarray(generate(spec, factory)[0].image).astype(int)
    assert np.abs(after - plain).max() <= 1  # unfused: the model's own graph again


@pytest.mark.slow  # a conversion of its own; the route's image with Winograd's filters is checked in the default run above
def test_the_graph_is_saved_while_the_winograd_filters_it_shares_are_alive(tiny_models, tmp_path, monkeypatch):
    # convert_model shares the torch tensors' memory: saved after the filters were freed, the IR was written
    # from freed memory (a crash on sd-turbo's full-size UNet, where a garbage collection came in between)
    import gc
    import weakref

    import openvino as ov

    from genimg import winograd
    from genimg.factory import PipelineFactory
    from genimg.generation import generate
    from genimg.spec import GenerationSpec

    made, alive_when_saved = [], []
    create = winograd.Winograd3x3.__init__

    def recorded(self, conv):
        create(self, conv)
        made.append(weakref.ref(self))

    save = ov.save_model

    def saving(*args, **kwargs):
        gc.collect()  # whatever only the tracer's reference cycles still hold goes now
        alive_when_saved.append(sum(ref() is not None for ref in made))
        return save(*args, **kwargs)

    monkeypatch.setattr(winograd.Winograd3x3, "__init__", recorded)
    monkeypatch.setattr(ov, "save_model", saving)
    monkeypatch.setenv("GENIMG_CACHE_DIR", str(tmp_path / "cache"))
    spec = GenerationSpec("x", model=str(tiny_models["sd"]), preset="cpu-openvino", width=64, height=64, steps=3, seed=4)
    routed = np.asarray(generate(spec, PipelineFactory())[0].image).astype(int)
    # the text encoder's save (before the UNet's: the prompt is encoded first), the UNet's, the VAE decoder's
    assert len(made) > 5 and alive_when_saved == [0, len(made), 0]
    on_torch = np.asarray(generate(spec.replace(preset="cpu"), PipelineFactory())[0].image).astype(int)
    assert np.abs(routed - on_torch).max() <= 1


def test_a_conversion_that_would_fill_the_disk_is_refused_with_the_room_it_needs(tiny_models, tmp_path, monkeypatch):
    from genimg import files
    from genimg.errors import DiskFull
    from genimg.factory import PipelineFactory
    from genimg.generation import generate
    from genimg.spec import GenerationSpec

    monkeypatch.setenv("GENIMG_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(files, "free_space", lambda folder: 1000)
    spec = GenerationSpec("x", model=str(tiny_models["sd"]), preset="cpu-openvino", width=64, height=64, steps=3, seed=4)
    with pytest.raises(DiskFull, match=r"converting the .+ for OpenVINO needs about \d+ MB, .* 0 MB free; "
                                       "free some space or set GENIMG_CACHE_DIR to a bigger disk"):
        generate(spec, PipelineFactory())
    assert not list((tmp_path / "cache").rglob("*.bin"))


@pytest.mark.slow  # 25-90 s each on 2 cores: the route's cache bookkeeping; `pytest -m slow` runs it
def test_models_conversions_lists_each_weights_conversions_and_frees_them(cli, tmp_path, tiny_models, monkeypatch):
    from genimg.openvino_cache import UNKNOWN

    monkeypatch.setenv("GENIMG_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "cache" / "openvino"
    model = tiny_models["sd"]
    for size in ("48", "64"):
        assert cli("models", "optimize", model, "--for", "cpu", "-W", size, "-H", size, "-q").code == 0
    (folder / "compiled").mkdir(exist_ok=True)
    (folder / "compiled" / "0123.blob").write_bytes(b"x" * 1000)  # OpenVINO's blobs as a genimg before kept them

    listed = cli("models", "conversions", "--json")
    assert listed.code == 0, listed
    entries = json.loads(listed.out)
    legacy = next(c for c in entries if c["key"] == "compiled")
    ours = next(c for c in entries if c["model"] == model.name)  # the UNet's
    decoder = next(c for c in entries if c["model"] == f"{model.name} (VAE decoder)")
    text = next(c for c in entries if c["model"] == f"{model.name} (text encoder)")
    assert len(entries) == 4 and sorted(decoder["sizes"]) == ["48x48 batch 1", "64x64 batch 1"] and text["sizes"] == ["77 tokens"]
    files = [p for p in folder.rglob("*") if p.is_file() and (p.name.startswith(ours["key"]) or ours["key"] in p.parts)]
    assert ours["bytes"] == sum(p.stat().st_size for p in files) > 0
    assert sorted(ours["sizes"]) == ["48x48 batch 2", "64x64 batch 2"]  # batch 2: guidance's two halves
    assert ours["model"] == model.name and legacy["model"] == UNKNOWN
    assert legacy["bytes"] == 1000 and legacy["sizes"] == []

    table = cli("models", "conversions")
    assert table.code == 0 and ours["key"][:12] in table.out and model.name in table.out, table
    wrong = cli("models", "conversions", "--rm", "nosuch")
    assert wrong.code == 2 and "no OpenVINO conversion of that model or key" in wrong.err

    gone = cli("models", "conversions", "--rm", ours["key"][:8], "--yes")
    assert gone.code == 0 and f"{ours['bytes'] / 1e9:.2f} GB freed" in gone.out
    assert all(not p.name.startswith(ours["key"]) and ours["key"] not in p.parts for p in folder.rglob("*"))
    assert cli("models", "conversions", "--rm", model.name, "--yes").code == 0  # the model's VAE parts go with it
    assert [p.name for p in folder.rglob("*") if p.is_file()] == ["0123.blob"]
    assert cli("models", "conversions", "--rm", "all", "--yes").code == 0
    assert json.loads(cli("models", "conversions", "--json").out) == []
    from genimg.api import release

    release()  # a model an earlier test left warm in this process would hold its compiled graph in memory
    again = cli("txt2img", "a ring", "-m", model, "-W", "48", "-H", "48", "--steps", "2", "--preset", "cpu-openvino",
                "-o", tmp_path / "o.png")
    assert again.code == 0 and "converting" in again.err  # freed means made again when needed



def test_a_save_that_fails_midway_leaves_no_part_of_the_ir_and_a_full_disk_says_so(tiny_models, tmp_path, monkeypatch):
    import openvino as ov

    from genimg import files
    from genimg.errors import DiskFull, RunFailure
    from genimg.factory import PipelineFactory
    from genimg.generation import generate
    from genimg.spec import GenerationSpec

    room = {"bytes": 10**12, "fills": True}

    def full_disk(model, path, **kwargs):
        path.with_suffix(".bin").write_bytes(b"half")  # what a save cut short leaves
        path.write_text("<net")
        room["bytes"] = 0 if room["fills"] else room["bytes"]  # the disk filled while saving
        raise RuntimeError("Exception from src/core/src/pass/serialize.cpp: basic_ios::clear: iostream error")

    monkeypatch.setattr(ov, "save_model", full_disk)
    monkeypatch.setattr(files, "free_space", lambda folder: room["bytes"])
    monkeypatch.setenv("GENIMG_CACHE_DIR", str(tmp_path / "cache"))
    spec = GenerationSpec("x", model=str(tiny_models["sd"]), preset="cpu-openvino", width=64, height=64, steps=3, seed=4)
    # the first conversion a txt2img makes is its text encoder's (the prompt is encoded first)
    with pytest.raises(DiskFull, match=r"saving the converted .+ \(text encoder\) filled .*cache/openvino \(0 MB free; it needs about "
                                       r"\d+ MB\); free some space or set GENIMG_CACHE_DIR to a bigger disk"):
        generate(spec, PipelineFactory())
    assert [p.name for p in (tmp_path / "cache" / "openvino").iterdir()] == []
    room.update(bytes=10**12, fills=False)  # another failure, with room: OpenVINO's own error, as it was
    with pytest.raises(RunFailure, match="the pipeline failed: .*iostream error"):
        generate(spec, PipelineFactory())
    assert [p.name for p in (tmp_path / "cache" / "openvino").iterdir()] == []
