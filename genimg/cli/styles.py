"""``genimg styles``: the named styles ``--style`` takes, and where each comes from."""

from __future__ import annotations

from genimg.cli import options as o


def styles(json: o.Json = False) -> None:
    """List the styles (shipped and your own, A1111 styles.csv format)."""
    from genimg.prompting.styles import load_styles, style_files

    table = load_styles()
    if json:
        import json as _json

        print(_json.dumps({name: {"prompt": s.prompt, "negative_prompt": s.negative, "file": s.source}
                           for name, s in table.items()}, indent=2))
        return
    for name, style in table.items():
        print(f"{name:16s} {style.prompt}" + (f"  [negative: {style.negative}]" if style.negative else ""))
    print(f"\nfiles: {', '.join(str(f) for f in style_files())}")
