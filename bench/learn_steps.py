"""Quality against sampling steps: the course's flow DiT (Euler), its reflow student (Euler, unguided) and
the LDM (DDIM) at 1, 2, 4, 8, 16 and 50 steps, in one table and one picture.

    python bench/learn_steps.py --flow RUN [--student RUN] [--ldm RUN] [-o steps.png]

Each row: the share of 100 guided samples for "a <digit>" (ten of each) the course's digit classifier reads as
the digit asked for, the FID of 200 more in the course's digit features, and the time to sample the 100.
The picture: a row of "a 0" … "a 9" (seed 0) for each run and step count, top to bottom as the table.
Train the runs first: `genimg learn flow -o F`, `genimg learn distill F -o S`, `genimg learn ldm -o L`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch


def main() -> None:
    from genimg.learn.ldm import prompt_for
    from genimg.learn.pictures import save_grid
    from genimg.learn.train_flow import STEPS, load_flow, load_student, steps_table
    from genimg.learn.train_ldm import load_ldm

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flow", type=Path, required=True)
    parser.add_argument("--student", type=Path)
    parser.add_argument("--ldm", type=Path)
    parser.add_argument("-o", "--output", type=Path, default=Path("steps.png"))
    args = parser.parse_args()
    runs = {name: run for name, run in (("flow", args.flow), ("student", args.student), ("ldm", args.ldm)) if run}
    rows = steps_table(runs)
    print("| model | steps | read as the digit asked for | FID (200) | sampling 100 |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['run']} ({row['kind']}) | {row['steps']} | {row['read as asked']:.1%} | {row['fid']:.2f} "
              f"| {row['seconds for 100']:.2f} s |")
    loaders = {"flow": load_flow, "student": load_student, "ldm": load_ldm}
    prompts = [prompt_for(str(k)) for k in range(10)]
    pictures = []
    for name, run in runs.items():
        model = loaders[name](run)[0]
        for n in STEPS:
            generator = torch.Generator().manual_seed(0)
            if name == "ldm":
                pictures.append(model.sample(prompts, sampler="ddim", steps=n, generator=generator))
            else:
                pictures.append(model.sample(prompts, guidance=3.0 if name == "flow" else 1.0, steps=n,
                                             generator=generator))
    print(save_grid(torch.cat(pictures), args.output, nrow=10))


if __name__ == "__main__":
    main()
