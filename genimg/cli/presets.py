"""``genimg presets``: the VRAM presets and which one ``auto`` picks on this machine."""

from __future__ import annotations

from typing import Optional

import typer

from genimg.cli import options as o


def presets(
    family: Optional[str] = typer.Option(None, "--family", help="Show the settings for one family: sd, sdxl, flux."),
    json: o.Json = False,
) -> None:
    """List the VRAM presets and the one `--preset auto` would pick here."""
    from genimg.models import get_family
    from genimg.presets import load_presets, pick_auto

    if family:
        get_family(family)
    table = {name: (p.for_family(family) if family else p) for name, p in load_presets().items()}
    chosen, reason = pick_auto()
    if json:
        import json as _json

        print(_json.dumps({"auto": {"preset": chosen.name, "reason": reason},
                           "presets": {n: p.settings() | {"description": p.description, "vram_gb": p.vram_gb}
                                       for n, p in table.items()}}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    view = Table(title=f"VRAM presets{f' for {family}' if family else ''}")
    for column in ("name", "device", "dtype", "offload", "attn slicing", "vae slicing", "vae tiling", "compile", "quantize"):
        view.add_column(column, overflow="fold")
    for name, p in table.items():
        mark = " (auto)" if name == chosen.name else ""
        view.add_row(name + mark, p.device, p.dtype, p.offload, _yes(p.attention_slicing), _yes(p.vae_slicing),
                     _yes(p.vae_tiling), p.compile, p.quantize)
    console = Console()
    console.print(view)
    for name, p in table.items():
        console.print(f"[bold]{name}[/]: {p.description}")
    console.print(f"auto picks [bold]{chosen.name}[/]: {reason}")


def _yes(flag: bool) -> str:
    return "yes" if flag else "-"
