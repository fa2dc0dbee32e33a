"""``genimg batch``: many generations from a prompt file, resumable and shardable."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from genimg.cli import options as o

BATCH = "Batch"


@o.generation_command
def batch(
    file: Annotated[Path, typer.Argument(help="Prompts: .txt (one a line), .csv/.tsv with a header, .jsonl, or .toml/.yaml with `defaults` and `jobs`.", show_default=False)],
    common: o.Common,
    combinatorial: Annotated[bool, typer.Option("--combinatorial", help="Every combination of {a|b} and __wildcards__ (default: random picks).", rich_help_panel=BATCH)] = False,
    repeat: Annotated[int, typer.Option("--repeat", help="Jobs per row: random wildcard picks, or new seeds.", rich_help_panel=BATCH)] = 1,
    check_only: Annotated[bool, typer.Option("--check", help="Validate every row and exit without generating.", rich_help_panel=BATCH)] = False,
    fail_fast: Annotated[bool, typer.Option("--fail-fast", help="Stop at the first row that fails.", rich_help_panel=BATCH)] = False,
    grid: Annotated[bool, typer.Option("--grid", help="Also write a contact sheet per prompt.", rich_help_panel=BATCH)] = False,
    shard: Annotated[Optional[str], typer.Option("--shard", help="Run share i of n (i/n, from 0); default: from accelerate's RANK/WORLD_SIZE.", rich_help_panel=BATCH)] = None,
) -> None:
    """Generate from a prompt file; every generation option sets the default for all rows."""
    import hashlib
    import json
    import os
    import secrets

    from genimg.batch import manifest
    from genimg.batch.files import read_rows
    from genimg.batch.jobs import build_jobs
    from genimg.batch.runner import (BatchResult, StopFlag, check, contact_sheets, plan_units, run_batch, shard_from_env,
                                     shard_of)
    from genimg.cli.render import error_line, print_result, progress_reporter, stderr
    from genimg.errors import UsageError
    from genimg.spec import GenerationSpec

    if repeat < 1:
        raise UsageError(f"--repeat must be at least 1 (got {repeat})")
    index, count = _parse_shard(shard) if shard else shard_from_env()
    folder = Path(common.output or "outputs")
    fields = common.spec_fields()
    defaults = GenerationSpec(prompt="")
    cli_defaults = {k: v for k, v in fields.items() if k != "seed" and v != getattr(defaults, k)}
    if count > 1 and "LOCAL_RANK" in os.environ and "device" not in cli_defaults.get("preset_overrides", {}):
        from genimg.device import detect

        if detect(None).kind == "cuda":  # under accelerate/torchrun each process takes its own GPU
            cli_defaults.setdefault("preset_overrides", {})["device"] = f"cuda:{os.environ['LOCAL_RANK']}"
    rows, file_defaults = read_rows(file)
    seed = common.seed if common.seed is not None else manifest.batch_seed(folder)
    if seed is None and count > 1:
        # Shards run apart and must draw the same seeds without talking: take them from the file.
        seed = int.from_bytes(hashlib.sha256(file.read_bytes()).digest()[:4], "big") >> 1
    if seed is None:
        seed = secrets.randbelow(2**31)
    jobs = build_jobs(rows, file_defaults, cli_defaults, file.resolve().parent, file.name, seed, combinatorial, repeat)
    jobs = shard_of(jobs, index, count)
    problems = check(jobs)
    for job, message in problems:
        error_line(f"{file.name}:{job.row.line} ({job.id}): {message}", "batch")
    if check_only:
        images = sum(j.spec.count for j in jobs)
        print(f"{len(jobs)} jobs, {images} images, {len(problems)} with problems")
        raise typer.Exit(2 if problems else 0)
    if problems and fail_fast:
        raise typer.Exit(2)
    bad = {job.id for job, _ in problems}
    runnable = [j for j in jobs if j.id not in bad]
    if manifest.batch_seed(folder) is None:
        manifest.append(folder, {"batch_seed": seed, "file": str(file.resolve())})
    units, skipped = plan_units(runnable, manifest.read_done(folder), common.batch_size)
    result = BatchResult(skipped=skipped, failed=[(f"row {j.row.line} ({j.id})", m) for j, m in problems])
    total = sum(len(u.items) for u in units)
    with progress_reporter(common.quiet) as report, StopFlag() as stop:
        report.batch_total(total, skipped)

        def on_event(event, **info):
            if event == "batch_image":
                print_result(info["path"], info["image"], common.json)
                report.batch_advance()
            else:
                report(event, **info)

        run_batch(units, folder, fail_fast, on_event, result, stop)
    if grid:
        for sheet in contact_sheets(folder):
            stderr.print(f"contact sheet {sheet}")
    summary = {"done": result.done, "skipped": result.skipped, "failed": len(result.failed),
               "interrupted": result.interrupted, "seconds": round(result.seconds, 2)}
    if common.json:
        print(json.dumps({"summary": summary}))
    if not common.quiet:
        stderr.print(f"done {result.done}, skipped {result.skipped} (already made), failed {len(result.failed)}, "
                     f"{result.seconds:.1f} s" + ("; interrupted: run the same command again to resume" if result.interrupted else ""))
    if result.interrupted:
        raise typer.Exit(130)
    if result.failed:
        raise typer.Exit(1)


def _parse_shard(text: str) -> tuple[int, int]:
    from genimg.errors import UsageError

    try:
        index, count = (int(v) for v in text.split("/"))
    except ValueError:
        raise UsageError(f"--shard takes i/n, e.g. 0/2 (got {text!r})") from None
    if count < 1 or not 0 <= index < count:
        raise UsageError(f"--shard {text}: i must be between 0 and n-1")
    return index, count
