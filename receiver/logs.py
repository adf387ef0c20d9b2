"""Structured logs: an event name as the message, the facts as fields.

    logger.info("problem.opened", extra={"key": key, "service": "sockshop/production/carts"})

JSON lines in a cluster (stderr is not a terminal), `time level event k=v` on a terminal.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import sys
import time
from typing import Any

_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


def fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
            **fields(record),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        # repr for text with line breaks: a title sent in a webhook must not forge a line
        extra = " ".join(
            f"{k}={v!r}" if isinstance(v, str) and ("\n" in v or "\r" in v) else f"{k}={v}"
            for k, v in fields(record).items()
        )
        text = f"{_timestamp(record.created)} {record.levelname:<7} {record.getMessage()} {extra}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text.rstrip()


def setup(*, format: str = "auto", level: str = "info") -> None:
    use_json = format == "json" or (format == "auto" and not sys.stderr.isatty())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiohttp's access log repeats what our request metrics and logs say.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # Neither format shows the caller, thread or process: do not look them up for every
    # record (the caller is a stack walk; measured under a storm, bench/ingest.py).
    logging._srcfile = None  # the logging cookbook's way to skip findCaller
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False


def _timestamp(created: float) -> str:
    """`created` as ISO 8601 in UTC to the millisecond, as datetime.isoformat writes it."""
    second = math.floor(created)
    micro = round((created - second) * 1_000_000)  # datetime's rounding, to the microsecond
    if micro == 1_000_000:
        second, micro = second + 1, 0
    return f"{_second(second)}.{micro // 1000:03d}Z"


@functools.lru_cache(maxsize=4)
def _second(second: int) -> str:
    # Once a second, not for every line: a storm logs a line per webhook, and formatting
    # a datetime was a fifth of a line's cost (py-spy, bench/ingest.py).
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


class Bound(logging.LoggerAdapter[logging.Logger]):
    """A logger whose fields are bound once (structlog's `bind`): `Bound(logger, remediation=7)`
    adds remediation=7 to every line, beside the line's own `extra`."""

    def __init__(self, logger: logging.Logger, **bound: Any) -> None:
        super().__init__(logger, bound)

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        kwargs["extra"] = {**(self.extra or {}), **(kwargs.get("extra") or {})}
        return msg, kwargs
