"""``genimg models``: the model aliases and what they point to."""

from __future__ import annotations

from genimg.cli import options as o


def models(json: o.Json = False) -> None:
    """List model aliases (add your own in ~/.config/genimg/aliases.toml) and ControlNet aliases."""
    from genimg.models.controlnets import controlnet_aliases
    from genimg.models.resolve import aliases

    table, controlnets = aliases(), controlnet_aliases()
    if json:
        import json as _json

        print(_json.dumps({**table, **{name: {**row, "kind": "controlnet"} for name, row in controlnets.items()}},
                          indent=2, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    view = Table(title="Model aliases")
    for column in ("alias", "family", "source", "description"):
        view.add_column(column)
    for name, row in table.items():
        where = row.get("repo") or row.get("path") or f"{row.get('base')} + {', '.join(_list(row.get('loras')))}"
        family = row.get("family") or table.get(row.get("base"), {}).get("family", "")
        view.add_row(name, family, where, row.get("description", ""))
    for name, row in controlnets.items():
        view.add_row(f"{name} (--controlnet)", row["family"], row["path"], row.get("description", ""))
    Console().print(view)


def _list(value) -> list:
    return [value] if isinstance(value, str) else list(value or [])
