"""The built-in upscaler against plain resampling, its speed, and tiling's cost and error.

Quality: held-out photographs (never seen in training) and fresh shapes, each reduced 4x with
bicubic, then enlarged 4x by the upscaler, Lanczos and bicubic; PSNR and SSIM against the original.
Speed: seconds per output megapixel, tiled and whole. Memory: peak RSS of a 1024² -> 4096² upscale
in a fresh process, tiled and whole. Tiling error: the largest pixel difference between tiled and
whole outputs, away from the tiles' overlaps and inside them.

    python bench/upscale_quality.py [--model demo-upscaler] [--crop 192] [--skip-memory]
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import time

import numpy as np

MEMORY = """
import resource, sys, numpy as np
from PIL import Image
from genimg.upscale.models import resolve_upscaler
from genimg.upscale.upscalers import load_upscaler
from genimg.upscale.run import upscale_image
tile = int(sys.argv[2])
upscaler = load_upscaler(resolve_upscaler(sys.argv[1]), tile=tile)
image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (1024, 1024, 3), dtype=np.uint8))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = upscale_image(upscaler, image, 4)
print(out.size[0], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, before / 1024)
"""


def psnr(a, b) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255**2 / mse))


def ssim(a, b) -> float:
    from skimage.metrics import structural_similarity

    return float(structural_similarity(a, b, channel_axis=2, data_range=255))


def main() -> None:
    from PIL import Image

    from genimg.demo.upscaler import HELD_OUT, degrade, load_photo
    from genimg.demo.shapes import random_scene, render
    from genimg.upscale.models import resolve_upscaler
    from genimg.upscale.run import upscale_image
    from genimg.upscale.upscalers import load_upscaler

    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="demo-upscaler")
    parser.add_argument("--crop", type=int, default=192)
    parser.add_argument("--shapes", type=int, default=20)
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    whole = load_upscaler(resolve_upscaler(args.model), tile=0)

    photos = []
    for name in HELD_OUT:
        photo = load_photo(name)
        for x, y in ((0.25, 0.25), (0.5, 0.5), (0.1, 0.6)):
            left, top = int((photo.width - args.crop) * x), int((photo.height - args.crop) * y)
            photos.append(photo.crop((left, top, left + args.crop, top + args.crop)))
    rng = random.Random(2024)
    shapes = [render(random_scene(rng), side=args.crop) for _ in range(args.shapes)]
    print(f"x4 from bicubic-reduced inputs, {args.model}; held-out photos: {', '.join(HELD_OUT)} "
          f"({len(photos)} crops of {args.crop}²), {len(shapes)} fresh shapes")
    print(f"{'set':8s} {'method':14s} {'PSNR dB':>8s} {'SSIM':>6s}")
    for label, group in (("photos", photos), ("shapes", shapes)):
        scores = {"upscaler": [], "lanczos": [], "bicubic": []}
        for truth in group:
            small = degrade(truth, 4)
            truth = np.asarray(truth)
            outs = {"upscaler": upscale_image(whole, small, 4), "lanczos": small.resize((args.crop,) * 2, Image.LANCZOS),
                    "bicubic": small.resize((args.crop,) * 2, Image.BICUBIC)}
            for method, out in outs.items():
                out = np.asarray(out)
                scores[method].append((psnr(out, truth), ssim(out, truth)))
        for method, values in scores.items():
            p, s = np.mean(values, axis=0)
            print(f"{label:8s} {method:14s} {p:8.2f} {s:6.3f}")

    import torch

    from genimg.upscale.tiling import tiled

    image = Image.fromarray(np.random.default_rng(1).integers(0, 255, (512, 512, 3), dtype=np.uint8))
    for tile in (0, 256, 128):
        upscaler = load_upscaler(resolve_upscaler(args.model), tile=tile)
        began = time.perf_counter()
        upscale_image(upscaler, image, 4)
        seconds = time.perf_counter() - began
        print(f"speed, 512² -> 2048², tile {tile or 'none':>4}: {seconds / (2048 * 2048 / 1e6):.3f} s per output MP")

    model = whole.model
    x = torch.from_numpy(np.asarray(photos[0].resize((256, 256)), dtype=np.float32) / 255).permute(2, 0, 1)[None]
    with torch.inference_mode():
        reference = model(x)
        for tile, overlap in ((128, 32), (96, 64)):
            out = tiled(x, model, 4, tile, overlap)
            diff = ((out - reference).abs() * 255)[0].amax(0)
            seam = torch.zeros_like(diff, dtype=torch.bool)
            from genimg.upscale.tiling import positions

            for start in positions(256, tile, overlap)[1:]:
                seam[:, start * 4:(start + overlap) * 4] = True
                seam[start * 4:(start + overlap) * 4, :] = True
            print(f"tiled {tile}/{overlap} vs whole: max |diff| {diff[~seam].max():.2f} levels away from overlaps, "
                  f"{diff[seam].max():.2f} inside them (0-255)")

    if not args.skip_memory:
        for tile in (0, 512):
            out = subprocess.run([sys.executable, "-c", MEMORY, args.model, str(tile)], capture_output=True,
                                 text=True, check=True).stdout.split()
            print(f"1024² -> {out[0]}², tile {tile or 'none':>4}: peak RSS {float(out[1]):.0f} MB "
                  f"(after loading: {float(out[2]):.0f} MB)")


if __name__ == "__main__":
    main()
