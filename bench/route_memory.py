"""Where the cpu-openvino route's first image holds its memory: anonymous memory (what must fit in RAM) sampled
every 0.2 s through one first image of full-size SD1.5 (random weights) at 512², converting into a fresh cache,
each phase's highest figure printed — the text encoder's, UNet's and VAE decoder's conversions and compiles, the
steps, the decode.

    python bench/route_memory.py [--steps 2] [--cache /tmp/genimg-full-size]

The model folder is built into a temporary folder removed at the end, with the OpenVINO cache, even on Ctrl-C
(or taken from --cache, where bench/cpu_images.py keeps its builds)."""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from cpu_images import anonymous_peak
from cpu_presets import cpu_flags_shown, cpu_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--cache", type=Path, help="a folder of full-size builds to take SD1.5 from (and keep it in)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="genimg-bench-") as work:
        os.environ["GENIMG_CACHE_DIR"] = str(Path(work) / "cache")  # before genimg reads it: a fresh conversion
        from genimg import openvino_unet, openvino_vae
        from genimg.generation import generate
        from genimg.spec import GenerationSpec
        from genimg.testing.full_size import save_full_size

        folder = save_full_size("sd", (args.cache or Path(work)) / "sd")
        phase, entered, began = ["load"], {}, time.monotonic()

        def enter(name):  # a part met again (the VAE after the text encoder) is a phase of its own
            entered[name] = entered.get(name, 0) + 1
            phase[0] = name if entered[name] == 1 else f"{name} ({entered[name]})"

        def labelled(name, function):  # the conversions and compiles have no progress events of their own
            def run(*a, **k):
                enter(name)
                try:
                    return function(*a, **k)
                finally:
                    enter(f"after {name}")
            return run

        openvino_vae.PartForward._convert = labelled("text encoder / VAE: convert", openvino_vae.PartForward._convert)
        openvino_vae.compiled_request = labelled("text encoder / VAE: compile", openvino_vae.compiled_request)
        openvino_unet.OpenVINOForward._convert = labelled("UNet: convert", openvino_unet.OpenVINOForward._convert)
        openvino_unet.compiled_request = labelled("UNet: compile", openvino_unet.compiled_request)

        def progress(event, **fields):
            if event == "step" and not phase[0].startswith("steps"):
                enter("steps")
            elif event == "image":
                enter("image made")

        highest = anonymous_peak(0.2, lambda: phase[0])
        spec = GenerationSpec(prompt="a lighthouse", model=str(folder), preset="cpu-openvino", steps=args.steps,
                              width=512, height=512, seed=1)
        generate(spec, progress=progress)
        time.sleep(0.5)
    print(f"SD1.5 512², {args.steps} steps, cpu-openvino, first image from a fresh cache, "
          f"{cpu_model()} ({', '.join(cpu_flags_shown())}), {time.monotonic() - began:.0f} s")
    print("| phase (in order) | highest anonymous memory GiB |")
    print("|---|---|")
    for name, gib in list(highest.items()):
        print(f"| {name} | {gib:.2f} |")


if __name__ == "__main__":
    main()
