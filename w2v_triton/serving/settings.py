"""Typed settings <-> Triton `parameters` (all strings), for the settings class of each model.

Why one module: the builder writes each model's parameters and model.py / the in-process pipeline
read them back; both directions go through these two functions, so a field is named, typed and
defaulted once (in its dataclass) and a key no class knows is an error, not silently ignored.
"""
from __future__ import annotations

from dataclasses import fields
from typing import Any


def to_parameters(settings: Any, prefix: str = "") -> dict[str, str]:
    """Flat dataclass fields as Triton string parameters (booleans as true/false)."""
    values = {}
    for field in fields(settings):
        value = getattr(settings, field.name)
        values[prefix + field.name] = str(value).lower() if isinstance(value, bool) else str(value)
    return values


def parse_parameters(cls: type, parameters: dict[str, str], error: type[Exception],
                     prefix: str = "") -> dict[str, Any]:
    """The typed values of `cls`'s fields found in `parameters` under `prefix` (missing ones keep
    their defaults); a malformed value raises `error` naming the key."""
    kinds = {f.name: f.type for f in fields(cls)}
    values: dict[str, Any] = {}
    for key, raw in parameters.items():
        name = key[len(prefix):] if key.startswith(prefix) else None
        if name not in kinds:
            continue
        kind = kinds[name]
        kind = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
        try:
            if kind == "bool":
                if raw.lower() not in ("true", "false"):
                    raise ValueError("expected true or false")
                values[name] = raw.lower() == "true"
            elif kind == "int":
                values[name] = int(raw)
            elif kind == "float":
                values[name] = float(raw)
            else:
                values[name] = raw
        except ValueError as exc:
            detail = "is not a number" if kind in ("int", "float") else str(exc)
            raise error(f"parameter {key}={raw!r} {detail}") from None
    return values


def unknown_keys(parameters: dict[str, str], known: set[str]) -> list[str]:
    return sorted(set(parameters) - known)
