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
    parser.add_argument("--presets", default="auto", help="comma-separated presets, run side by side")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from genimg.demo.analyse import analyse
    from genimg.demo.shapes import prompt_scene
    from genimg.factory import PipelineFactory
    from genimg.generation import generate
    from genimg.spec import GenerationSpec

    presets = args.presets.split(",")
    rng = random.Random(args.seed)
    factories = {preset: PipelineFactory() for preset in presets}  # each keeps its own model loaded
    runs = {preset: {"judged": [], "seconds": [], "misses": []} for preset in presets}
    for _ in range(args.prompts):
        scene = prompt_scene(rng)
        prompt, seed = scene.caption(), rng.randrange(2**31)
        for preset in presets:
            spec = GenerationSpec(prompt, model=args.model, steps=args.steps, guidance=args.cfg,
                                  scheduler=args.scheduler, seed=seed, preset=preset)
            began = time.perf_counter()
            image = generate(spec, factories[preset])[0]
            runs[preset]["seconds"].append(time.perf_counter() - began)
            verdict = analyse(image.image)
            runs[preset]["judged"].append((scene, verdict))
            if (verdict.background, verdict.colour, verdict.shape) != (scene.background, scene.colour, scene.shape):
                runs[preset]["misses"].append({"prompt": prompt, "seed": seed, "got": verdict.__dict__})
            runs[preset]["settings"] = image.spec.to_dict() | {"prompt": "<varies>", "seed": "<varies>"}
    results = {preset: _scores(run) for preset, run in runs.items()}
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for preset, result in results.items():
        control = result["control_next_prompt"]
        print(f"{preset}: {result['prompts']} prompts: background {result['background']:.1%}, colour "
              f"{result['colour']:.1%}, shape {result['shape']:.1%}; median {result['median_seconds_per_image']:.2f} s/image")
        print(f"  control (verdicts scored against the next prompt): colour {control['colour']:.1%}, "
              f"shape {control['shape']:.1%}")
        for miss in result["misses"][:10]:
            print("  miss:", miss)


def _scores(run: dict) -> dict:
    judged, seconds = run["judged"], run["seconds"]
    n = len(judged)
    hits = {key: sum(getattr(v, key) == getattr(scene, key) for scene, v in judged) / n
            for key in ("background", "colour", "shape")}
    # What agreement by chance looks like: the same verdicts against the next prompt's words.
    control = {key: sum(getattr(v, key) == getattr(judged[(i + 1) % n][0], key) for i, (_, v) in enumerate(judged)) / n
               for key in ("colour", "shape")}
    return {"prompts": n, **hits, "control_next_prompt": control,
            "median_seconds_per_image": sorted(seconds)[n // 2], "settings": run["settings"],
            "misses": run["misses"][:20]}


if __name__ == "__main__":
    main()
