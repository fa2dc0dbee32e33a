"""``genimg config``: the user's defaults, where each comes from, and setting them."""

from __future__ import annotations

import typer

from genimg.cli import options as o
from genimg.cli.help_format import App

app = App(help="Your defaults (config.toml in the config folder; GENIMG_<KEY> in the environment; flags win).",
                  no_args_is_help=True)


@app.command("show")
def show(json: o.Json = False) -> None:
    """Every key, its value, and where the value comes from (default, the file and line, the environment)."""
    from genimg.config import KEYS, config_file, settings

    found = settings()
    if json:
        import json as _json

        print(_json.dumps({"file": str(config_file()),
                           "settings": {k: {"value": s.value, "source": s.source} for k, s in found.items()}}, indent=2))
        return
    from genimg.cli.render import console
    from rich.table import Table

    view = Table(title=f"genimg settings ({config_file()})")
    for column in ("key", "value", "from", "what it sets"):
        view.add_column(column, overflow="fold")
    for key, setting in found.items():
        view.add_row(key, "" if setting.value is None else str(setting.value), setting.source, KEYS[key].help)
    console().print(view)


@app.command("path")
def path() -> None:
    """The config file's path (GENIMG_CONFIG, else config.toml in the platform's config folder)."""
    from genimg.config import config_file

    print(config_file())


@app.command("set")
def set_key(key: str = typer.Argument(..., help="A key from `genimg config show`."),
            value: str = typer.Argument(..., help="Its value (lists: separated by commas).")) -> None:
    """Set KEY to VALUE in the config file (checked first: the model resolves, the preset exists …)."""
    from genimg.config import set_value, typed_value
    from genimg.setting_checks import check_setting

    check_setting(key, typed_value(key, value))
    print(f"{key} set in {set_value(key, value)}")


@app.command("unset")
def unset_key(key: str = typer.Argument(..., help="A key from `genimg config show`.")) -> None:
    """Remove KEY from the config file (its default, or the environment's value, applies again)."""
    from genimg.config import unset

    path, removed = unset(key)
    print(f"{key} removed from {path}" if removed else f"{key} was not set in {path}; nothing changed")
