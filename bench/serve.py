"""What `genimg serve` saves a terminal user, and whether it stays bounded: measured side by side.

    python bench/serve.py [--runs 5] [--requests 500]

1. Wall time of `genimg txt2img` on the demo model from a fresh process: in-process (`--local`) against a
   warm server on this machine (the same command; the CLI finds the server).
2. The server's resident memory and the disk its folder takes, every 100 of `--requests` requests taken in
   turn from A1111's txt2img, OpenAI's generations and genimg's jobs (the server keeps its default history
   of 50 finished jobs).
Prints Markdown rows for docs/benchmarks.md. Its state and output folders are a temporary directory,
removed at exit (and by Ctrl-C).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(cmd: list[str], env: dict) -> float:
    began = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    return time.perf_counter() - began


def rss_mb(pid: int) -> float:
    import psutil

    return psutil.Process(pid).memory_info().rss / 2**20


def disk_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def one_request(client, n: int) -> None:
    """Request ``n``: A1111's txt2img, OpenAI's generations or a genimg job, in turn (20 steps, 64x64)."""
    kind = n % 3
    if kind == 0:
        client.post("/sdapi/v1/txt2img", json={"prompt": "a ring", "steps": 20, "width": 64, "height": 64, "seed": n,
                                               "override_settings": {"sd_model_checkpoint": "demo"}}).raise_for_status()
    elif kind == 1:
        client.post("/v1/images/generations", json={"model": "demo", "prompt": "a ring", "size": "64x64",
                                                    "response_format": "b64_json"}).raise_for_status()
    else:
        job = client.post("/v1/jobs", json={"spec": {"prompt": "a ring", "model": "demo", "width": 64, "height": 64,
                                                     "seed": n}})
        job.raise_for_status()
        with client.stream("GET", f"/v1/jobs/{job.json()['id']}/events") as events:
            for _ in events.iter_lines():
                pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="genimg-serve-bench-") as work:
        measure(args, Path(work))


def measure(args, work: Path) -> None:
    import httpx

    env = {**os.environ, "GENIMG_STATE_DIR": str(work / "state")}
    genimg = [sys.executable, "-m", "genimg"]
    txt2img = [*genimg, "txt2img", "a red circle on a blue background", "-m", "demo", "--seed", "1", "--quiet",
               "--overwrite", "-o", str(work / "out.png")]
    local = [timed([*txt2img, "--local"], env) for _ in range(args.runs)]
    server = subprocess.Popen([*genimg, "serve", "--port", "0", "-o", str(work / "served")], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = server.stdout.readline().split()[-1]
    try:
        first = timed(txt2img, env)  # loads the model into the server
        warm = [timed(txt2img, env) for _ in range(args.runs)]
        seen = []  # (requests, RSS MB, disk MB)
        with httpx.Client(base_url=url, timeout=120) as client:
            for n in range(args.requests):
                one_request(client, n)
                if n + 1 in (10, 50) or (n + 1) % 100 == 0:
                    seen.append((n + 1, rss_mb(server.pid), disk_mb(work / "served")))
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=120)
    print("| genimg txt2img (demo model, fresh process) | median s | min s |")
    print("|---|---|---|")
    print(f"| in-process (`--local`) | {statistics.median(local):.2f} | {min(local):.2f} |")
    print(f"| server, first request (loads the model) | {first:.2f} | {first:.2f} |")
    print(f"| server, warm | {statistics.median(warm):.2f} | {min(warm):.2f} |")
    print()
    print("| requests served | server RSS MB | its folder on disk MB |")
    print("|---|---|---|")
    for count, rss, disk in seen:
        print(f"| {count} | {rss:.0f} | {disk:.1f} |")


if __name__ == "__main__":
    main()
