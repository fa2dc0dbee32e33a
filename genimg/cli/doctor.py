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
    from rich.console import Console

    console = Console()
    for section, value in found.items():
        if isinstance(value, dict):
            console.print(f"[bold]{section}[/]")
            for key, item in value.items():
                console.print(f"  {key}: {item}")
        else:
            console.print(f"[bold]{section}[/]: {value}")
