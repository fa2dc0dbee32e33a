"""How long OpenVINO's conversion of a full-size UNet takes, as ``openvino.convert_model`` does it and as
genimg's route does it (``third_party.convert_traced``: the same trace without torch's check of it).

    python bench/openvino_convert.py [--family sd|sdxl] [--runs 2]

Random weights (genimg.testing.full_size), nothing kept on disk: the conversion alone, interleaved, the
CPU and its flags named on the table. SD1.5 peaked at 7.3 GB of RAM (twice its fp32 UNet); SDXL, with a UNet
three times larger, was not run."""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
import warnings
from pathlib import Path

from cpu_presets import cpu_flags_shown, cpu_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="sd", choices=["sd", "sdxl"])
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()

    import openvino as ov
    import torch

    from genimg.testing.full_size import build
    from genimg.third_party import convert_traced

    with tempfile.TemporaryDirectory(prefix="genimg-bench-") as work:
        unet = build(args.family, Path(work)).unet.eval()
    side, width = (64, 768) if args.family == "sd" else (128, 2048)
    example = (torch.randn(2, 4, side, side), torch.tensor(999.0), torch.randn(2, 77, width))
    extra = {}
    if args.family == "sdxl":
        extra = {"added_cond_kwargs": {"text_embeds": torch.randn(2, 1280), "time_ids": torch.randn(2, 6)}}

    class Traced(torch.nn.Module):  # the UNet with tensors in and out, as the route traces it
        def __init__(self):
            super().__init__()
            self.unet = unet

        def forward(self, sample, timestep, hidden):
            return self.unet(sample, timestep, hidden, return_dict=False, **extra)[0]

    ways = {"openvino.convert_model": lambda m: ov.convert_model(m, example_input=example),
            "genimg (trace unchecked)": lambda m: convert_traced(m, example)}
    times = {name: [] for name in ways}
    warnings.simplefilter("ignore")  # the tracer's notes on shapes it keeps as constants, as the route does
    with torch.no_grad():
        for _ in range(args.runs):
            for name, convert in ways.items():
                start = time.perf_counter()
                model = convert(Traced().eval())
                times[name].append(time.perf_counter() - start)
                del model
                gc.collect()
    base = statistics.median(times["openvino.convert_model"])
    print(f"{args.family} UNet at {side * 8}², batch 2, {cpu_model()} ({', '.join(cpu_flags_shown())}), "
          f"torch {torch.__version__}, OpenVINO {ov.__version__}")
    print("| conversion | median s | min s | vs convert_model |")
    print("|---|---|---|---|")
    for name, seconds in times.items():
        print(f"| {name} | {statistics.median(seconds):.1f} | {min(seconds):.1f} | "
              f"{statistics.median(seconds) / base:.2f}x |")


if __name__ == "__main__":
    main()
