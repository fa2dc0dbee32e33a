"""20 prompts with one `genimg batch` against 20 separate `genimg txt2img` runs, same tiny model.

    python bench/batch_speed.py [--prompts 20] [--steps 20] [--model DIR] [--batch-sizes 1 4]

Target: batch at least 10x faster (it loads the model once and imports the stack once). With
--batch-size above 1, rows that differ only in their prompt also share each forward pass.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=20)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--model")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4])
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="genimg-bench-"))
    from genimg.testing.tiny_models import model_or_tiny

    model = model_or_tiny(args.model, tmp)
    prompts = [f"a picture number {i}" for i in range(args.prompts)]
    (tmp / "prompts.txt").write_text("\n".join(prompts) + "\n")
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    common = ["--model", model, "-W", "64", "-H", "64", "--steps", str(args.steps), "--quiet"]
    batch = {}
    for size in args.batch_sizes:
        began = time.perf_counter()
        subprocess.run([sys.executable, "-m", "genimg", "batch", str(tmp / "prompts.txt"), *common, "--seed", "1",
                        "--batch-size", str(size), "-o", str(tmp / f"batch-{size}")], check=True, env=env, capture_output=True)
        batch[size] = time.perf_counter() - began
    began = time.perf_counter()
    for i, prompt in enumerate(prompts):
        subprocess.run([sys.executable, "-m", "genimg", "txt2img", prompt, *common, "--seed", str(i),
                        "-o", str(tmp / "separate" / f"{i}.png")], check=True, env=env, capture_output=True)
    separate = time.perf_counter() - began
    print(f"{args.prompts} prompts, tiny SD1.5 64x64, {args.steps} steps")
    print("| run | seconds | per image |")
    print("|---|---|---|")
    print(f"| {args.prompts} x `genimg txt2img` | {separate:.1f} | {separate / args.prompts:.2f} |")
    for size, seconds in batch.items():
        print(f"| one `genimg batch --batch-size {size}` | {seconds:.1f} | {seconds / args.prompts:.2f} |")
    print("speed-up: " + ", ".join(f"{separate / s:.1f}x (batch size {size})" for size, s in batch.items()))


if __name__ == "__main__":
    main()
