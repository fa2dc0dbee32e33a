"""The GPU table: every family × preset, measured through genimg's own path, beside plain diffusers.

    python bench/gpu.py                                   # on a CUDA machine: full-size SD1.5, SDXL, FLUX.1
    python bench/gpu.py --families flux --presets 8gb,24gb --steps 28
    python bench/gpu.py --tiny --json                     # anywhere: the tiny models, to know it works

Full size means the published architectures with random weights (genimg.testing.full_size), built
once into --cache (SD1.5 2 GB, SDXL 7 GB, FLUX.1-dev 33 GB on disk; FLUX needs ~40 GB of RAM to build):
time and memory depend on the shapes, not on the values. For each family and preset it reports

- cold seconds: load + the first image (torch.compile's compile time lands here);
- warm seconds per image and per denoising step (the median gap between steps);
- peak VRAM (torch.cuda.max_memory_allocated), the process capped at the preset's tier with
  torch.cuda.set_per_process_memory_fraction — a preset that does not fit its tier says OOM;
- the fraction of the GPU's dense bf16 peak (measured with a matmul) that the denoiser reaches;
- plain diffusers (from_pretrained in the preset's dtype, .to(device), nothing else) as the first row.

Without CUDA (the test suite runs it with --tiny) every preset runs on the CPU with what cannot run
there turned off (quantization, offload, compile; fp16 becomes bf16), so the harness is known to work when a GPU is at hand.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

GPU_PRESETS = ("6gb", "8gb", "12gb", "16gb", "24gb", "80gb")
# The sizes and step counts the published figures use.
FULL = {"sd": (512, 20), "sdxl": (1024, 30), "flux": (1024, 28)}
TINY = (64, 3)
PROMPT = "a lighthouse on a cliff at dusk, oil painting"


def matmul_peak(device: str, n: int = 8192, reps: int = 10) -> float:
    """GFLOP/s of a bf16 n×n matmul on ``device``: the dense peak this GPU reaches in practice."""
    import torch

    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    a @ b
    _sync(device)
    began = time.perf_counter()
    for _ in range(reps):
        a @ b
    _sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - began) / 1e9


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def denoiser_flops(pipe, call) -> float:
    """FLOPs of one denoiser call as the pipeline makes it (inputs captured by a hook, then counted)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    denoiser = getattr(pipe, "unet", None) or pipe.transformer
    captured = {}
    handle = denoiser.register_forward_pre_hook(
        lambda module, args, kwargs: captured.setdefault("call", (args, kwargs)), with_kwargs=True)
    try:
        call()
    finally:
        handle.remove()
    args, kwargs = captured["call"]
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        denoiser(*args, **kwargs)
    return counter.get_total_flops()


def run_genimg(folder: Path, family: str, preset_name: str, size: int, steps: int, device: str, images: int) -> dict:
    """Cold and warm figures of ``preset_name`` through genimg's plan/run and pipeline factory."""
    from genimg.factory import PipelineFactory
    from genimg.generation import plan, run
    from genimg.spec import GenerationSpec

    from genimg.presets import get_preset

    overrides = {}
    if not device.startswith("cuda"):
        half = get_preset(preset_name).for_family(family).dtype == "fp16"
        overrides = {"device": device, "quantize": "none", "compile": "off", "offload": "none",
                     **({"dtype": "bf16"} if half else {})}
    spec = GenerationSpec(PROMPT, model=str(folder), width=size, height=size, steps=steps, seed=1,
                          preset=preset_name, preset_overrides=overrides)
    the_plan = plan(spec)
    factory = PipelineFactory()
    stamps: list[float] = []

    def progress(event, **info):
        if event == "step":
            stamps.append(time.perf_counter())

    began = time.perf_counter()
    list(run(the_plan, factory, progress))
    cold = time.perf_counter() - began
    warm, step_gaps = [], []
    for _ in range(images):
        stamps.clear()
        began = time.perf_counter()
        list(run(the_plan, factory, progress))
        warm.append(time.perf_counter() - began)
        step_gaps += [b - a for a, b in zip(stamps, stamps[1:])]
    pipe, _ = factory.get(the_plan.ref, the_plan.preset)
    flops = denoiser_flops(pipe, lambda: list(run(the_plan, factory)))
    factory.release()
    return {"cold s": cold, "s/image": statistics.median(warm),
            "s/step": statistics.median(step_gaps) if step_gaps else None, "flops/step": flops,
            "settings": the_plan.preset.settings()}


def run_plain(folder: Path, family: str, dtype: str, size: int, steps: int, device: str, images: int) -> dict:
    """Plain diffusers, as its docs start: from_pretrained in ``dtype``, ``.to(device)``, call."""
    import torch
    from diffusers import DiffusionPipeline

    from genimg.pipeline_setup import torch_dtype

    began = time.perf_counter()
    pipe = DiffusionPipeline.from_pretrained(folder, dtype=torch_dtype(dtype)).to(device)
    pipe.set_progress_bar_config(disable=True)
    stamps: list[float] = []

    def call():
        return pipe(PROMPT, width=size, height=size, num_inference_steps=steps,
                    generator=torch.Generator("cpu").manual_seed(1),
                    callback_on_step_end=lambda p, i, t, kw: stamps.append(time.perf_counter()) or kw)

    call()
    _sync(device)
    cold = time.perf_counter() - began
    warm, gaps = [], []
    for _ in range(images):
        stamps.clear()
        began = time.perf_counter()
        call()
        _sync(device)
        warm.append(time.perf_counter() - began)
        gaps += [b - a for a, b in zip(stamps, stamps[1:])]
    flops = denoiser_flops(pipe, call)
    return {"cold s": cold, "s/image": statistics.median(warm), "s/step": statistics.median(gaps) if gaps else None,
            "flops/step": flops, "settings": {"dtype": dtype, "device": device}}


def measure(folder: Path, family: str, presets, size: int, steps: int, images: int, device: str, peak: float) -> list[dict]:
    import torch

    from genimg.errors import RunFailure
    from genimg.presets import get_preset

    cuda = device.startswith("cuda")
    total = torch.cuda.get_device_properties(0).total_memory / 2**30 if cuda else 0
    rows = []
    plain_dtype = "bf16" if family == "flux" else ("fp16" if cuda else "fp32")
    for name in ("plain diffusers", *presets):
        vram = get_preset(name).vram_gb if name != "plain diffusers" else 0
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            torch.cuda.set_per_process_memory_fraction(min(1.0, vram / total) if vram else 1.0)
        try:
            if name == "plain diffusers":
                row = run_plain(folder, family, plain_dtype, size, steps, device, images)
            else:
                row = run_genimg(folder, family, name, size, steps, device, images)
            row["peak VRAM GB"] = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
        except (torch.OutOfMemoryError, RunFailure) as e:  # genimg reports OOM as a RunFailure
            if isinstance(e, RunFailure) and "memory" not in str(e):
                raise
            row = {"error": f"OOM under a {vram:g} GB cap"}
        row.update(family=family, preset=name, size=size, steps=steps)
        if row.get("s/step"):
            row["of bf16 peak"] = row["flops/step"] / row["s/step"] / 1e9 / peak
        rows.append(row)
    if cuda:
        torch.cuda.set_per_process_memory_fraction(1.0)
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--families", default="sd,sdxl,flux")
    parser.add_argument("--presets", default=",".join(GPU_PRESETS))
    parser.add_argument("--tiny", action="store_true", help="the tiny test models (runs anywhere, in seconds)")
    parser.add_argument("--steps", type=int, help="denoising steps (default: 20 SD1.5, 30 SDXL, 28 FLUX; 3 tiny)")
    parser.add_argument("--images", type=int, default=2, help="warm images measured after the cold one")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "genimg-full-size")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    import torch
    from diffusers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    families = args.families.split(",")
    presets = [p for p in args.presets.split(",") if p]
    peak = matmul_peak(device, n=1024 if args.tiny else 8192)
    rows = []
    with tempfile.TemporaryDirectory(prefix="genimg-gpu-bench-") as scratch:  # the tiny models: gone at exit
        for family in families:
            if args.tiny:
                from genimg.testing.tiny_models import save_tiny

                folder, (size, steps) = save_tiny(family, Path(scratch) / family), TINY
            else:
                from genimg.testing.full_size import save_full_size

                folder, (size, steps) = save_full_size(family, args.cache / family), FULL[family]
            rows += measure(folder, family, presets, size, args.steps or steps, args.images, device, peak)
    gpu = torch.cuda.get_device_name(0) if device == "cuda" else "CPU (no CUDA: GPU presets run on the CPU)"
    if args.json:
        print(json.dumps({"device": gpu, "bf16 GFLOP/s": peak, "torch": torch.__version__, "rows": rows}, default=str))
        return
    print(f"{gpu}; bf16 matmul {peak / 1000:.1f} TFLOP/s; torch {torch.__version__}")
    print("| family | preset | size, steps | cold s | s/image | s/step | peak VRAM GB | of bf16 peak |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['family']} | {r['preset']} | {r['size']}², {r['steps']} | {r['error']} |||||")
            continue
        vram = f"{r['peak VRAM GB']:.1f}" if r.get("peak VRAM GB") is not None else "-"
        share = f"{r['of bf16 peak']:.0%}" if r.get("of bf16 peak") else "-"
        print(f"| {r['family']} | {r['preset']} | {r['size']}², {r['steps']} | {r['cold s']:.1f} | {r['s/image']:.2f} | "
              f"{r['s/step']:.3f} | {vram} | {share} |")


if __name__ == "__main__":
    main()
