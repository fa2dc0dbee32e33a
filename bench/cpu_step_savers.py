"""DeepCache and ToMe on a CPU: seconds per image and what they cost in quality, side by side in one run.

    python bench/cpu_step_savers.py [--steps 20] [--size 512] [--preset cpu-bf16] [--json]

Builds SD1.5 with its published architecture and random weights (genimg.testing.full_size), then makes the
same image (one prompt, one seed, classifier-free guidance, Euler) once per setting with genimg's own
``step_savers`` around the diffusers call, as ``--deepcache N`` / ``--tome R`` run it:

- the denoising loop's seconds (text encoding and the VAE are the same for every setting and left out:
  ``output_type="latent"``);
- the final latents' relative error against the plain run, ``|x - x_plain| / |x_plain|``: with random
  weights no picture is there to look at, but every setting must land where the plain run lands.

Quality on real pictures is the demo model's analyser (``bench/demo_quality.py --presets``, with user
presets that set ``deepcache`` or ``tome``); both are in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

SETTINGS = [("plain", {}), ("deepcache 2", {"deepcache": 2}), ("deepcache 3", {"deepcache": 3}),
            ("deepcache 5", {"deepcache": 5}), ("tome 0.3", {"tome": 0.3}), ("tome 0.5", {"tome": 0.5}),
            ("deepcache 3 + tome 0.5", {"deepcache": 3, "tome": 0.5})]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--preset", default="cpu-bf16")
    parser.add_argument("--only", default=None, help="comma-separated setting names to run (plain always runs)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import torch

    from genimg.pipeline_setup import apply_preset, torch_dtype
    from genimg.presets import get_preset
    from genimg.step_savers import step_savers
    from genimg.testing import full_size

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as work:
        pipe = full_size.build("sd", Path(work))
    base = get_preset(args.preset)
    pipe.to(dtype=torch_dtype(base.dtype))  # as loading in the preset's dtype would
    apply_preset(pipe, base)
    pipe.set_progress_bar_config(disable=True)
    wanted = set(args.only.split(",")) | {"plain"} if args.only else None
    rows, plain = [], None
    for name, overrides in SETTINGS:
        if wanted and name not in wanted:
            continue
        preset = base.with_overrides(**overrides)
        began = time.perf_counter()
        with torch.inference_mode(), step_savers(pipe, preset):
            latents = pipe("a lighthouse on a cliff at dusk", num_inference_steps=args.steps, guidance_scale=7.5,
                           width=args.size, height=args.size, output_type="latent",
                           generator=torch.Generator("cpu").manual_seed(1)).images.float()
        seconds = time.perf_counter() - began
        if plain is None:
            plain = (latents, seconds)
        error = float((latents - plain[0]).norm() / plain[0].norm())
        rows.append({"setting": name, "seconds": round(seconds, 1), "speed-up": round(plain[1] / seconds, 2),
                     "latent error": round(error, 4)})
        if not args.json:
            print(f"{name:24s} {seconds:7.1f} s  x{plain[1] / seconds:4.2f}  latent error {error:.4f}", flush=True)
    if args.json:
        print(json.dumps({"steps": args.steps, "size": args.size, "preset": args.preset, "rows": rows}))


if __name__ == "__main__":
    main()
