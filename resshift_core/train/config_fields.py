"""The keys of a config table: each with a type, a default and a one-line meaning.

A table read from TOML is checked here against its keys (unknown keys, wrong types), so every
section refuses a mistake with the same sentence.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import types
import typing
from dataclasses import dataclass, field, fields
from typing import Any, Union

from .errors import ConfigError
from .toml_writer import toml_value


def setting(default: Any, help: str) -> Any:
    """A dataclass field with an immutable default and its one-line meaning (printed by --print-config).

    Lists and tables: `field(default_factory=..., metadata=help_text(...))`, a new one per config."""
    return field(default=default, metadata=help_text(help))


def help_text(help: str) -> dict[str, str]:
    return {"help": help}


@dataclass(frozen=True)
class Key:
    """One key of a config table."""

    name: str
    hint: Any  # the type, as typing spells it (int, list[float], Union[int, Sequence[int]], ...)
    default: Any
    help: str


def dataclass_keys(cls: type) -> list[Key]:
    """The keys of a dataclass whose fields were made with `setting`."""
    hints = typing.get_type_hints(cls)
    return [Key(f.name, hints[f.name], _default(f), f.metadata.get("help", "")) for f in fields(cls)]


def _default(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def checked_table(table: str, values: Any, keys: list[Key]) -> dict[str, Any]:
    """`values` with every key known and every value of its key's type, or a ConfigError."""
    if not isinstance(values, dict):
        raise ConfigError(
            table, f"is {type_name(type(values))}, not a table", f"write it as [{table}] with key = value lines"
        )
    known = {k.name: k for k in keys}
    out = {}
    for name, value in values.items():
        if name not in known:
            raise ConfigError(f"{table}.{name}", "is not a setting", f"valid keys of [{table}]: {', '.join(known)}")
        out[name] = checked_value(f"{table}.{name}", value, known[name])
    return out


def checked_value(where: str, value: Any, key: Key) -> Any:
    """`value` if it has the key's type (an integer where a number is wanted becomes a float)."""
    if not conforms(value, key.hint):
        raise ConfigError(
            where,
            f"= {_shown(value)} is not {type_name(key.hint)}",
            f"for example {where} = {toml_value(key.default)} (the default)",
        )
    if key.hint is float:
        return float(value)
    return value


def _shown(value: Any) -> str:
    try:
        return toml_value(value)
    except (TypeError, ValueError):
        return repr(value)


def conforms(value: Any, hint: Any) -> bool:
    """Whether `value` (as TOML or Python gives it) is of type `hint`; bool is not a number here."""
    if hint is Any:
        return True
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        return any(conforms(value, a) for a in args)
    if origin in (list, tuple, collections.abc.Sequence) or hint in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        item = args[0] if args else Any
        return all(conforms(v, item) for v in value)
    if origin is dict or hint is dict:
        item = args[1] if args else Any
        return isinstance(value, dict) and all(isinstance(k, str) and conforms(v, item) for k, v in value.items())
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, hint)


_NAMES = {
    bool: "true or false",
    int: "an integer",
    float: "a number",
    str: "a string",
    dict: "a table",
    list: "a list",
    tuple: "a list",
}


def type_name(hint: Any) -> str:
    if hint in _NAMES:
        return _NAMES[hint]
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        return " or ".join(type_name(a) for a in args)
    if origin in (list, tuple, collections.abc.Sequence):
        return f"a list of {_plural(args[0])}" if args else "a list"
    if origin is dict:
        return "a table"
    return getattr(hint, "__name__", str(hint))


def _plural(hint: Any) -> str:
    name = type_name(hint)
    for article in ("an ", "a "):
        if name.startswith(article):
            return name[len(article) :] + "s"
    return name


__all__ = ["Key", "checked_table", "checked_value", "conforms", "dataclass_keys", "setting", "type_name"]
