"""A small TOML writer (tomllib only reads): tables of scalars, lists and inline tables."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)  # inf and nan are spelt the same way in TOML
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{toml_key(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    if v is None:
        raise ValueError("TOML has no null")
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def toml_key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else json.dumps(k)


def dumps_tables(tables: Sequence[tuple[str, str, Sequence[tuple[str, Any, str]]]], header: str = "") -> str:
    """`[(table, doc, [(key, value, meaning), ...]), ...]` as TOML; docs and meanings become
    comments when `header` (the file's first comment line) is given."""
    comments = bool(header)
    lines = [f"# {header}", ""] if comments else []
    for name, doc, rows in tables:
        if comments and doc:
            lines.append(f"# {doc}")
        lines.append(f"[{name}]")
        for key, value, meaning in rows:
            if comments:
                lines.append(f"# {meaning}")
            lines.append(f"{toml_key(key)} = {toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


__all__ = ["dumps_tables", "toml_key", "toml_value"]
