"""``genimg doctor``: versions, devices, the preset auto picks, folders and hub settings."""

from __future__ import annotations

from genimg.cli import options as o


def doctor(json: o.Json = False) -> None:
    """Check this machine: versions, GPUs and their memory, the preset auto picks and why, optional
    accelerators, folders with free space, hub settings. Paste `genimg doctor --json` into bug reports."""
    from genimg.doctor import report

    found = report()
    if json:
        import json as _json

        print(_json.dumps(found, indent=2))
        return
    from genimg.cli.render import console, styled

    out = console(highlight=False)
    for section, value in found.items():
        if isinstance(value, dict):
            out.print(styled((section, "bold")))
            for key, item in value.items():
                out.print(f"  {key}: {_plain(item)}")
        else:
            out.print(styled((section, "bold"), f": {_plain(value)}"))


def _plain(value) -> str:
    """A report value as a person reads it: a table as `key value, …`, a list joined, nothing as `-`."""
    if isinstance(value, dict):
        return ", ".join(f"{k} {_plain(v)}" for k, v in value.items()) or "-"
    if isinstance(value, (list, tuple)):
        return ", ".join(_plain(v) for v in value) or "-"
    return "-" if value is None or value == "" else str(value)
