"""The first image of a fresh shell: `genimg txt2img "a red circle on a blue background"` (demo model) in a
new process, against the floor under it — `python -c "import torch"` and importing the one pipeline class
the plan uses — and through a background server (`server = "auto"`), measured side by side, interleaved.

    python bench/first_image.py [--runs 5]

Prints Markdown for docs/benchmarks.md: the table, the CPU it ran on, the heaviest imports of a fresh
run (`python -X importtime`), and the background server's resident memory. Everything it writes (images, the
server's state folder) is in one temporary folder; the server it starts is stopped at the end.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from timing import print_timings

PROMPT = "a red circle on a blue background"


def cpu_name() -> str:
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        return "unknown CPU"
    name = re.search(r"Model name:\s*(.+)", text)
    flags = set(re.search(r"Flags:\s*(.+)", text).group(1).split()) if "Flags:" in text else set()
    kinds = [f for f in ("amx_bf16", "avx512_bf16", "avx512f", "avx2") if f in flags]
    return f"{name.group(1).strip() if name else 'unknown'} ({', '.join(kinds) or 'no AVX2'}), {os.cpu_count()} cores"


def timed(cmd: list[str], env: dict) -> float:
    began = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    return time.perf_counter() - began


def heaviest_imports(env: dict, out: Path, top: int = 8) -> list[tuple[str, float]]:
    """The top-level imports of a fresh local run, by cumulative seconds."""
    err = subprocess.run([sys.executable, "-X", "importtime", "-m", "genimg", "txt2img", PROMPT, "--local",
                          "--quiet", "-o", str(out)], capture_output=True, text=True, env=env).stderr
    rows = []
    for line in err.splitlines():
        parts = line.split("|")
        if line.startswith("import time:") and len(parts) == 3 and parts[1].strip().isdigit():
            name = parts[2]
            if not name.startswith("  "):  # imported by the program itself, not by another import
                rows.append((name.strip(), int(parts[1]) / 1e6))
    return sorted(rows, key=lambda row: -row[1])[:top]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="genimg-bench-first-") as scratch:
        work = Path(scratch)
        env = {**os.environ, "GENIMG_STATE_DIR": str(work / "state"), "GENIMG_SERVER_IDLE_EXIT": "10"}
        env.pop("GENIMG_SERVER", None)
        genimg = [sys.executable, "-m", "genimg", "txt2img", PROMPT, "--quiet", "--overwrite"]
        commands = {
            'python -c "import torch"': ([sys.executable, "-c", "import torch"], env),
            'python -c "from diffusers import StableDiffusionPipeline"':
                ([sys.executable, "-c", "from diffusers import StableDiffusionPipeline"], env),
            "genimg txt2img (a fresh process, no server)": ([*genimg, "--local", "-o", str(work / "local.png")], env),
            "genimg txt2img (through the `server = auto` server)":
                ([*genimg, "-o", str(work / "served.png")], {**env, "GENIMG_SERVER": "auto"}),
        }
        try:
            started = timed(commands["genimg txt2img (through the `server = auto` server)"][0],
                            {**env, "GENIMG_SERVER": "auto"})  # starts the server (and warms the file cache)
            for cmd, cmd_env in commands.values():
                timed(cmd, cmd_env)
            results = {name: [] for name in commands}
            for _ in range(args.runs):  # interleaved, so load on the machine hits all alike
                for name, (cmd, cmd_env) in commands.items():
                    results[name].append(timed(cmd, cmd_env))
            imports = heaviest_imports(env, work / "imports.png")
            rss = server_rss(work / "state")
        finally:
            subprocess.run([sys.executable, "-m", "genimg", "serve", "--stop"], env=env, capture_output=True)
    print(f"CPU: {cpu_name()}; {args.runs} runs each, interleaved\n")
    print_timings(results, 'python -c "import torch"', "vs import torch")
    print(f"\nThe command that started the background server: {started:.2f} s. Its resident memory afterwards, "
          f"the demo model warm: {rss / 2**20:.0f} MB.\n")
    print("Heaviest top-level imports of a fresh run (`python -X importtime`, cumulative s):\n")
    print("| module | s |")
    print("|---|---|")
    for name, seconds in imports:
        print(f"| `{name}` | {seconds:.2f} |")


def server_rss(state: Path) -> int:
    import json

    import psutil

    pid = json.loads((state / "server.json").read_text())["pid"]
    return psutil.Process(pid).memory_info().rss


if __name__ == "__main__":
    main()
