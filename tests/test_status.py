"""`receiver status`'s text, as an on-call person reads it."""

from __future__ import annotations

from typing import Any

from receiver import status

TIMELINE: dict[str, Any] = {
    "id": 7,
    "state": "escalated",
    "phase": "done",
    "reason": "no action healed it; escalation delivered",
    "title": "response_time_p90",
    "source": "alertmanager",
    "problem_key": "fp-1",
    "problem_state": "open",
    "project": "sockshop",
    "stage": "production",
    "service": "carts",
    "rule": "response_time_p90",
    "rule_file": "carts/remediation.yaml",
    "created_at": "2026-11-29T00:00:00.000Z",
    "started_at": "2026-11-29T00:00:00.000Z",
    "ended_at": "2026-11-29T00:10:00.000Z",
    "steps": [
        {
            "position": 0,
            "action": "scaling",
            "input": "1",
            "result": "succeeded",
            "detail": "scaled",
            "verdict": "next",
            "duration_seconds": 0.2,
            "evaluation": {
                "result": "fail",
                "score": 0.0,
                "objectives": [{"sli": "response_time_p90", "value": None, "status": "fail"}],
            },
        },
        {
            "position": 1,
            "action": "escalate",
            "input": None,
            "result": "succeeded",
            "detail": None,
            "verdict": "escalated",
            "duration_seconds": None,
            "evaluation": None,
        },
    ],
}


def test_a_timeline_says_no_value_and_prints_no_null_input() -> None:
    lines = status.timeline(TIMELINE).splitlines()
    assert '  1. scaling "1": succeeded 0.20s — scaled' in lines
    assert "       response_time_p90: no value → fail" in lines
    assert "  2. escalate: succeeded" in lines


def test_the_table_cuts_a_long_reason_at_a_word() -> None:
    reason = (
        "no action healed it; escalation failed: no escalation target configured: set"
        " RECEIVER_ESCALATION_WEBHOOK_URL"
    )
    row = status.table([TIMELINE | {"reason": reason, "joined": {}}]).splitlines()[1]
    why = row.split("  ")[-1]
    assert why.endswith("…")
    assert reason.startswith(why[:-1])
    assert reason[len(why) - 1] == " "  # cut between words
