"""The journal's evaluation history: what relative SLO criteria compare with."""

from __future__ import annotations

from pathlib import Path

from receiver import journal
from receiver.journal.sqlite import SQLiteJournal
from receiver.models import ServiceRef

CARTS = ServiceRef(project="sockshop", stage="production", service="carts")
ORDERS = ServiceRef(project="sockshop", stage="production", service="orders")


async def test_history_is_filtered_by_result_then_limited_newest_first(tmp_path: Path) -> None:
    store = SQLiteJournal(str(tmp_path / "journal.db"))
    await store.open()
    try:
        for result, value in [
            ("pass", 1.0),
            ("fail", 2.0),
            ("pass", 3.0),
            ("warning", 4.0),
            ("pass", 5.0),
        ]:
            await store.record_evaluation(
                CARTS,
                window_start=0,
                window_end=600,
                result=result,
                score=50.0,
                values={"rt": value, "err": None},
                detail={},
            )
        await store.record_evaluation(
            ORDERS,
            window_start=0,
            window_end=600,
            result="pass",
            score=100.0,
            values={"rt": 99.0},
            detail={},
        )
        passes = await store.previous_evaluations(CARTS, results=["pass"], limit=2)
        assert passes == [("pass", {"rt": 5.0, "err": None}), ("pass", {"rt": 3.0, "err": None})]
        everything = await store.previous_evaluations(
            CARTS, results=["pass", "warning", "fail"], limit=10
        )
        assert [values["rt"] for _, values in everything] == [5.0, 4.0, 3.0, 2.0, 1.0]
    finally:
        await store.close()
    # Tools beside the service read the same history without writing.
    rows = journal.read_history(str(tmp_path / "journal.db"), CARTS, results=["warning"], limit=5)
    assert rows == [("warning", {"rt": 4.0, "err": None})]
