"""Does the demo ControlNet put the shape where the edges say? Measured against no ControlNet.

For N scenes from the shapes grammar: the caption names colour, shape and background but not the
place; the control image is the Canny edge map of the scene's render (`--control canny`). Each
prompt is generated with the ControlNet at weight 1 and at weight 0 (the plain demo model, same
seed), and the analyser finds the shape's centre, shape and colours. "Placed" counts images whose
shape centre lies within 0.1 of the image side of the scene's.

    python bench/demo_controlnet_quality.py [--prompts 100] [--controlnet demo-canny]
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=100)
    parser.add_argument("--controlnet", default="demo-canny")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()

    from genimg.factory import PipelineFactory
    from genimg.generation import generate
    from genimg.demo.analyse import analyse
    from genimg.demo.shapes import random_scene, render
    from genimg.spec import GenerationSpec

    rng = random.Random(args.seed)
    factory = PipelineFactory()
    tmp = Path(tempfile.mkdtemp(prefix="genimg-cn-"))
    rows = {1.0: [], 0.0: []}
    seconds = []
    for i in range(args.prompts):
        scene = random_scene(rng)
        picture = tmp / f"{i}.png"
        render(scene).save(picture)
        prompt = scene.caption(mention_position=False)
        seed = rng.randrange(2**31)
        for scale in rows:
            control = {"type": "canny", "image": str(picture), "model": args.controlnet, "scale": scale}
            spec = GenerationSpec(prompt, model="demo", controls=[control], seed=seed)
            began = time.perf_counter()
            verdict = analyse(generate(spec, factory)[0].image)
            seconds.append(time.perf_counter() - began)
            placed = verdict.centre is not None and max(abs(verdict.centre[0] - scene.cx),
                                                        abs(verdict.centre[1] - scene.cy)) <= 0.1
            rows[scale].append((placed, verdict.shape == scene.shape, verdict.colour == scene.colour,
                                verdict.background == scene.background))
    n = args.prompts
    print(f"{n} scenes, caption without the place, control = Canny edges of the scene, 20 steps")
    print("| ControlNet weight | placed | shape | colour | background |")
    print("|---|---|---|---|---|")
    for scale, results in rows.items():
        shares = [sum(r[k] for r in results) / n for k in range(4)]
        print(f"| {scale:g} | " + " | ".join(f"{s:.1%}" for s in shares) + " |")
    print(f"median {sorted(seconds)[len(seconds) // 2]:.2f} s/image")


if __name__ == "__main__":
    main()
