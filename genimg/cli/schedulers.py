"""``genimg schedulers``: sampler names and the diffusers classes behind them."""

from __future__ import annotations

from genimg.cli import options as o


def schedulers(json: o.Json = False) -> None:
    """List the schedulers (samplers) by their A1111 names."""
    from genimg.schedulers import schedulers as table

    rows = table()
    if json:
        import json as _json

        print(_json.dumps({n: {"class": s.class_name, "config": s.config, "families": list(s.families)}
                           for n, s in rows.items()}, indent=2))
        return
    from genimg.cli.render import console
    from rich.table import Table

    view = Table(title="Schedulers")
    for column in ("name", "diffusers class", "settings", "families"):
        view.add_column(column, overflow="fold")
    for name, s in rows.items():
        settings = ", ".join(f"{k}={v}" for k, v in s.config.items())
        view.add_row(name, s.class_name, settings, ", ".join(s.families))
    console().print(view)
