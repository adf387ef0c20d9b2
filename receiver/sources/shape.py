"""Small checks of decoded JSON that name the offending field, shared by both parsers."""

from __future__ import annotations

from typing import Any

from receiver.errors import PayloadError


def require_object(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PayloadError(field or "body", f"expected an object, got {type_name(value)}")
    return value


# `parent` is the path of `obj` with its trailing dot ("alerts[3]."): a field's name is only
# put together when it is wrong, not for every field of every alert.


def require_str(obj: dict[str, Any], name: str, parent: str) -> str:
    if name not in obj:
        raise PayloadError(parent + name, "missing")
    value = obj[name]
    if not isinstance(value, str):
        raise PayloadError(parent + name, f"expected a string, got {type_name(value)}")
    return value


def optional_str(obj: dict[str, Any], name: str, parent: str) -> str | None:
    value = obj.get(name)
    if value is None or isinstance(value, str):
        return value
    raise PayloadError(parent + name, f"expected a string, got {type_name(value)}")


def string_map(obj: dict[str, Any], name: str, parent: str) -> dict[str, str]:
    """`obj[name]`, an object of strings (absent: empty)."""
    value = obj.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PayloadError(parent + name, f"expected an object, got {type_name(value)}")
    for key, item in value.items():
        if not isinstance(item, str):
            raise PayloadError(f"{parent}{name}.{key}", f"expected a string, got {type_name(item)}")
    return value


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "a number" if isinstance(value, int | float) else type(value).__name__
    )
