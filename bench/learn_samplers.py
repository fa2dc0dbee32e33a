"""The course's samplers against the number of steps, on one trained class-conditional DDPM run.

    python bench/learn_samplers.py RUN [--per-class 10] [--steps 5 10 20 50]

For each sampler (DDIM, Euler, DPM-Solver++(2M)) and step count: guided samples (guidance 3, every digit
``--per-class`` times from the same seed), the share the course's digit classifier reads as the digit asked
for, and FID against the 1,797 real digits in its features (genimg.learn.metrics). Prints a Markdown table
(the chapter's figure of quality against steps) with the sampling seconds.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run", type=Path)
    parser.add_argument("--per-class", type=int, default=10)
    parser.add_argument("--steps", type=int, nargs="+", default=[5, 10, 20, 50])
    args = parser.parse_args()
    import torch

    from genimg.learn import datasets
    from genimg.learn.metrics import fid, train_digit_features
    from genimg.learn.sampling import SampleRequest, sample_run

    digits = datasets.load("digits", 16)
    judge = train_digit_features(digits.images, digits.labels)
    count = 10 * args.per_class
    wanted = torch.arange(count) % 10  # sample_run draws every class in turn
    print("| sampler | " + " | ".join(f"{n} steps" for n in args.steps) + " |")
    print("|---|" + "---|" * len(args.steps))
    for sampler in ("ddim", "euler", "dpmpp-2m"):
        cells = []
        for steps in args.steps:
            began = time.perf_counter()
            images, _ = sample_run(args.run, SampleRequest(count=count, sampler=sampler, steps=steps, gif=False))
            seconds = time.perf_counter() - began
            with torch.no_grad():
                asked = float((judge(images).argmax(1) == wanted).float().mean())
            cells.append(f"{asked:.1%}, FID {fid(judge, digits.images, images):.1f}, {seconds:.1f} s")
        print(f"| {sampler} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
