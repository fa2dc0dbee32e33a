"""Whole images on the CPU: text encoders + every denoising step + VAE decode, in seconds and peak RSS,
for the CPU presets and the few-step models' settings, beside stable-diffusion.cpp.

    python bench/cpu_images.py                         # every genimg row below
    python bench/cpu_images.py --rows sd15-fp32,lcm-sd15 --cache /tmp/genimg-full-size --json
    python bench/cpu_images.py --rows sd15-bf16,sd15-bf16+deepcache3,sd15-bf16+tome0.5,sd15-bf16+both
    python bench/cpu_images.py --rows sd15-bf16,sd15-openvino,sdcpp-sd15-f16,sdcpp-sd15-q8_0 --sdcpp-python PY
    python bench/cpu_images.py --rows sd15-openvino,optimum-sd15,sd-turbo-openvino,optimum-sd-turbo --optimum-python PY

Each row runs in a fresh process (so peak RSS is that row's) through genimg's own plan/run and pipeline
factory, on the full-size architectures with random weights (genimg.testing.full_size, built once into
--cache): time and memory depend on the shapes, not on the values. A few-step row takes its size, steps,
guidance and scheduler from the alias's entry in genimg/models/aliases.toml and runs them on the alias's
base architecture (sd-turbo's is SD2.1-base); the LoRA itself is left out (loaded and fused with --fuse-lora it costs nothing per
step). Rows named ``+taesd`` decode with a tiny autoencoder (``--vae``; TAESD's architecture, random
weights). Rows named ``-openvino`` run the ``cpu-openvino`` preset in a fresh genimg cache, so their cold
figure includes the UNet's conversion. Rows named ``sdcpp-`` run stable-diffusion.cpp through
stable-diffusion-cpp-python (``pip install stable-diffusion-cpp-python``, which builds it from source) in
the Python ``--sdcpp-python`` names, on the same SD1.5 weights written as one original-layout checkpoint.
Rows named ``optimum-`` run optimum-intel's ``OVStableDiffusionPipeline`` (``pip install "optimum-intel[openvino]"``
in the Python ``--optimum-python`` names: it pins its own transformers) exporting the same folder, with the
settings of the genimg row of the same alias; its export and compile are in its cold figure.
Reported: cold seconds (load + first image), warm seconds per image, seconds per denoising step, and
memory: peak RSS (what ``getrusage`` reports: it counts memory-mapped file pages, such as the model files
while loading and the graph OpenVINO maps from its cache, which the OS can drop and read again) and, on
Linux, peak anonymous memory sampled every half second (what must fit in RAM).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROMPT = "a lighthouse on a cliff at dusk, oil painting"
# row: (alias whose settings it uses, preset, settings that differ from the alias's)
ROWS = {
    "sd15-fp32": ("sd15", "cpu", {"steps": 20}),
    "sd15-bf16": ("sd15", "cpu-bf16", {"steps": 20}),
    "lcm-sd15": ("lcm-sd15", "cpu-bf16", {}),
    "hyper-sd15": ("hyper-sd15", "cpu-bf16", {}),
    "sd-turbo": ("sd-turbo", "cpu-bf16", {}),
    "sdxl-turbo": ("sdxl-turbo", "cpu-bf16", {}),
    "sdxl-lightning": ("sdxl-lightning", "cpu-bf16", {}),
    # The same with a tiny autoencoder (TAESD's architecture, random weights) decoding: --vae taesd / taesdxl.
    "lcm-sd15+taesd": ("lcm-sd15", "cpu-bf16", {"vae": "tiny"}),
    "sdxl-turbo+taesdxl": ("sdxl-turbo", "cpu-bf16", {"vae": "tiny"}),
    # Fewer steps' worth of work (genimg[speed]): DeepCache and ToMe on the 20-step image.
    "sd15-bf16+deepcache3": ("sd15", "cpu-bf16", {"steps": 20, "preset_overrides": {"deepcache": 3}}),
    "sd15-bf16+tome0.5": ("sd15", "cpu-bf16", {"steps": 20, "preset_overrides": {"tome": 0.5}}),
    "sd15-bf16+both": ("sd15", "cpu-bf16", {"steps": 20, "preset_overrides": {"deepcache": 3, "tome": 0.5}}),
    # ... and on the few-step models (DeepCache needs two steps or more: sdxl-turbo's one gets ToMe only).
    "lcm-sd15+deepcache2": ("lcm-sd15", "cpu-bf16", {"preset_overrides": {"deepcache": 2}}),
    "lcm-sd15+tome0.5": ("lcm-sd15", "cpu-bf16", {"preset_overrides": {"tome": 0.5}}),
    "sd-turbo+tome0.5": ("sd-turbo", "cpu-bf16", {"preset_overrides": {"tome": 0.5}}),
    "sdxl-turbo+tome0.5": ("sdxl-turbo", "cpu-bf16", {"preset_overrides": {"tome": 0.5}}),
    "sdxl-lightning+deepcache2": ("sdxl-lightning", "cpu-bf16", {"preset_overrides": {"deepcache": 2}}),
    "sdxl-lightning+tome0.5": ("sdxl-lightning", "cpu-bf16", {"preset_overrides": {"tome": 0.5}}),
    # OpenVINO's UNet (genimg's cpu-openvino preset); cold includes converting into a fresh cache.
    "sd15-openvino": ("sd15", "cpu-openvino", {"steps": 20}),
    "lcm-sd15-openvino": ("lcm-sd15", "cpu-openvino", {}),
    "hyper-sd15-openvino": ("hyper-sd15", "cpu-openvino", {}),
    "sd-turbo-openvino": ("sd-turbo", "cpu-openvino", {}),
    "sdxl-lightning-openvino": ("sdxl-lightning", "cpu-openvino", {}),
}
# The full-size build an alias runs on where its family's is another architecture (genimg.testing.full_size)
ARCHITECTURES = {"sd-turbo": "sd2"}
# The peer: stable-diffusion.cpp (stable-diffusion-cpp-python, in the Python --sdcpp-python names) on the
# same SD1.5 weights written as one original-layout checkpoint, the same image settings as sd15-*.
# row: (weight type it converts to on loading, its flash attention in the UNet)
SDCPP_ROWS = {"sdcpp-sd15-f16": ("f16", False), "sdcpp-sd15-f16+fa": ("f16", True), "sdcpp-sd15-q8_0": ("q8_0", False)}
# The other peer: optimum-intel's OVStableDiffusionPipeline (in the Python --optimum-python names: it pins its
# own transformers) exporting the same folder as its documentation shows — export=True, reshaped to the
# image's static shapes (with guidance: its reshape assumes it), compiled with OpenVINO's defaults for the
# CPU — with the alias's settings of the
# genimg row of the same name. row: the alias
OPTIMUM_ROWS = {"optimum-sd15": "sd15", "optimum-sd-turbo": "sd-turbo"}


def tiny_autoencoder(cache: Path) -> Path:
    """madebyollin's TAESD architecture (diffusers' AutoencoderTiny defaults), random weights, once."""
    folder = cache / "taesd"
    if not (folder / "config.json").is_file():
        from diffusers import AutoencoderTiny

        AutoencoderTiny().save_pretrained(folder, safe_serialization=True)
    return folder


def anonymous_peak(interval: float = 0.5, phase=None) -> dict:
    """Samples this process's anonymous memory (``RssAnon`` in /proc/self/status) every ``interval`` seconds
    from a thread; ``["GB"]`` holds the highest so far in GiB (stays 0 where there is no /proc). Given
    ``phase`` (what the process is doing now, as a name), each name holds its own highest, in the order the
    names were first seen (bench/route_memory.py)."""
    import threading

    peak = {} if phase else {"GB": 0.0}

    def sample():
        while True:
            try:
                with open("/proc/self/status") as status:
                    kb = next(int(line.split()[1]) for line in status if line.startswith("RssAnon:"))
            except (OSError, StopIteration):
                return
            name = phase() if phase else "GB"
            peak[name] = max(peak.get(name, 0.0), kb / 2**20)
            time.sleep(interval)

    threading.Thread(target=sample, daemon=True).start()
    return peak


def one_row(name: str, folder: Path) -> dict:
    """Cold and warm figures of one row, in this process."""
    import resource

    anonymous = anonymous_peak()

    from genimg.factory import PipelineFactory
    from genimg.generation import plan, run
    from genimg.models.resolve import resolve_model
    from genimg.spec import GenerationSpec

    alias, preset, changes = ROWS[name]
    settings = {k: resolve_model(alias).defaults[k] for k in ("width", "height", "steps", "guidance", "scheduler")}
    settings.update(changes)
    if settings.get("vae") == "tiny":
        settings["vae"] = str(tiny_autoencoder(folder.parent))
    spec = GenerationSpec(PROMPT, model=str(folder), seed=1, preset=preset, **settings)
    the_plan, factory, stamps = plan(spec), PipelineFactory(), []

    def progress(event, **_):
        if event == "step":
            stamps.append(time.perf_counter())

    began = time.perf_counter()
    list(run(the_plan, factory, progress))
    cold = time.perf_counter() - began
    stamps.clear()
    began = time.perf_counter()
    list(run(the_plan, factory, progress))
    warm = time.perf_counter() - began
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    settings.pop("vae", None)
    return {"row": name, "preset": preset, **settings, "cold s": round(cold, 1), "s/image": round(warm, 2),
            "s/step": round(statistics.median(gaps), 2) if gaps else None,
            "peak RSS GB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
            "peak anon GB": round(anonymous["GB"], 2)}


def one_sdcpp_row(name: str, checkpoint: Path) -> dict:
    """Cold figures of a stable-diffusion.cpp row, in this process (its Python: stdlib and
    stable_diffusion_cpp only). 20 steps of DPM++ 2M Karras at 512², guidance 7.5, as the sd15 rows, on
    as many threads as the machine has cores. One image: sd.cpp converts the weights while loading and
    compiles nothing, so a second image costs what the first did after loading."""
    import os
    import resource

    from stable_diffusion_cpp import StableDiffusion

    wtype, flash = SDCPP_ROWS[name]
    stamps = []
    began = time.perf_counter()
    model = StableDiffusion(model_path=str(checkpoint), wtype=wtype, diffusion_flash_attn=flash,
                            n_threads=os.cpu_count(), verbose=False)
    start = time.perf_counter()
    model.generate_image(PROMPT, width=512, height=512, sample_steps=20, cfg_scale=7.5, sample_method="dpm++2m",
                         scheduler="karras", seed=1, progress_callback=lambda *_: stamps.append(time.perf_counter()))
    done = time.perf_counter()
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    return {"row": name, "preset": f"sd.cpp {wtype}" + (" flash-attn" if flash else ""), "width": 512, "height": 512,
            "steps": 20, "guidance": 7.5, "scheduler": "DPM++ 2M Karras", "cold s": round(done - began, 1),
            "s/image": round(done - start, 2), "s/step": round(statistics.median(gaps), 2) if gaps else None,
            "peak RSS GB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}


def one_optimum_row(name: str, folder: Path, settings: dict) -> dict:
    """Cold and warm figures of optimum-intel's pipeline on ``folder``, in this process (its Python: optimum-intel,
    diffusers, OpenVINO): the export and compile are in the cold figure, as the route's conversion is in its."""
    import resource

    import diffusers
    from optimum.intel import OVStableDiffusionPipeline

    stamps = []
    began = time.perf_counter()
    pipe = OVStableDiffusionPipeline.from_pretrained(str(folder), export=True, compile=False)
    if settings["guidance"] > 1:  # optimum's static reshape assumes guidance's doubled UNet batch: without
        # guidance (sd-turbo) the shapes stay dynamic, the only way its pipeline runs
        pipe.reshape(batch_size=1, height=settings["height"], width=settings["width"], num_images_per_prompt=1)
    pipe.compile()
    scheduler_class, options = SCHEDULERS[settings["scheduler"]]
    pipe.scheduler = getattr(diffusers, scheduler_class).from_config(pipe.scheduler.config, **options)

    def image():
        def step(pipeline, index, timestep, kwargs):
            stamps.append(time.perf_counter())
            return kwargs

        pipe(PROMPT, num_inference_steps=settings["steps"], guidance_scale=settings["guidance"],
             height=settings["height"], width=settings["width"], callback_on_step_end=step)

    image()
    cold = time.perf_counter() - began
    stamps.clear()
    began = time.perf_counter()
    image()
    warm = time.perf_counter() - began
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    return {"row": name, "preset": "optimum-intel", **settings, "cold s": round(cold, 1), "s/image": round(warm, 2),
            "s/step": round(statistics.median(gaps), 2) if gaps else None,
            "peak RSS GB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}


# The schedulers the optimum rows set, by genimg's names for them (genimg/schedulers.toml): class, options
SCHEDULERS = {"DPM++ 2M Karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
              "Euler a": ("EulerAncestralDiscreteScheduler", {}), "Euler": ("EulerDiscreteScheduler", {})}


def sd15_checkpoint(folder: Path) -> Path:
    """The full-size SD1.5 folder as one original-layout fp16 .safetensors: what stable-diffusion.cpp reads."""
    path = folder.parent / "sd15-ldm.safetensors"
    if not path.is_file():
        import torch
        from diffusers import StableDiffusionPipeline

        from genimg.testing.single_file import save_sd_single_file

        pipe = StableDiffusionPipeline.from_pretrained(folder, dtype=torch.float16, safety_checker=None)
        save_sd_single_file(pipe, path.with_name(f".{path.name}.tmp"))
        path.with_name(f".{path.name}.tmp").replace(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated, of: {', '.join([*ROWS, *SDCPP_ROWS])}")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "genimg-full-size")
    parser.add_argument("--sdcpp-python", type=Path, help="a Python with stable-diffusion-cpp-python installed (sdcpp-* rows)")
    parser.add_argument("--optimum-python", type=Path, help="a Python with optimum-intel[openvino] installed (optimum-* rows)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # the child process: one row, JSON out
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--settings", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one in SDCPP_ROWS:
        print(json.dumps(one_sdcpp_row(args.one, args.folder)))
        return
    if args.one in OPTIMUM_ROWS:
        print(json.dumps(one_optimum_row(args.one, args.folder, json.loads(args.settings))))
        return
    if args.one:
        from diffusers.utils import logging

        logging.set_verbosity_error()
        print(json.dumps(one_row(args.one, args.folder)))
        return
    names = [n for n in args.rows.split(",") if n]
    every = [*ROWS, *SDCPP_ROWS, *OPTIMUM_ROWS]
    unknown = [n for n in names if n not in every]
    if unknown:
        parser.error(f"unknown row {unknown[0]!r}; rows: {', '.join(every)}")
    if any(n in SDCPP_ROWS for n in names) and not args.sdcpp_python:
        parser.error("the sdcpp-* rows need --sdcpp-python PATH: a Python with stable-diffusion-cpp-python installed")
    if any(n in OPTIMUM_ROWS for n in names) and not args.optimum_python:
        parser.error("the optimum-* rows need --optimum-python PATH: a Python with optimum-intel[openvino] installed")
    import os

    from genimg.models.resolve import resolve_model
    from genimg.testing.full_size import save_full_size

    rows = []
    for name in names:
        alias = ROWS[name][0] if name in ROWS else OPTIMUM_ROWS.get(name, "sd15")
        family = ARCHITECTURES.get(alias) or resolve_model(alias).family
        folder = save_full_size(family, args.cache / family)
        python, target, extra = sys.executable, folder, []
        if name in SDCPP_ROWS:
            python, target = args.sdcpp_python, sd15_checkpoint(folder)
        elif name in OPTIMUM_ROWS:  # the genimg row's settings: the alias's, 20 steps for sd15
            settings = {k: resolve_model(alias).defaults[k] for k in ("width", "height", "steps", "guidance", "scheduler")}
            settings.update({"steps": 20} if alias == "sd15" else {})
            python, extra = args.optimum_python, ["--settings", json.dumps(settings)]
        with tempfile.TemporaryDirectory(prefix="genimg-bench-cache-") as fresh:
            # an OpenVINO row converts into a fresh cache (and optimum exports into a fresh folder): its cold
            # figure is a first run's
            env = {**os.environ, "GENIMG_CACHE_DIR": fresh, "TMPDIR": fresh} if "openvino" in name or name in OPTIMUM_ROWS else None
            child = subprocess.run([str(python), __file__, "--one", name, "--folder", str(target), *extra],
                                   capture_output=True, text=True, env=env)
        if child.returncode:  # one row failing (a crash, memory) must not lose the rows measured before it
            print(f"{name}: failed (exit {child.returncode}):\n{child.stderr[-2000:]}", file=sys.stderr)
            rows.append({"row": name, "failed": f"exit {child.returncode}"})
            continue
        rows.append(json.loads(child.stdout.strip().splitlines()[-1]))
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print("| row | preset | size | steps | guidance | scheduler | cold s | s/image | s/step | peak RSS GB | peak anon GB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "failed" in r:
            print(f"| {r['row']} | {r['failed']} |")
            continue
        print(f"| {r['row']} | {r['preset']} | {r['width']}x{r['height']} | {r['steps']} | {r['guidance']:g} | "
              f"{r['scheduler']} | {r['cold s']} | {r['s/image']} | {r['s/step']} | {r['peak RSS GB']} | "
              f"{r.get('peak anon GB', '-')} |")


if __name__ == "__main__":
    main()
