"""``genimg models``: the model aliases, what the Hugging Face cache holds, and freeing it."""

from __future__ import annotations

import typer

from genimg.cli import options as o
from genimg.cli.help_format import App

app = App(invoke_without_command=True)


@app.callback()
def models(ctx: typer.Context, json: o.Json = False) -> None:
    """List model aliases (add your own in ~/.config/genimg/aliases.toml), ControlNet, IP-Adapter and VAE
    names, the models in the Hugging Face cache (family, size, dtype, fp16 variant), and the checkpoints
    and LoRAs in your folders."""
    if ctx.invoked_subcommand is not None:
        return
    from genimg.ip_adapters import named_adapters
    from genimg.models.cache import cached_repos
    from genimg.user_files import local_files
    from genimg.models.controlnets import controlnet_aliases
    from genimg.models.resolve import aliases
    from genimg.models.vaes import vae_aliases

    table, controlnets, cached, ip_adapters = aliases(), controlnet_aliases(), cached_repos(), named_adapters()
    vaes = vae_aliases()
    files = local_files()
    if json:
        import json as _json
        from dataclasses import asdict

        print(_json.dumps({"aliases": table, "controlnets": controlnets, "ip_adapters": ip_adapters, "vaes": vaes,
                           "cache": [asdict(c) for c in cached], "files": [asdict(f) for f in files]},
                          indent=2, default=str))
        return
    from genimg.cli.render import console as plain_console
    from rich.table import Table

    local = {c.repo for c in cached}
    rows = []  # alias, family, source, local, description
    for name, row in table.items():
        where = row.get("repo") or row.get("path") or f"{row.get('base')} + {', '.join(_list(row.get('loras')))}"
        family = row.get("family") or table.get(row.get("base"), {}).get("family", "")
        here = "built in" if "path" in row else ("yes" if row.get("repo") in local else "-")
        rows.append((name, family, where, here, row.get("description", "")))
    for name, row in controlnets.items():
        rows.append((f"{name} (--controlnet)", row["family"], row["path"], "built in", row.get("description", "")))
    for name, row in ip_adapters.items():
        here = "yes" if "/".join(row["weights"].split("/")[:2]) in local else "-"
        rows.append((f"{name} (--ip-adapter)", row["family"], row["weights"], here, row.get("description", "")))
    for name, row in vaes.items():
        rows.append((f"{name} (--vae)", row["family"], row["repo"], "yes" if row["repo"] in local else "-",
                     row.get("description", "")))
    console = plain_console()
    view = Table(title="Model aliases")
    if console.width >= 110:
        for column in ("alias", "family", "source", "local", "description"):
            view.add_column(column, overflow="fold")
        for row in rows:
            view.add_row(*row)
    else:  # a narrow terminal: hub ids whole on their own line rather than folded across a column
        view.add_column("alias", no_wrap=True)
        view.add_column("family · local · source · description")
        for name, family, where, here, description in rows:
            local_word = here if here == "built in" else ("downloaded" if here == "yes" else "not downloaded")
            view.add_row(name, f"{family} · {local_word}\n{where}\n{description}".rstrip())
    console.print(view)
    cache = Table(title="In the Hugging Face cache")
    for column in ("repository", "family", "size", "dtype", "fp16 files"):
        cache.add_column(column, overflow="fold")
    for c in cached:
        cache.add_row(c.repo, c.family or "-", f"{c.size_bytes / 1e9:.2f} GB", c.dtype or "-", "yes" if c.fp16_variant else "-")
    console.print(cache if cached else "The Hugging Face cache holds no models.")
    if files:
        mine = Table(title="In your folders (checkpoint_dir, lora_dirs)")
        for column in ("file", "kind", "family", "size"):
            mine.add_column(column, overflow="fold")
        for f in files:
            mine.add_row(f.path, f.kind, f.family or "-", f"{f.size_bytes / 1e9:.2f} GB")
        console.print(mine)
    from genimg.openvino_cache import conversions as kept_conversions
    from genimg.paths import cache_dir

    converted = kept_conversions(cache_dir() / "openvino")
    if converted:
        console.print(f"OpenVINO conversions: {len(converted)}, {sum(c.bytes for c in converted) / 1e9:.2f} GB "
                      "(genimg models conversions lists and frees them)")


@app.command("rm")
def rm(name: str = typer.Argument(..., help="An alias or a hub id in the cache."),
       yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask.")) -> None:
    """Delete a model from the Hugging Face cache (every revision), freeing its space."""
    from genimg.errors import UsageError
    from genimg.models.cache import cached_repos, remove_repo
    from genimg.models.resolve import aliases

    row = aliases().get(name, {})
    if "path" in row:
        raise UsageError(f"{name} is built into genimg (a folder inside the package), not in the Hugging Face "
                         "cache; there is nothing to delete")
    repo = row.get("repo", name)
    size = next((c.size_bytes for c in cached_repos() if c.repo == repo), None)
    if size is not None and not yes and not typer.confirm(f"delete {repo} ({size / 1e9:.2f} GB) from the cache?"):
        raise typer.Abort()
    freed = remove_repo(repo)
    print(f"removed {repo}: {freed / 1e9:.2f} GB freed")


@app.command("download")
def download(
    name: str = typer.Argument(..., help="A model alias, a hub id (ORG/NAME), or the URL of a single-file checkpoint."),
    precision: str = typer.Option("auto", "--precision", help="fp16: the half-size fp16 variant where the repository "
                                  "has one; fp32: the full weights; auto: what the preset `auto` picks here runs in."),
    revision: str = typer.Option(None, "--revision", help="A branch, tag or commit (default: main)."),
    sha256: str = typer.Option(None, "--sha256", help="URL: the checkpoint's SHA-256 (as its page gives it), checked before it is kept."),
    output: str = typer.Option(None, "--output", "-o", help="URL: the folder to save into (default: the config's checkpoint_dir, else the data folder's checkpoints/)."),
    allow_pickle: o.AllowPickle = False,
    overwrite: o.Overwrite = False,
    json: o.Json = False,
    quiet: o.Quiet = False,
) -> None:
    """Fetch a model into the Hugging Face cache: only the files its pipeline loads (safetensors, never
    the pickle copies or a single-file duplicate), the fp16 variant for half-precision presets.
    Honours HF_ENDPOINT (mirrors), HF_TOKEN (gated models) and HF_HUB_CACHE; an interrupted download
    resumes when run again."""
    from genimg.cli.render import progress_reporter
    from genimg.errors import UsageError
    from genimg.models.download import download as fetch
    from genimg.models.download import plan_download
    from genimg.models.url_download import download_url, is_url
    from genimg.models.resolve import aliases

    if is_url(name):
        from genimg import config

        folder = output or config.checkpoint_dir()
        with progress_reporter(quiet) as report:
            path = download_url(name, folder, sha256, allow_pickle, overwrite, report)
        if json:
            import json as _json

            print(_json.dumps({"url": name, "path": str(path), "bytes": path.stat().st_size}))
        else:
            print(path)
        return
    if precision not in ("auto", "fp16", "fp32"):
        raise UsageError(f"--precision must be auto, fp16 or fp32 (got {precision!r})")
    row = aliases().get(name, {})
    if row and not row.get("repo"):
        raise UsageError(f"{name} is not a hub model ({'built in' if 'path' in row else 'its base: ' + str(row.get('base'))}); "
                         "download the hub id it names")
    repo = row.get("repo", name)
    half = precision == "fp16" or (precision == "auto" and _auto_half(row.get("family")))
    plan = plan_download(repo, half, revision)
    with progress_reporter(quiet) as report:
        folder = fetch(plan, report)
    if json:
        import json as _json

        print(_json.dumps({"repo": plan.repo, "commit": plan.commit, "files": list(plan.files), "bytes": plan.total,
                           "fp16": plan.fp16, "path": folder}))
    else:
        print(f"{plan.repo}: {len(plan.files)} files, {plan.total / 1e9:.2f} GB{' (fp16 variant)' if plan.fp16 else ''}"
              f" in {folder}")


def _auto_half(family: str | None) -> bool:
    """Whether the preset `auto` picks on this machine runs the family in half precision."""
    from genimg.presets import pick_auto

    preset, _ = pick_auto()
    return (preset.for_family(family) if family else preset).half_weights()


def _list(value) -> list:
    return [value] if isinstance(value, str) else list(value or [])


@app.command("optimize")
def optimize(
    name: str = typer.Argument(..., help="A model alias, hub id, folder or file (SD 1.x/2.x, SDXL)."),
    target: str = typer.Option("cpu", "--for", help="What to prepare for: cpu (the cpu-openvino preset's OpenVINO UNet)."),
    width: int = typer.Option(None, "--width", "-W", help="Image width it will run at (default: the model's)."),
    height: int = typer.Option(None, "--height", "-H", help="Image height (default: the model's)."),
    lora: list[str] = typer.Option(None, "--lora", "-l", help="LoRA FILE[:WEIGHT] it will run with (repeatable): another LoRA set is another conversion."),
    quiet: o.Quiet = False,
) -> None:
    """Convert a model's UNet and VAE decoder for the OpenVINO route ahead of time (one image's size and LoRAs, batch 1 with
    guidance), so that the first `--preset cpu-openvino` image does not pay the conversion."""
    import time

    from genimg.cli.render import progress_reporter
    from genimg.errors import UsageError
    from genimg.factory import PipelineFactory
    from genimg.generation import plan, run
    from genimg.device import openvino_missing
    from genimg.spec import GenerationSpec

    if target != "cpu":
        raise UsageError(f"--for {target}: genimg prepares models ahead of time for the CPU only (--for cpu); "
                         "GPU presets compile in the process that runs")
    missing = openvino_missing()
    if missing:
        raise UsageError(missing)
    spec = GenerationSpec.from_dict({"prompt": "a picture", "model": name, "preset": "cpu-openvino", "width": width,
                                     "height": height, "steps": 1, "seed": 0, "lora": lora or []})
    the_plan = plan(spec)
    from genimg.models.families import FAMILIES

    if FAMILIES[the_plan.ref.family].denoiser[0] != "UNet2DConditionModel":
        raise UsageError(f"{name} is a {FAMILIES[the_plan.ref.family].label} model: only UNet models (SD 1.x/2.x, SDXL) "
                         "have the OpenVINO route")
    began = time.perf_counter()
    with progress_reporter(quiet) as report:
        for _ in run(the_plan, PipelineFactory(), report):
            pass
    print(f"{the_plan.ref.name}: the OpenVINO UNet and VAE decoder for {the_plan.spec.width}x{the_plan.spec.height} are ready "
          f"({time.perf_counter() - began:.0f} s); `--preset cpu-openvino` uses it")


@app.command("conversions")
def conversions(
    remove: str = typer.Option(None, "--rm", help="Delete the conversions of a model (its name as listed), "
                               "of a weights key (or its first characters), or all of them."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask."),
    json: o.Json = False,
) -> None:
    """List what the OpenVINO route keeps in genimg's cache — one entry per UNet weights (each LoRA set is
    another), with the image sizes converted, the space and the last use — and free it with --rm. A
    conversion deleted is made again by the next `--preset cpu-openvino` image that needs it."""
    from genimg.errors import UsageError
    from genimg.openvino_cache import age, conversions as kept_conversions, matching, remove as remove_conversion
    from genimg.paths import cache_dir

    folder = cache_dir() / "openvino"
    kept = kept_conversions(folder)
    if remove is None:
        if json:
            import json as _json

            print(_json.dumps([{"key": c.key, "model": c.model, "sizes": c.sizes, "bytes": c.bytes,
                                "last_used": c.last_used} for c in kept], indent=2))
            return
        if not kept:
            print(f"No OpenVINO conversions in {folder}.")
            return
        from genimg.cli.render import console
        from rich.table import Table

        view = Table(title=f"OpenVINO conversions in {folder}")
        for column in ("key", "model", "sizes", "size", "last used"):
            view.add_column(column, overflow="fold")
        for c in kept:
            view.add_row(c.key[:12], c.model, ", ".join(c.sizes) or "-", f"{c.bytes / 1e9:.2f} GB", age(c.last_used))
        console().print(view)
        print(f"{sum(c.bytes for c in kept) / 1e9:.2f} GB in all; free it with: genimg models conversions --rm MODEL|KEY|all")
        return
    chosen = matching(kept, remove)
    if not chosen:
        held = ", ".join(sorted({c.model for c in kept} | {c.key[:12] for c in kept})) or "nothing"
        raise UsageError(f"--rm {remove}: no OpenVINO conversion of that model or key (the cache holds {held}); "
                         "see genimg models conversions")
    total = sum(c.bytes for c in chosen)
    if not yes and not typer.confirm(f"delete {len(chosen)} conversion(s), {total / 1e9:.2f} GB?"):
        raise typer.Abort()
    freed = sum(remove_conversion(c) for c in chosen)
    if json:
        import json as _json

        print(_json.dumps({"removed": [c.key for c in chosen], "bytes": freed}))
    else:
        print(f"removed {len(chosen)} conversion(s): {freed / 1e9:.2f} GB freed")
