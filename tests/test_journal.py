"""The journal's evaluation history: what relative SLO criteria compare with."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from receiver import journal
from receiver.errors import JournalUnavailable
from receiver.journal.sqlite import Connection, SQLiteJournal
from receiver.models import Outcome, ServiceRef, Source
from receiver.remediation.model import Decision
from receiver.sources import alertmanager
from tests.conftest import payload

CARTS = ServiceRef(project="sockshop", stage="production", service="carts")
ORDERS = ServiceRef(project="sockshop", stage="production", service="orders")
ALERTMANAGER = Source.ALERTMANAGER
LABELS = alertmanager.LabelNames(project=("project",), stage=("stage",), service=("service",))


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


# -- when the journal fails ----------------------------------------------------------------------


async def test_a_journal_that_cannot_be_opened_says_where(tmp_path: Path) -> None:
    store = SQLiteJournal(str(tmp_path / "missing" / "journal.db"))
    with pytest.raises(JournalUnavailable, match=r"cannot open journal .*missing/journal.db"):
        await store.open()


async def test_writes_and_reads_after_close_are_refused(tmp_path: Path) -> None:
    store = SQLiteJournal(str(tmp_path / "journal.db"))
    await store.open()
    await store.close()
    with pytest.raises(JournalUnavailable, match="closed"):
        await store.probe()
    with pytest.raises(JournalUnavailable, match="closed"):
        await store.problems()


async def test_one_failing_write_does_not_fail_the_writes_committed_with_it(
    tmp_path: Path,
) -> None:
    store = SQLiteJournal(str(tmp_path / "journal.db"))
    await store.open()
    try:

        def broken(connection: Connection, now: float) -> None:
            connection.execute("INSERT INTO no_such_table VALUES (1)")

        def buggy(connection: Connection, now: float) -> None:
            raise ValueError("a bug in a job")

        body = json.dumps(payload("alertmanager-firing.json")).encode()
        notification = alertmanager.parse(json.loads(body), labels=LABELS)[0]
        results = await asyncio.gather(
            store.record(body, [notification], decisions=[Decision()], source=ALERTMANAGER),
            store.write(broken),
            store.write(buggy),
            store.record(body, [notification], decisions=[Decision()], source=ALERTMANAGER),
            return_exceptions=True,
        )
        first, failed, bug, repeat = results
        assert isinstance(failed, JournalUnavailable)
        assert "no such table" in str(failed)
        assert isinstance(bug, ValueError)
        assert isinstance(first, tuple)
        assert isinstance(repeat, tuple)
        # Retried alone after the group rolled back: recorded once, then seen as a repeat.
        assert [first[0].outcome, repeat[0].outcome] == [Outcome.OPENED, Outcome.REPEATED]
        (problem,) = await store.problems()
        assert problem["repeats"] == 1
        await store.probe()  # the writer lives on
    finally:
        await store.close()


async def test_a_read_that_fails_is_a_journal_error(tmp_path: Path) -> None:
    store = SQLiteJournal(str(tmp_path / "journal.db"))
    await store.open()
    try:
        with pytest.raises(JournalUnavailable, match="journal read failed: no such table"):
            await store.read(lambda c: c.execute("SELECT * FROM no_such_table").fetchall())
    finally:
        await store.close()


async def test_a_locked_journal_refuses_the_write_and_takes_the_next(tmp_path: Path) -> None:
    store = SQLiteJournal(str(tmp_path / "journal.db"), busy_timeout=0.1)
    await store.open()
    other = sqlite3.connect(tmp_path / "journal.db", isolation_level=None)
    try:
        other.execute("BEGIN EXCLUSIVE")  # another process holds the file
        with pytest.raises(JournalUnavailable, match="database is locked"):
            await store.probe()
        other.execute("ROLLBACK")
        await store.probe()
    finally:
        other.close()
        await store.close()


async def test_a_second_writer_on_the_same_journal_is_refused(tmp_path: Path) -> None:
    first = SQLiteJournal(str(tmp_path / "journal.db"))
    await first.open()
    try:
        second = SQLiteJournal(str(tmp_path / "journal.db"))
        with pytest.raises(JournalUnavailable, match=r"is in use by receiver pid \d+"):
            await second.open()
    finally:
        await first.close()
    again = SQLiteJournal(str(tmp_path / "journal.db"))  # closed: free again
    await again.open()
    await again.close()
