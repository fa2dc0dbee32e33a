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
    from rich.table import Table

    view = Table(title=f"VRAM presets{f' for {family}' if family else ''}")
    view.add_column("name", no_wrap=True)
    for column in ("device", "dtype", "offload"):
        view.add_column(column)
    view.add_column("saves memory by", min_width=10)
    view.add_column("compile", overflow="fold", max_width=12)  # max-autotune-no-cudagraphs folds, not the rest
    view.add_column("quantize")
    for name, p in table.items():
        mark = "\n(auto)" if name == chosen.name else ""
        savers = [word for word, on in (("attn slicing", p.attention_slicing), ("vae slicing", p.vae_slicing),
                                        ("vae tiling", p.vae_tiling)) if on]
        view.add_row(name + mark, p.device, p.dtype, p.offload, ", ".join(savers) or "-", p.compile, p.quantize)
    from genimg.cli.render import console, styled

    out = console()
    out.print(view)
    for name, p in table.items():
        out.print(styled((name, "bold"), f": {p.description}"))
    out.print(styled("auto picks ", (chosen.name, "bold"), f": {reason}"))

