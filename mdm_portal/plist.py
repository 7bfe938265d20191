"""Plist value types by the names Apple's schema uses, and OS versions: one check each, used by
the device-request pipeline, the inventory and the command catalog alike."""

import datetime as dt
import re
from typing import Any


def is_plist_value(value: Any) -> bool:
    """Whether plistlib can write the value (what an `any` key accepts)."""
    if isinstance(value, str | bool | int | float | bytes | bytearray | dt.datetime):
        return True
    if isinstance(value, list | tuple):
        return all(is_plist_value(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_plist_value(v) for k, v in value.items())
    return False


# bool is a subclass of int in Python, but a plist <integer> and <boolean> differ.
_CHECKS = {
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "real": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "date": lambda v: isinstance(v, dt.datetime),
    "data": lambda v: isinstance(v, bytes | bytearray),
    "dictionary": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list | tuple),
    "any": is_plist_value,
}
PLIST_TYPES = frozenset(_CHECKS)


def has_type(value: Any, type_name: str) -> bool:
    """Whether `value` is a plist <type_name> (string, data, boolean, integer, real, date,
    dictionary, array, or any)."""
    return _CHECKS[type_name](value)


def type_name(value: Any) -> str:
    """The plist type of a value, for messages ("integer", not Python's "int")."""
    for name in ("boolean", "integer", "real", "string", "data", "date", "dictionary", "array"):
        if _CHECKS[name](value):
            return name
    return type(value).__name__


def os_version(text: str) -> tuple[int, ...] | None:
    """An OS version to compare: '17.4.1' -> (17, 4, 1), with trailing zeros dropped so that
    '17', '17.0' and '17.0.0' are equal. None when there is no version in it (unknown)."""
    match = re.search(r"\d+(?:\.\d+)*", str(text or ""))
    if not match:
        return None
    parts = [int(part) for part in match.group().split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)
