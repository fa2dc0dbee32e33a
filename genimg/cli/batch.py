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
    control: o.Controls = None,
    combinatorial: Annotated[bool, typer.Option("--combinatorial", help="Every combination of {a|b} and __wildcards__ (default: random picks).", rich_help_panel=BATCH)] = False,
    repeat: Annotated[int, typer.Option("--repeat", help="Jobs per row: random wildcard picks, or new seeds.", rich_help_panel=BATCH)] = 1,
    check_only: Annotated[bool, typer.Option("--check", help="Validate every row and exit without generating.", rich_help_panel=BATCH)] = False,
    fail_fast: Annotated[bool, typer.Option("--fail-fast", help="Stop at the first row that fails.", rich_help_panel=BATCH)] = False,
    grid: Annotated[bool, typer.Option("--grid", help="Also write a contact sheet per row (its repeats and wildcard picks together).", rich_help_panel=BATCH)] = False,
    shard: Annotated[Optional[str], typer.Option("--shard", help="Run share i of n (i/n, from 0); default: from accelerate's RANK/WORLD_SIZE.", rich_help_panel=BATCH)] = None,
) -> None:
    """Generate from a prompt file; every generation option sets the default for all rows. --seed is the
    batch seed each job's seed is drawn from (not seed, seed+1, ...: a row's own seed fixes its own)."""
    from contextlib import ExitStack

    from genimg.batch.lock import batch_lock
    from genimg.batch.plan import batch_folder, batch_shard

    settings = common.given_settings({**common.values, "control": control})
    settings.pop("seed", None)
    share = _parse_shard(shard) if shard else None
    locked = ExitStack()  # from planning (it reads what the folder's manifest has done) to the end of the run
    if not check_only:
        locked.enter_context(batch_lock(batch_folder(common.output), batch_shard(share)))
    with locked:
        _run(file, common, settings, share, combinatorial, repeat, check_only, fail_fast, grid)


def _run(file, common, settings, share, combinatorial, repeat, check_only, fail_fast, grid) -> None:
    import json

    from genimg.batch.plan import plan_batch, run_plan
    from genimg.interrupts import StopFlag
    from genimg.cli.render import error_line, print_result, progress_reporter, stderr

    plan = plan_batch(file, common.output, settings, common.seed, combinatorial, repeat, share, common.batch_size)
    for problem in plan.problems:
        error_line(f"{problem.where}: {problem.message}", "batch")
    if check_only:
        print(plan.check_summary())
        raise typer.Exit(2 if plan.problems else 0)
    if plan.problems and fail_fast:
        raise typer.Exit(2)
    from genimg.errors import Interrupted

    total = sum(len(u.items) for u in plan.units) + len(plan.upscales)
    made = []
    try:
        with progress_reporter(common.quiet) as report, StopFlag() as stop:
            report.batch_total(total, plan.skipped)

            def on_event(event, **info):
                if event == "batch_image":
                    print_result(info["path"], info["image"], common.json)
                    made.append(info["path"])
                    report.batch_advance()
                elif event == "upscaled":
                    print(json.dumps({"path": str(info["path"]), "source": str(info["source"]),
                                      "size": list(info["size"]), "seconds": round(info["seconds"], 4)})
                          if common.json else f"{info['path']}  {info['size'][0]}x{info['size'][1]}", flush=True)
                    made.append(info["path"])
                    report.batch_advance()
                else:
                    report(event, **info)

            result = run_plan(plan, fail_fast, grid, on_event, stop, _executor(plan, common, on_event))
    except KeyboardInterrupt:  # the second Ctrl-C: stop at once
        raise Interrupted(f"interrupted: {len(made)} of {total} images made in this run and recorded in "
                          f"{plan.folder / 'manifest.jsonl'}; {total - len(made)} not made; run the same command "
                          "again to resume") from None
    for sheet, template, images in result.sheets:
        stderr.print(f"contact sheet {sheet}: {images} images of the row {template!r}")
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


def _executor(plan, common, progress):
    """Where the batch's images are made: on a running genimg server, but not with --batch-size above 1 (a
    server job is one spec; batching is this process's own speed-up) nor when a row names a file on this
    machine as its model, LoRA, VAE … (a server opens no path a client names); else here. Images replace a
    file of their own name that the manifest does not record (a run cut off between write and record)."""
    from genimg.api import executor
    from genimg.errors import UsageError
    from genimg.serve.safety import named_paths

    if common.batch_size > 1 and common.server:
        raise UsageError("--server: --batch-size above 1 runs in this process; leave out --server")
    paths = [(f"row {job.row.line}'s {what}", value) for job in plan.jobs for what, value in named_paths(job.spec)]
    return executor(common.server, common.local or common.batch_size > 1, paths, progress=progress,
                    fallback=common.auto_fallback, overwrite=True)


def _parse_shard(text: str) -> tuple[int, int]:
    from genimg.errors import UsageError

    try:
        index, count = (int(v) for v in text.split("/"))
    except ValueError:
        raise UsageError(f"--shard takes i/n, e.g. 0/2 (got {text!r})") from None
    if count < 1 or not 0 <= index < count:
        raise UsageError(f"--shard {text}: i must be between 0 and n-1")
    return index, count
