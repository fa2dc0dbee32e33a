"""What the start-up benchmarks share: a Markdown table of interleaved timings against one base row."""

from __future__ import annotations

import statistics


def print_timings(results: dict[str, list[float]], base: str, ratio: str, ratio_digits: int = 2) -> None:
    """One row per command: median and fastest seconds, and the median against ``base``'s (column ``ratio``)."""
    reference = statistics.median(results[base])
    print(f"| command | median s | min s | {ratio} |")
    print("|---|---|---|---|")
    for name, times in results.items():
        median = statistics.median(times)
        print(f"| {name} | {median:.2f} | {min(times):.2f} | {median / reference:.{ratio_digits}f}x |")
