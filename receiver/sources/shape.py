"""Small checks of decoded JSON that name the offending field, shared by both parsers."""

from __future__ import annotations

from typing import Any

from receiver.errors import PayloadError


def require_object(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PayloadError(field or "body", f"expected an object, got {type_name(value)}")
    return value


def require_str(obj: dict[str, Any], name: str, field: str) -> str:
    if name not in obj:
        raise PayloadError(field, "missing")
    value = obj[name]
    if not isinstance(value, str):
        raise PayloadError(field, f"expected a string, got {type_name(value)}")
    return value


def optional_str(obj: dict[str, Any], name: str, field: str) -> str | None:
    value = obj.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise PayloadError(field, f"expected a string, got {type_name(value)}")
    return value


def string_map(value: Any, field: str) -> dict[str, str]:
    obj = require_object({} if value is None else value, field)
    for name, item in obj.items():
        if not isinstance(item, str):
            raise PayloadError(f"{field}.{name}", f"expected a string, got {type_name(item)}")
    return obj


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "a number" if isinstance(value, int | float) else type(value).__name__
    )
