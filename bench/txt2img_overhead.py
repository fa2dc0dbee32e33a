"""`genimg txt2img` against a plain diffusers script doing the same load and generation.

Both run as fresh processes on the same tiny SD1.5 model (built offline), interleaved, and the
medians are compared: the ratio is genimg's whole overhead (CLI, resolution, presets, metadata,
atomic write). Target: at most 1.15x.

    python bench/txt2img_overhead.py [--runs 5] [--steps 20] [--size 64]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from timing import print_timings

PLAIN = """
import sys, torch
from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline
model, steps, size, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
pipe = StableDiffusionPipeline.from_pretrained(model, dtype=torch.float32, safety_checker=None,
                                               requires_safety_checker=False, use_safetensors=True)
pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config, use_karras_sigmas=True)
pipe.set_progress_bar_config(disable=True)
image = pipe("a red circle on a blue background", width=size, height=size, num_inference_steps=steps,
             guidance_scale=7.5, generator=torch.Generator("cpu").manual_seed(1)).images[0]
image.save(out)
"""


def timed(cmd: list[str], env: dict) -> float:
    began = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--model", help="a diffusers SD folder (default: build the tiny test model)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="genimg-bench-"))
    from genimg.testing.tiny_models import model_or_tiny

    model = model_or_tiny(args.model, tmp)
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    plain_script = tmp / "plain.py"
    plain_script.write_text(PLAIN)
    commands = {
        "plain diffusers script": lambda i: [sys.executable, str(plain_script), model, str(args.steps), str(args.size),
                                             str(tmp / f"plain-{i}.png")],
        "genimg txt2img": lambda i: [sys.executable, "-m", "genimg", "txt2img", "a red circle on a blue background",
                                     "--model", model, "-W", str(args.size), "-H", str(args.size), "--steps",
                                     str(args.steps), "--seed", "1", "-o", str(tmp / f"genimg-{i}.png"), "--quiet",
                                     "--preset", "cpu"],  # fp32, as the plain script runs
    }
    for make in commands.values():
        timed(make("warm"), env)
    times = {name: [] for name in commands}
    for i in range(args.runs):
        for name, make in commands.items():
            times[name].append(timed(make(i), env))
    print(f"tiny SD1.5, {args.size}x{args.size}, {args.steps} steps, {args.runs} runs each, interleaved")
    print_timings(times, "plain diffusers script", "ratio", ratio_digits=3)


if __name__ == "__main__":
    main()
