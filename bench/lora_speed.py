"""LoRA training speed and memory: steps per second and peak memory of `genimg lora-train`.

    python bench/lora_speed.py [--model DIR | --full-size sd|sdxl] [--resolution 64] [--steps 50] [--rank 4]

Without --model it builds the tiny SD1.5 test model. --full-size builds SD1.5 or SDXL with the
published architecture and random weights (genimg.testing.full_size; saved under --cache, 2.1 or
6.9 GB), which costs per step what the real model costs: the GPU figures for 512² and 1024².
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--mixed-precision", default="no")
    parser.add_argument("--full-size", choices=["sd", "sdxl"])
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "genimg-full-size")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    tmp = Path(tempfile.mkdtemp(prefix="genimg-bench-"))
    if args.full_size:
        from genimg.testing.full_size import save_full_size

        model = str(save_full_size(args.full_size, args.cache / args.full_size))
    else:
        from genimg.testing.tiny_models import model_or_tiny

        model = model_or_tiny(args.model, tmp)
    from PIL import Image
    from skimage import data

    for name in ("astronaut", "chelsea", "coffee", "rocket"):
        Image.fromarray(getattr(data, name)()).save(tmp / f"{name}.png")
        (tmp / f"{name}.txt").write_text(f"a photo of {name}")
    import torch

    from genimg.train.config import LoraTrainConfig
    from genimg.train.loop import train_lora

    config = LoraTrainConfig(dataset=str(tmp), model=model, output=str(tmp / "out"), resolution=args.resolution,
                             rank=args.rank, max_steps=args.steps, batch_size=args.batch_size,
                             checkpoint_every=10**9, mixed_precision=args.mixed_precision,
                             gradient_checkpointing=args.gradient_checkpointing)
    times = []
    record = train_lora(config, progress=lambda event, **info: times.append(info["seconds"]) if event == "train_step" else None)
    # Steps/s over the second half, after warm-up (allocator, first kernels).
    half = len(times) // 2
    rate = (len(times) - half) / (times[-1] - times[half - 1])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    line = f"{args.full_size or 'model'} {args.steps} steps at {args.resolution}px, rank {args.rank}, batch " \
           f"{args.batch_size}, mixed precision {args.mixed_precision}: {rate:.3f} steps/s; " \
           f"peak RSS {peak:.0f} MB"
    if torch.cuda.is_available():
        line += f"; peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB"
    print(line, f"(loss on the training images {record['eval_loss_before']} -> {record['eval_loss_after']})")


if __name__ == "__main__":
    main()
