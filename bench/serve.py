"""What `genimg serve` saves a terminal user, and whether it holds its memory: measured side by side.

    python bench/serve.py [--runs 5] [--requests 200]

1. Wall time of `genimg txt2img` on the demo model from a fresh process: in-process (`--local`) against a
   warm server on this machine (the same command; the CLI finds the server).
2. The server's resident memory after 10 requests and after `--requests` requests (A1111's txt2img).
Prints Markdown rows for docs/benchmarks.md. Uses a throwaway state and output folder.
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    import httpx

    work = Path(tempfile.mkdtemp(prefix="genimg-serve-bench-"))
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
        request = {"prompt": "a ring", "steps": 20, "width": 64, "height": 64,
                   "override_settings": {"sd_model_checkpoint": "demo"}}
        with httpx.Client(base_url=url, timeout=120) as client:
            for n in range(args.requests):
                client.post("/sdapi/v1/txt2img", json={**request, "seed": n}).raise_for_status()
                if n + 1 == 10:
                    after_ten = rss_mb(server.pid)
        after_all = rss_mb(server.pid)
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=120)
    print("| genimg txt2img (demo model, fresh process) | median s | min s |")
    print("|---|---|---|")
    print(f"| in-process (`--local`) | {statistics.median(local):.2f} | {min(local):.2f} |")
    print(f"| server, first request (loads the model) | {first:.2f} | {first:.2f} |")
    print(f"| server, warm | {statistics.median(warm):.2f} | {min(warm):.2f} |")
    print()
    print(f"server RSS after 10 requests {after_ten:.0f} MB, after {args.requests}: {after_all:.0f} MB "
          f"({after_all - after_ten:+.0f} MB)")


if __name__ == "__main__":
    main()
