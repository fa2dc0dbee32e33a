"""How fast `genimg --help` starts, against `python -c "import diffusers"`, measured side by side.

    python bench/cli_startup.py [--runs 7]

Prints a Markdown table row set for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "genimg --help": [sys.executable, "-m", "genimg", "--help"],
    "genimg txt2img --help": [sys.executable, "-m", "genimg", "txt2img", "--help"],
    'python -c "import diffusers"': [sys.executable, "-c", "import diffusers"],
    'python -c "from diffusers import StableDiffusionPipeline"': [sys.executable, "-c", "from diffusers import StableDiffusionPipeline"],
}


def timed(cmd: list[str]) -> float:
    began = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    for cmd in COMMANDS.values():  # warm the file cache once
        timed(cmd)
    results = {name: [] for name in COMMANDS}
    for _ in range(args.runs):  # interleaved, so load on the machine hits all alike
        for name, cmd in COMMANDS.items():
            results[name].append(timed(cmd))
    base = statistics.median(results['python -c "import diffusers"'])
    print("| command | median s | min s | vs import diffusers |")
    print("|---|---|---|---|")
    for name, times in results.items():
        med = statistics.median(times)
        print(f"| `{name}` | {med:.3f} | {min(times):.3f} | {med / base:.2f}x |")


if __name__ == "__main__":
    main()
