"""Does memory creep over a long batch? Resident and peak memory after 10 and after 100 images.

    python bench/batch_memory.py [--images 100] [--model DIR]

Runs the batch library in-process (as `genimg batch` does) and reads RSS after image 10 and after the
last one, plus the process's peak RSS; on a GPU also torch's peak allocated memory.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
from pathlib import Path


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--model")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    tmp = Path(tempfile.mkdtemp(prefix="genimg-bench-"))
    from genimg.testing.tiny_models import model_or_tiny

    model = model_or_tiny(args.model, tmp)
    from genimg.batch.files import Row
    from genimg.batch.jobs import build_jobs
    from genimg.batch.runner import BatchResult, check, plan_units, run_batch

    rows = [Row(i + 1, {"prompt": f"a picture number {i}"}) for i in range(args.images)]
    jobs, _ = build_jobs(rows, {}, {"model": model, "width": 64, "height": 64, "steps": 10}, tmp, "bench", 1)
    plans, _ = check(jobs)
    units, _ = plan_units(jobs, {}, 1)
    marks = {}

    def on_event(event, **info):
        if event == "batch_image":
            done = len(marks.setdefault("paths", [])) + 1
            marks["paths"].append(info["path"])
            if done in (10, args.images):
                marks[done] = rss_mb()

    run_batch(units, plans, tmp / "out", False, on_event, BatchResult())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"RSS after 10 images: {marks[10]:.0f} MB; after {args.images}: {marks[args.images]:.0f} MB; "
          f"process peak RSS: {peak:.0f} MB")
    try:
        import torch

        if torch.cuda.is_available():
            print(f"torch peak allocated: {torch.cuda.max_memory_allocated() / 2**20:.0f} MB")
    except ImportError:
        pass


if __name__ == "__main__":
    main()
