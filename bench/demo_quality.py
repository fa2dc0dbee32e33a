"""Does the demo model draw what the prompt says? Colour, shape and background, measured.

Draws N prompts from the shapes grammar with random seeds, generates each at 64x64, and asks the
analyser (genimg.demo.analyse) for the background colour, the shape's colour and its shape.
As a control, the same verdicts are also scored against the *next* prompt's words: what agreement
by chance looks like (about 1 in 4 for shapes, 1 in 7 for colours).

    python bench/demo_quality.py [--model demo] [--prompts 200] [--steps 20] [--cfg 5]
"""

from __future__ import annotations

import argparse
import json
import random
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="demo")
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--cfg", type=float, default=None)
    parser.add_argument("--scheduler", default=None)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from genimg.factory import PipelineFactory
    from genimg.generation import generate
    from genimg.demo.analyse import analyse
    from genimg.demo.shapes import prompt_scene
    from genimg.spec import GenerationSpec

    rng = random.Random(args.seed)
    factory = PipelineFactory()
    hits = {"background": 0, "colour": 0, "shape": 0}
    misses = []
    seconds = []
    judged = []  # (scene, verdict)
    for i in range(args.prompts):
        scene = prompt_scene(rng)
        prompt = scene.caption()
        spec = GenerationSpec(prompt, model=args.model, steps=args.steps, guidance=args.cfg, scheduler=args.scheduler,
                              seed=rng.randrange(2**31))
        began = time.perf_counter()
        image = generate(spec, factory)[0]
        seconds.append(time.perf_counter() - began)
        verdict = analyse(image.image)
        judged.append((scene, verdict))
        ok = {"background": verdict.background == scene.background, "colour": verdict.colour == scene.colour,
              "shape": verdict.shape == scene.shape}
        for key, good in ok.items():
            hits[key] += good
        if not all(ok.values()):
            misses.append({"prompt": prompt, "seed": spec.seed, "got": verdict.__dict__})
    n = args.prompts
    control = {key: sum(getattr(v, key) == getattr(judged[(i + 1) % n][0], key) for i, (_, v) in enumerate(judged)) / n
               for key in ("colour", "shape")}
    result = {"prompts": n, "background": hits["background"] / n, "colour": hits["colour"] / n,
              "shape": hits["shape"] / n, "control_next_prompt": control,
              "median_seconds_per_image": sorted(seconds)[n // 2],
              "settings": image.spec.to_dict() | {"prompt": "<varies>", "seed": "<varies>"}}
    if args.json:
        print(json.dumps(result | {"misses": misses[:20]}, indent=2))
    else:
        print(f"{n} prompts: background {result['background']:.1%}, colour {result['colour']:.1%}, "
              f"shape {result['shape']:.1%}; median {result['median_seconds_per_image']:.2f} s/image")
        print(f"  control (verdicts scored against the next prompt): colour {control['colour']:.1%}, "
              f"shape {control['shape']:.1%}")
        for miss in misses[:10]:
            print("  miss:", miss)


if __name__ == "__main__":
    main()
