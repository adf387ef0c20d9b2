"""Decoding a webhook's JSON, and small checks of it that name the offending field, shared
by both parsers."""

from __future__ import annotations

import json
import re
from typing import Any

from receiver.errors import PayloadError


def require_object(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PayloadError(field or "body", f"expected an object, got {type_name(value)}")
    return value


def decode_json(body: bytes) -> Any:
    """A webhook's body as JSON, or PayloadError saying why not (to be answered 400)."""
    if not body.strip():
        raise PayloadError("body", "empty; expected a JSON object")
    if b"\xed" in body and _ENCODED_SURROGATE.search(body):
        # json.loads decodes bytes with `surrogatepass`: these would pass as text and fail
        # only when the journal writes them (a 500, and Alertmanager redelivers a 5xx).
        raise PayloadError("body", "not UTF-8 text (a UTF-16 surrogate encoded as UTF-8)")
    try:
        document = json.loads(body)
    except UnicodeDecodeError:
        raise PayloadError("body", "not UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise PayloadError(
            "body", f"malformed JSON: {e.msg} at line {e.lineno} column {e.colno}"
        ) from None
    except RecursionError:
        raise PayloadError("body", "JSON nested too deeply") from None
    except ValueError as e:  # an integer of more digits than Python converts
        raise PayloadError("body", f"unusable JSON: {e}") from None
    if _ESCAPED_SURROGATE.search(body) and not _encodable(document):
        raise PayloadError("body", "a string holds a lone UTF-16 surrogate (\\ud800-\\udfff)")
    return document


# A \uD800-\uDFFF escape: JSON admits a lone one, UTF-8 (and so the journal) does not.
_ESCAPED_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")
# U+D800-U+DFFF written as UTF-8 bytes (ED A0 80 - ED BF BF), which UTF-8 forbids.
_ENCODED_SURROGATE = re.compile(rb"\xed[\xa0-\xbf]")


def _encodable(value: Any) -> bool:
    """Every string in `value` can be written as UTF-8 (iteratively: depth is bounded by
    the JSON decoder already)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return False
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return True


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
