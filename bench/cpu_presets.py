"""The CPU presets against plain diffusers fp32: seconds per denoising step of the full-size UNet,
the fraction of the machine's measured bf16 matmul peak, and how far bf16 moves the latents.

    python bench/cpu_presets.py [--family sd|sdxl] [--steps 4] [--compile] [--openvino [--int8]] [--presets-only] [--profile] [--json]

Builds the UNet with its published architecture and random weights (genimg.testing.full_size), then
runs the same short Euler denoising loop (batch 2, as classifier-free guidance runs it; 512² for SD1.5,
1024² for SDXL) once per configuration, side by side in one process:

- ``diffusers fp32``: what a plain ``StableDiffusionPipeline`` on a CPU runs (the ``cpu`` preset);
- each setting of the ``cpu-bf16`` preset alone and together (genimg's ``apply_preset`` sets them);
- with ``--compile``: that preset plus ``torch.compile``, with its compile time and payback point;
- with ``--openvino``: OpenVINO on the same graph. First the peer, **OpenVINO as its documentation
  converts a model**: ``ov.convert_model`` of the fp32 UNet, static shapes, the bf16 precision hint where
  the CPU has bf16 and the LATENCY performance hint — the strongest plain configuration — and the same IR
  with its shapes left dynamic, as ``convert_model`` leaves them. Then genimg's own route (the
  ``cpu-openvino`` preset, into a fresh cache, from the weights as the preset loads them) under each CPU
  kind's recipe (``genimg.openvino_unet.RECIPES``: Winograd's 3×3 convolutions or not, a bf16 or a float32
  graph), this CPU's default marked; on a CPU with bf16 instructions also the route converted from fp32
  weights and computing in fp32, what it runs on CPUs without them. Every row's speed is also given against
  OpenVINO as documented, and the CPU's model, kind and flags head the table;
- with ``--int8`` too: the route's fp32 IR (Winograd's convolutions included) compressed by NNCF (``pip install nncf``) as optimum-intel
  offers it, INT8 weights alone and its hybrid mode for diffusion models (INT8 convolutions, activations
  calibrated); the first step includes the compression.

The first step of each loop is the warm-up (and the compile); the figure is the median of the rest.
The latent error is ``|x - x_fp32| / |x_fp32|`` after the last step.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

SIZES = {"sd": 512, "sdxl": 1024}


def matmul_peak(dtype, n: int = 4096, reps: int = 5) -> float:
    """GFLOP/s of an n×n matmul: what this CPU can reach in ``dtype``."""
    import torch

    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    began = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - began) / 1e9


def unet_and_inputs(family: str):
    import torch
    from diffusers import UNet2DConditionModel

    from genimg.testing import full_size

    torch.manual_seed(0)
    config = full_size.SD15_UNET if family == "sd" else full_size.SDXL_UNET
    unet = UNet2DConditionModel(**config).eval()
    side = SIZES[family] // 8
    latents = torch.randn(1, 4, side, side)
    width = unet.config.cross_attention_dim
    context = torch.randn(2, 77, width)
    extra = {}
    if family == "sdxl":
        extra = {"added_cond_kwargs": {"text_embeds": torch.randn(2, 1280),
                                       "time_ids": torch.tensor([[1024, 1024, 0, 0, 1024, 1024]] * 2, dtype=torch.float32)}}
    return unet, latents, context, extra


def count_flops(unet, latents, context, extra) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        unet(torch.cat([latents] * 2), 999, encoder_hidden_states=context, **extra)
    return counter.get_total_flops()


def denoise(unet, latents, context, extra, steps: int, dtype, channels_last: bool):
    """A ``steps``-step Euler loop with guidance 7.5; returns (seconds per step, final latents)."""
    import torch
    from diffusers import EulerDiscreteScheduler

    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    scheduler.set_timesteps(steps)
    x = latents * scheduler.init_noise_sigma
    context = context.to(dtype)
    extra = {"added_cond_kwargs": {k: v.to(dtype) for k, v in extra["added_cond_kwargs"].items()}} if extra else {}
    times = []
    with torch.inference_mode():
        for t in scheduler.timesteps:
            began = time.perf_counter()
            model_in = scheduler.scale_model_input(torch.cat([x] * 2), t).to(dtype)
            if channels_last:
                model_in = model_in.contiguous(memory_format=torch.channels_last)
            uncond, cond = unet(model_in, t, encoder_hidden_states=context, **extra).sample.float().chunk(2)
            x = scheduler.step(uncond + 7.5 * (cond - uncond), t, x).prev_sample
            times.append(time.perf_counter() - began)
    return times, x


def where_time_goes(unet, latents, context, extra) -> dict:
    """One step of ``unet`` under torch's profiler, its own time per kind of operator: attention,
    convolution, matmul, the rest (norms, activations, copies)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    kinds = {"attention": ("scaled_dot_product",), "convolution": ("convolution",), "matmul": ("addmm", "aten::mm", "bmm")}
    dtype = next(unet.parameters()).dtype
    model_in = torch.cat([latents] * 2).to(dtype).contiguous(memory_format=torch.channels_last)
    context = context.to(dtype)
    extra = {"added_cond_kwargs": {k: v.to(dtype) for k, v in extra["added_cond_kwargs"].items()}} if extra else {}
    with torch.inference_mode():
        unet(model_in, 500, encoder_hidden_states=context, **extra)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            unet(model_in, 500, encoder_hidden_states=context, **extra)
    seconds = dict.fromkeys([*kinds, "the rest"], 0.0)
    for event in prof.key_averages():
        kind = next((k for k, names in kinds.items() if any(n in event.key for n in names)), "the rest")
        seconds[kind] += event.self_cpu_time_total / 1e6
    total = sum(seconds.values())
    return {kind: {"s": round(s, 2), "share": round(s / total, 3)} for kind, s in seconds.items()}


def configurations(args):
    from genimg.device import cpu_has_bf16

    rows = [("diffusers fp32 (the cpu preset)", "fp32", False, False),
            ("fp32 + channels_last", "fp32", True, False),
            ("bf16", "bf16", False, False),
            ("bf16 + channels_last (the cpu-bf16 preset)", "bf16", True, False)]
    if args.presets_only:  # SDXL's fp32 step is over a minute: only what a preset runs
        rows = [rows[0], rows[3]]
    if args.compile:
        rows.append(("cpu-bf16 + torch.compile", "bf16", True, True))
    if args.openvino:
        # the peer: OpenVINO as its own documentation converts a model, the strongest plain configuration
        rows.append(("OpenVINO as documented: convert_model of the fp32 UNet, static shapes, bf16 hint, LATENCY",
                     "openvino-documented", False, False))
        rows.append(("OpenVINO as convert_model leaves it (dynamic shapes)", "openvino-dynamic", False, False))
        for recipe_name, recipe in _route_recipes():  # genimg's route under each CPU kind's recipe
            rows.append((f"cpu-openvino route, {recipe_name}", f"openvino-route:{recipe_name}", False, False))
        if cpu_has_bf16() and (args.int8 or not args.presets_only):  # the route without bf16 instructions (and NNCF's IR)
            rows.append(("cpu-openvino in fp32 (its route without bf16 instructions)", "openvino-f32", False, False))
    if args.openvino and args.int8:
        rows.append(("cpu-openvino + NNCF INT8 weights (int8_asym)", "openvino-int8-weights", False, False))
        rows.append(("cpu-openvino + NNCF hybrid INT8 (optimum-intel's SD mode)", "openvino-int8-hybrid", False, False))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--family", choices=sorted(SIZES), default="sd")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--openvino", action="store_true", help="add OpenVINO on the same graph (pip install openvino)")
    parser.add_argument("--int8", action="store_true", help="with --openvino: NNCF's INT8 compressions too (pip install nncf)")
    parser.add_argument("--presets-only", action="store_true",
                        help="leave out fp32 + channels_last, plain bf16 and the fp32 route (OpenVINO's own row stays)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--profile", action="store_true", help="also: where a cpu-bf16 step spends its time")
    args = parser.parse_args()
    import torch

    from genimg.device import cpu_has_bf16
    from genimg.openvino_unet import RECIPES, recipe_for_this_cpu
    from genimg.pipeline_setup import apply_preset, torch_dtype
    from genimg.presets import get_preset

    peaks = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    base, latents, context, extra = unet_and_inputs(args.family)
    flops = count_flops(base, latents, context, extra)
    results, reference, irs, profile, bf16_unet = [], None, {}, None, None
    scratch = tempfile.TemporaryDirectory(prefix="genimg-bench-ov-")  # the IRs and compiled graphs, gigabytes: gone at exit
    for name, dtype, channels_last, compiled in configurations(args):
        if dtype.startswith("openvino-route") or dtype == "openvino-f32":  # genimg's own route (the cpu-openvino
            # preset) into a fresh cache, converted from the weights as the preset loads them: bf16 where the
            # CPU has it (or fp32 for the route without bf16 instructions), under each CPU kind's recipe
            in_bf16 = dtype != "openvino-f32" and cpu_has_bf16()
            if in_bf16 and bf16_unet is None:
                bf16_unet = _copy_as(base, torch.bfloat16)
            unet = bf16_unet if in_bf16 else base
            if args.presets_only and in_bf16:  # no later row needs the fp32 UNet: SDXL's 10 GB would not
                base = None                    # leave room for the conversion in 24 GB
            recipe = dict(_route_recipes()).get(dtype.partition(":")[2], RECIPES["fp32"])
            times, final, cache = _genimg_route(unet, latents, context, extra, args.steps, Path(scratch.name), recipe)
            if not in_bf16:  # NNCF starts from an fp32 IR, as optimum-intel exports (its calibration cannot evaluate bf16 group norms)
                irs["int8-weights"] = irs["int8-hybrid"] = cache
            del unet
        elif dtype == "openvino-documented":
            times, final, irs["dynamic"] = _openvino_as_documented(base, latents, context, extra, args.steps,
                                                                   Path(scratch.name), args.family)
        elif dtype.startswith("openvino"):  # the IR genimg just saved: as OpenVINO's own examples compile it (its
            # shapes left dynamic), or compressed by NNCF as optimum-intel does (static shapes, as genimg's route)
            began = time.perf_counter()
            how = dtype.removeprefix("openvino-")
            ir = _PlainOpenVINO(next(irs[how].glob("*.xml")), args.family, how)
            prepared = time.perf_counter() - began
            times, final = denoise(ir, latents, context, extra, args.steps, torch.float32, False)
            times[0] += prepared
            del ir
        else:
            unet = _copy_as(base, torch_dtype(dtype))
            if channels_last or compiled:
                # genimg's own path: the preset's fields applied by apply_preset to the denoiser.
                preset = get_preset("cpu-bf16").with_overrides(dtype=dtype, channels_last=channels_last,
                                                              compile="default" if compiled else "off")
                apply_preset(_OnlyDenoiser(unet), preset)
            times, final = denoise(unet, latents, context, extra, args.steps, torch_dtype(dtype), channels_last)
            reference = final if reference is None else reference
            if args.profile and name.endswith("(the cpu-bf16 preset)"):
                profile = where_time_goes(unet, latents, context, extra)
            if unet is base:
                base.to(memory_format=torch.contiguous_format)
            del unet
        step = statistics.median(times[1:]) if len(times) > 1 else times[0]
        results.append({"configuration": name, "s/step": round(step, 3), "first step s": round(times[0], 2),
                        "GFLOP/s": round(flops / step / 1e9), "of bf16 matmul peak": round(flops / step / 1e9 / peaks["bf16"], 3),
                        "latent rel. error": float((final - reference).norm() / reference.norm())})
        print(f"{name}: {results[-1]['s/step']} s/step", file=sys.stderr, flush=True)  # a long run's progress
    plain = results[0]["s/step"]
    for row in results:
        row["speed-up"] = round(plain / row["s/step"], 2)
    eager = next(r for r in results if r["configuration"].endswith("(the cpu-bf16 preset)"))
    documented = next((r for r in results if r["configuration"].startswith("OpenVINO as documented")), None)
    for row in results:  # a compile or conversion, paid back by steps faster than cpu-bf16's
        if documented:
            row["vs OpenVINO as documented"] = round(documented["s/step"] / row["s/step"], 2)
        if row["configuration"].startswith("cpu-openvino") or "torch.compile" in row["configuration"]:
            saved, overhead = eager["s/step"] - row["s/step"], row["first step s"] - row["s/step"]
            row["payback steps"] = round(overhead / saved) if saved > 0 else None
    summary = {"family": args.family, "size": SIZES[args.family], "steps": args.steps, "TFLOP/step": round(flops / 1e12, 3),
               "matmul GFLOP/s": {k: round(v) for k, v in peaks.items()}, "torch": torch.__version__,
               "threads": torch.get_num_threads(), "results": results}
    if args.profile:
        summary["cpu-bf16 step by operator"] = profile
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    from genimg.device import cpu_kind

    print(f"CPU: {cpu_model()} — kind {cpu_kind()!r} (flags: {', '.join(cpu_flags_shown())}); the route's recipe "
          f"here: {recipe_for_this_cpu().why}")
    print(f"{args.family} {SIZES[args.family]}², batch 2, {flops / 1e12:.2f} TFLOP/step; matmul peak fp32 "
          f"{peaks['fp32']:.0f}, bf16 {peaks['bf16']:.0f} GFLOP/s; {torch.get_num_threads()} threads")
    print("| configuration | s/step | speed-up | vs OpenVINO as documented | of bf16 peak | first step s | latent rel. error | payback steps |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['configuration']} | {r['s/step']} | {r['speed-up']}x | {r.get('vs OpenVINO as documented', '-')} | "
              f"{r['of bf16 matmul peak']:.0%} | {r['first step s']} | {r['latent rel. error']:.4f} | {r.get('payback steps') or ''} |")
    if args.profile:
        print("cpu-bf16 step by operator: " + ", ".join(f"{k} {v['s']} s ({v['share']:.0%})" for k, v in profile.items()))


def cpu_model() -> str:
    for line in open("/proc/cpuinfo", encoding="utf-8", errors="replace"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def cpu_flags_shown() -> list[str]:
    from genimg.device import cpu_flags

    return sorted(cpu_flags() & {"avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8", "amx_tile"})


def _route_recipes():
    """Each distinct recipe of the route, named by the CPU kinds it is chosen for, this CPU's marked."""
    from genimg.openvino_unet import RECIPES, recipe_for_this_cpu

    mine, seen = recipe_for_this_cpu(), {}
    for kind, recipe in RECIPES.items():
        seen.setdefault((recipe.winograd, recipe.f32_graph), []).append(kind)
    out = []
    for (winograd, f32_graph), kinds in seen.items():
        recipe = next(r for r in RECIPES.values() if (r.winograd, r.f32_graph) == (winograd, f32_graph))
        name = (f"{'Winograd' if winograd else 'direct'} 3x3 convs, {'fp32' if f32_graph else 'bf16'} graph "
                f"(the {' and '.join(kinds)} recipe{'; this CPU: genimg default' if recipe == mine else ''})")
        out.append((name, recipe))
    return out


def _openvino_as_documented(base, latents, context, extra, steps: int, scratch: Path, family: str):
    """OpenVINO's own recipe, the strongest plain configuration: ``ov.convert_model`` of the fp32 UNet,
    reshaped to the call's static shapes, compiled for the CPU with the bf16 precision hint (where the CPU
    has bf16) and the LATENCY performance hint (one stream over every core, pinned: OpenVINO's defaults
    for it). Returns the loop's (seconds per step, final latents) and the folder of its saved IR (the
    dynamic-shapes row starts from it); the first step includes the conversion and compile."""
    import types
    import warnings

    import openvino as ov
    import torch

    from genimg.device import cpu_has_bf16

    sdxl = family == "sdxl"

    class Wrapped(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.unet = base

        def forward(self, sample, timestep, encoder_hidden_states, *added):
            kwargs = {"added_cond_kwargs": {"text_embeds": added[0], "time_ids": added[1]}} if sdxl else {}
            return self.unet(sample, timestep, encoder_hidden_states=encoder_hidden_states, return_dict=False, **kwargs)[0]

    began = time.perf_counter()
    example = [torch.cat([latents] * 2), torch.tensor(999.0), context]
    if sdxl:
        example += [extra["added_cond_kwargs"]["text_embeds"], extra["added_cond_kwargs"]["time_ids"]]
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = ov.convert_model(Wrapped().eval(), example_input=tuple(example))
    model.reshape({port: list(x.shape) for port, x in zip(model.inputs, example)})
    folder = Path(tempfile.mkdtemp(dir=scratch))
    ov.save_model(model, folder / "unet.xml", compress_to_fp16=False)
    request = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "bf16" if cpu_has_bf16() else "f32",
                                                     "PERFORMANCE_HINT": "LATENCY"}).create_infer_request()
    del model
    prepared = time.perf_counter() - began

    def unet(sample, t, encoder_hidden_states, added_cond_kwargs=None):
        inputs = [sample, torch.as_tensor(t, dtype=torch.float32).reshape(-1)[0], encoder_hidden_states]
        if sdxl:
            inputs += [added_cond_kwargs["text_embeds"], added_cond_kwargs["time_ids"]]
        out = request.infer([x.float().numpy() for x in inputs])[0]
        return types.SimpleNamespace(sample=torch.from_numpy(out.copy()))

    times, final = denoise(unet, latents, context, extra, steps, torch.float32, False)
    times[0] += prepared
    return times, final, folder


def _genimg_route(unet, latents, context, extra, steps: int, scratch: Path, recipe):
    """The denoising loop through genimg's OpenVINO route (computing in the UNet's own dtype, bf16 or fp32),
    converting into a fresh cache under ``scratch``; returns the loop's (seconds per step, final latents)
    and the cache holding the IR."""
    import torch

    from genimg.openvino_unet import install

    cache = Path(tempfile.mkdtemp(dir=scratch))
    install(unet, cache, recipe=recipe)
    times, final = denoise(unet, latents, context, extra, steps, torch.float32, False)
    del unet.forward
    return times, final, cache


def _copy_as(base, dtype):
    """The UNet in ``dtype`` for one configuration. fp32 runs on ``base`` itself and a bf16 copy is
    built on the meta device and filled with converted tensors: SDXL's fp32 UNet is 10 GB, and a second
    fp32 copy beside it would not fit in 24 GB."""
    import torch

    if dtype == torch.float32:
        return base
    with torch.device("meta"):
        unet = type(base).from_config(base.config)
    unet.load_state_dict({k: v.to(dtype) for k, v in base.state_dict().items()}, assign=True)
    return unet.eval()


class _PlainOpenVINO:
    """An OpenVINO IR of the UNet compiled for the CPU with the precision hint, called as a UNet: with its
    shapes dynamic (``dynamic``), or as saved (static) with its weights compressed to INT8 by NNCF
    (``int8-weights``: every MatMul and convolution's weights, computed in the hint's precision), or
    optimum-intel's hybrid mode for diffusion models (``int8-hybrid``: MatMul weights compressed,
    convolutions fully quantized with activations calibrated on denoising inputs)."""

    def __init__(self, xml: Path, family: str, how: str):
        import openvino as ov

        from genimg.device import cpu_has_bf16

        core = ov.Core()
        model = core.read_model(xml)
        self.sdxl = family == "sdxl"
        if how == "dynamic":  # genimg saves its IR for static shapes: every dimension free again, as convert_model leaves them
            model.reshape({port: [-1] * port.get_partial_shape().rank.get_length() for port in model.inputs})
        else:
            side = SIZES[family] // 8
            shapes = [[2, 4, side, side], [], [2, 77, 2048 if self.sdxl else 768]] + ([[2, 1280], [2, 6]] if self.sdxl else [])
            model = _int8(model, how, shapes)
        precision = "bf16" if cpu_has_bf16() else "f32"
        self.request = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": precision}).create_infer_request()

    def __call__(self, sample, t, encoder_hidden_states, added_cond_kwargs=None):
        import types

        import torch

        inputs = [sample, torch.as_tensor(t, dtype=torch.float32).reshape(-1)[0], encoder_hidden_states]
        if self.sdxl:
            inputs += [added_cond_kwargs["text_embeds"], added_cond_kwargs["time_ids"]]
        out = self.request.infer([x.float().numpy() for x in inputs])[0]
        return types.SimpleNamespace(sample=torch.from_numpy(out.copy()))


def _int8(model, how: str, shapes: list):
    """NNCF's INT8 compression (``pip install nncf``), as optimum-intel applies it to a diffusion UNet."""
    import logging

    import nncf
    import numpy as np
    from diffusers import EulerDiscreteScheduler

    nncf.set_log_level(logging.ERROR)  # its per-layer notes would bury the table

    if how == "int8-weights":
        return nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_ASYM)
    # hybrid: what optimum-intel's OVWeightQuantizationConfig(bits=8, dataset=...) does to a UNet
    model = nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_ASYM,
                                  ignored_scope=nncf.IgnoredScope(types=["Convolution"]))
    compressed = [op.get_friendly_name() for op in model.get_ops() if op.get_type_name() == "MatMul"]
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    scheduler.set_timesteps(8)
    rng = np.random.default_rng(1)
    samples = [[rng.standard_normal(shape, dtype=np.float32) * (3 if i == 0 else 1) if shape else np.float32(t)
                for i, shape in enumerate(shapes)] for t in scheduler.timesteps]
    return nncf.quantize(model, nncf.Dataset(samples), model_type=nncf.ModelType.TRANSFORMER, subset_size=len(samples),
                         ignored_scope=nncf.IgnoredScope(names=compressed, validate=False),
                         advanced_parameters=nncf.AdvancedQuantizationParameters(smooth_quant_alpha=-1))


class _OnlyDenoiser:
    """Just enough of a pipeline for ``apply_preset``: the UNet, nothing to move or slice."""

    def __init__(self, unet):
        self.unet = unet
        self.vae = None

    def to(self, device):
        self.unet.to(device)

    def set_progress_bar_config(self, **_):
        pass


if __name__ == "__main__":
    main()
