"""Durations as people write them in YAML and environment variables: `10m`, `2s`, `1h30m`."""

from __future__ import annotations

import re

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse(text: str | float) -> float:
    """Seconds in `text`; a bare number is seconds. Raises ValueError naming the format."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        if text < 0:
            raise ValueError(f"expected a duration >= 0, got {text}")
        return float(text)
    if not isinstance(text, str):
        raise ValueError(f"expected a duration such as '10m' or '2s', got {text!r}")
    compact = text.strip().replace(" ", "")
    try:
        number = float(compact)
    except ValueError:
        number = None
    if number is not None:  # a bare number: seconds, refused when negative like any other
        return parse(number)
    parts = _PART.findall(compact)
    if not compact or "".join(number + unit for number, unit in parts) != compact:
        raise ValueError(f"expected a duration such as '10m', '2s' or '1h30m', got {text!r}")
    return sum(float(number) * _SECONDS[unit] for number, unit in parts)


def format_seconds(seconds: float) -> str:
    """The Prometheus form Keptn used for $DURATION_SECONDS: whole seconds, `600s`."""
    return f"{round(seconds)}s"
