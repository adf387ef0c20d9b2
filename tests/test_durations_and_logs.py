"""Durations as people write them, and the two log formats."""

from __future__ import annotations

import datetime
import json
import logging
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from receiver import durations, logs


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10m", 600.0), ("1h30m", 5400.0), ("1500ms", 1.5), ("2 s", 2.0), ("45", 45.0),
     (30, 30.0), (0.5, 0.5), ("1d", 86400.0)],
)  # fmt: skip
def test_durations_read_as_written(text: str | float, seconds: float) -> None:
    assert durations.parse(text) == seconds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (-1, "expected a duration >= 0, got -1"),
        ("-5", "expected a duration >= 0, got -5.0"),
        (True, "expected a duration such as '10m' or '2s', got True"),
        ([10], "expected a duration such as '10m' or '2s', got [10]"),
        ("", "expected a duration such as '10m', '2s' or '1h30m', got ''"),
        ("10 minutes", "expected a duration such as '10m', '2s' or '1h30m', got '10 minutes'"),
    ],
)
def test_a_wrong_duration_says_what_is_expected(text: Any, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        durations.parse(text)


def test_keptns_duration_placeholder_is_whole_seconds() -> None:
    assert durations.format_seconds(599.6) == "600s"


def record(**extra: Any) -> logging.LogRecord:
    line = logging.LogRecord(
        "receiver.test", logging.ERROR, __file__, 1, "remediation.x", None, None
    )
    line.__dict__.update(extra)
    return line


def test_json_lines_carry_the_event_and_its_fields_and_the_exception() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        import sys

        line = record(remediation=7, service="a/b/c")
        line.exc_info = sys.exc_info()
    document = json.loads(logs.JsonFormatter().format(line))
    assert document | {"remediation": 7, "service": "a/b/c", "event": "remediation.x"} == document
    assert (document["level"], document["logger"]) == ("error", "receiver.test")
    assert "RuntimeError: boom" in document["exception"]


def test_text_lines_read_on_a_terminal() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        import sys

        line = record(remediation=7)
        line.exc_info = sys.exc_info()
    text = logs.TextFormatter().format(line)
    first, *rest = text.splitlines()
    assert first.endswith(" ERROR   remediation.x remediation=7")
    assert rest[-1] == "RuntimeError: boom"


def test_a_bound_logger_adds_its_fields_to_every_line(caplog: pytest.LogCaptureFixture) -> None:
    bound = logs.Bound(logging.getLogger("receiver.test"), remediation=9)
    with caplog.at_level(logging.INFO, logger="receiver.test"):
        bound.info("remediation.started", extra={"rule": "rt"})
        bound.info("remediation.finished")
    lines = [
        (r.getMessage(), getattr(r, "remediation", None), getattr(r, "rule", None))
        for r in caplog.records
    ]
    assert lines == [
        ("remediation.started", 9, "rt"),
        ("remediation.finished", 9, None),
    ]


def test_setup_picks_json_off_a_terminal_and_quiets_the_access_log() -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        logs.setup(format="auto", level="warning")
        assert isinstance(root.handlers[0].formatter, logs.JsonFormatter)  # pytest: no tty
        assert root.level == logging.WARNING
        logs.setup(format="text")
        assert isinstance(root.handlers[0].formatter, logs.TextFormatter)
        assert logging.getLogger("aiohttp.access").level == logging.WARNING
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def test_a_line_break_in_a_field_cannot_forge_a_text_log_line() -> None:
    line = record(title="response_time_p90\n2027-01-15T08:00:00.000Z ERROR   forged")
    text = logs.TextFormatter().format(line)
    assert len(text.splitlines()) == 1
    assert "title='response_time_p90\\n2027" in text


@settings(max_examples=500, deadline=None)
@given(
    created=st.one_of(
        st.floats(min_value=0, max_value=4e9),
        st.integers(min_value=0, max_value=4 * 10**9).map(lambda s: s + 0.9999996),
        st.integers(min_value=0, max_value=4 * 10**9).map(float),
    )
)
def test_a_lines_time_is_what_datetime_writes(created: float) -> None:
    moment = datetime.datetime.fromtimestamp(created, tz=datetime.UTC)
    assert logs._timestamp(created) == moment.isoformat(timespec="milliseconds")[:-6] + "Z"
