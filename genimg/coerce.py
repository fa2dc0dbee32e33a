"""One coercion step for every way in (flags, file rows, PNG metadata, config keys, the Python API):
a value as the type a field declares, or a one-line :class:`UsageError` naming the field and the value."""

from __future__ import annotations

import math
import types
import typing

from genimg.errors import UsageError


def coerce(name: str, value, kind):
    """``value`` as ``kind`` (the field's type), or a one-line error naming the field."""
    if kind is None:
        return value
    origin = typing.get_origin(kind)
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    if origin in (typing.Union, types.UnionType):
        if value is None or value == "":
            return None
        return coerce(name, value, args[0])
    if origin is tuple and args and args[-1] is Ellipsis:
        items = value if isinstance(value, (list, tuple)) else [v for v in str(value).split(";") if v.strip()]
        part = args[0]
        return tuple(part.parse(v) if hasattr(part, "parse") else coerce(name, v, part) for v in items)
    if origin is tuple:
        items = value if isinstance(value, (list, tuple)) else str(value).split(",")
        if len(items) != len(args):
            raise UsageError(f"{name} takes {len(args)} comma-separated numbers (got {value!r})")
        return tuple(coerce(name, v, a) for v, a in zip(items, args))
    if kind is dict:
        if not isinstance(value, dict):
            raise UsageError(f"{name} must be a table of settings (got {value!r})")
        return dict(value)
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "yes", "1", "on"):
            return True
        if text in ("false", "no", "0", "off", ""):
            return False
        raise UsageError(f"{name} must be true or false (got {value!r})")
    if kind is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise UsageError(f"{name} must be a whole number (got {value!r})")
        try:
            return int(value) if not isinstance(value, str) else int(value.strip())
        except (TypeError, ValueError):
            raise UsageError(f"{name} must be a whole number (got {value!r})") from None
    if kind is float:
        try:
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
        except (TypeError, ValueError):
            raise UsageError(f"{name} must be a number (got {value!r})") from None
        if not math.isfinite(number):  # nan would make an image, then invalid JSON in its metadata
            raise UsageError(f"{name} must be a finite number (got {value!r})")
        return number
    if kind is str:
        if isinstance(value, (dict, list, tuple)):
            raise UsageError(f"{name} must be text (got {value!r})")
        return str(value)
    return value
