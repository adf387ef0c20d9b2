"""What the PostgreSQL journal adds to the contract both backends keep (the engine, server
and journal suites run on both): several processes on one database, the lease and its
fencing, events between replicas, a database that goes away and comes back."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import psycopg
import pytest

from receiver import journal as journal_module
from receiver.errors import JournalFenced, JournalUnavailable
from receiver.journal import RemediationCreated, open_journal
from receiver.journal.postgres import (
    PostgresJournal,
    PostgresLease,
    connection_kwargs,
    redacted,
)
from receiver.models import ServiceRef, Source
from receiver.remediation.model import Decision, Plan, Progress
from receiver.sources import alertmanager
from tests import postgres_server, processes
from tests.conftest import AUTH, TOKEN, payload

CARTS = ServiceRef(project="sockshop", stage="production", service="carts")
LABELS = alertmanager.LabelNames(project=("project",), stage=("stage",), service=("service",))


def storm(batch: int, size: int = 20) -> bytes:
    body = payload("alertmanager-firing.json")
    template = body["alerts"][0]
    body["alerts"] = [template | {"fingerprint": f"b{batch}a{i}"} for i in range(size)]
    return json.dumps(body).encode()


PLAN = Plan.from_json({"rule": "response_time_p90", "actions": [{"action": "scaling", "value": 1}]})


async def record(journal: PostgresJournal, body: bytes, plan: Plan | None = PLAN) -> list[int]:
    notifications = alertmanager.parse(json.loads(body), labels=LABELS)
    recorded = await journal.record(
        body,
        notifications,
        decisions=[Decision(plan=plan) for _ in notifications],
        source=Source.ALERTMANAGER,
    )
    return [r.remediation_id for r in recorded if r.remediation_id is not None]


@pytest.fixture
async def two(postgres: postgres_server.Postgres) -> AsyncIterator[tuple[PostgresJournal, ...]]:
    """Two replicas' journals on one database."""
    url = postgres.create_database()
    journals = [open_journal(url, clock=time.time) for _ in range(2)]
    assert all(isinstance(j, PostgresJournal) for j in journals)
    # Both at once: the schema is created once, under its lock.
    await asyncio.gather(*(j.open() for j in journals))
    yield tuple(j for j in journals if isinstance(j, PostgresJournal))
    for journal in journals:
        await journal.close()


async def test_a_storm_through_two_replicas_at_once_starts_one_remediation(
    two: tuple[PostgresJournal, PostgresJournal],
) -> None:
    first, second = two
    created = await asyncio.gather(*(record(two[batch % 2], storm(batch)) for batch in range(20)))
    remediations = {rid for batch in created for rid in batch}
    assert len(remediations) == 1  # 400 problems of one service and rule: one remediation
    listed = await first.remediations(limit=10)
    assert len(listed) == 1
    assert listed[0]["joined"]["problems"] == 399
    problems = await second.problems(limit=1000)
    assert len(problems) == 400
    assert len({p["key"] for p in problems}) == 400  # no key opened twice


async def test_what_one_replica_records_reaches_the_others_subscribers(
    two: tuple[PostgresJournal, PostgresJournal],
) -> None:
    first, second = two
    feed = first.subscribe()
    (rid,) = set(await record(second, storm(0, size=1)))
    event = await asyncio.wait_for(feed.get(), 5)
    assert isinstance(event, RemediationCreated)
    assert (event.remediation_id, str(event.service)) == (rid, "sockshop/production/carts")


async def test_one_lease_holder_and_the_others_writes_are_fenced(
    two: tuple[PostgresJournal, PostgresJournal],
) -> None:
    first, second = two
    (rid,) = set(await record(first, storm(0, size=1)))
    one = first.leadership("one", lease=1.0)
    other = second.leadership("other", lease=1.0)
    assert await one.acquire(wait=False)
    assert not await other.acquire(wait=False)  # held, and renewed
    await first.start_step(rid, 0, "scaling", 1)
    with pytest.raises(JournalFenced):
        await second.start_step(rid, 0, "scaling", 1)
    # The holder is paused (its renewals stop) past the lease: the other takes over ...
    assert isinstance(one, PostgresLease)
    one._renewer.cancel()  # type: ignore[union-attr]
    await asyncio.wait_for(other.acquire(), 5)
    # ... and the paused one's next write is refused, though it still thinks it leads.
    with pytest.raises(JournalFenced):
        await first.save(rid, Progress())
    await second.save(rid, Progress())
    await other.release()
    assert await one.acquire(wait=False)  # released: taken at once, not after a lease
    await one.release()


async def test_a_leader_cut_off_from_the_database_steps_down_before_its_lease_ends(
    postgres: postgres_server.Postgres,
) -> None:
    url = postgres.create_database()
    journal = open_journal(url, clock=time.time)
    await journal.open()
    lease = journal.leadership("cut-off", lease=2.0)
    started = time.monotonic()
    assert await lease.acquire(wait=False)
    with postgres_server.blocked_writes(url):  # renewals cannot commit
        await asyncio.wait_for(lease.lost(), 5)
    # A fifth of the lease before it ends, counted from before it was taken: before a
    # follower could take over.
    assert time.monotonic() - started < 2.0
    assert not lease.leading
    await journal.close()


def test_a_password_never_shows() -> None:
    assert redacted("postgresql://app:s3cret@db:5432/receiver?sslmode=verify-full") == (
        "postgresql://app:***@db:5432/receiver?sslmode=verify-full"
    )
    assert redacted("postgresql://app@db/receiver") == "postgresql://app@db/receiver"


async def test_an_unreachable_database_is_named_without_its_password() -> None:
    url = f"postgresql://app:s3cret@127.0.0.1:{processes.free_port()}/receiver"
    journal = open_journal(url, busy_timeout=1.0, clock=time.time)
    with pytest.raises(JournalUnavailable) as refused:
        await journal.open()
    assert "s3cret" not in str(refused.value)
    assert "postgresql://app:***@127.0.0.1" in str(refused.value)


# -- a real receiver while its database stops and comes back -------------------------------------


@pytest.fixture
def own_postgres() -> Iterator[postgres_server.Postgres]:
    """A PostgreSQL of this test's own: it is stopped and started again."""
    with postgres_server.running() as server:
        yield server


async def test_a_stopped_database_answers_503_and_loses_nothing_acknowledged(
    tmp_path: Path, config_dir: Path, own_postgres: postgres_server.Postgres
) -> None:
    receiver = processes.AsyncReceiver(
        config_dir,
        port=processes.free_port(),
        log=tmp_path / "receiver.log",
        env={
            "RECEIVER_STORE": own_postgres.create_database(),
            "RECEIVER_AUTH_TOKEN": TOKEN,
            "RECEIVER_STORE_BUSY_TIMEOUT": "1s",
        },
    )
    await receiver.start()
    try:
        async with aiohttp.ClientSession() as session:

            async def post(key: str) -> int:
                body = payload("alertmanager-firing.json")
                body["alerts"][0]["fingerprint"] = key
                body["alerts"][0]["labels"]["service"] = "orders"  # no rules: nothing to run
                async with session.post(
                    f"{receiver.url}/webhooks/alertmanager", json=body, headers=AUTH
                ) as response:
                    return response.status

            async def ready() -> int:
                async with session.get(f"{receiver.url}/readyz") as response:
                    return response.status

            assert await post("before") == 200
            await asyncio.to_thread(own_postgres.stop, "immediate")
            assert await post("while-down") == 503
            assert await ready() == 503
            await asyncio.to_thread(own_postgres.start)
            for _ in range(100):
                if await ready() == 200:
                    break
                await asyncio.sleep(0.1)
            assert await ready() == 200
            assert await post("after") == 200
            async with session.get(f"{receiver.url}/api/v1/problems") as response:
                keys = {p["key"] for p in (await response.json())["problems"]}
            assert keys == {"before", "after"}  # nothing acknowledged lost, nothing half-kept
    finally:
        await receiver.stop()


async def test_tools_beside_the_service_read_the_history_and_open_problems_from_postgresql(
    postgres: postgres_server.Postgres,
) -> None:
    url = postgres.create_database()
    journal = open_journal(url, clock=time.time)
    await journal.open()
    lease = journal.leadership("tool-test", 10.0)
    assert await lease.acquire(wait=False)
    try:
        assert isinstance(journal, PostgresJournal)
        await record(journal, storm(0, size=3))
        await journal.record_evaluation(
            CARTS,
            window_start=0.0,
            window_end=1.0,
            result="pass",
            score=100.0,
            values={"response_time_p90": 250.0},
            detail={},
        )
    finally:
        await lease.release()
        await journal.close()
    # What `receiver slo evaluate --config` reads, with RECEIVER_STORE pointing here.
    history = await asyncio.to_thread(
        journal_module.read_history, url, CARTS, results=["pass"], limit=5
    )
    assert history == [("pass", {"response_time_p90": 250.0})]
    assert await asyncio.to_thread(journal_module.read_open_problems, url, CARTS) == 3
    unreachable = f"postgresql://app:s3cret@127.0.0.1:{processes.free_port()}/receiver"
    with pytest.raises(JournalUnavailable, match=r"app:\*\*\*@") as refused:
        journal_module.read_open_problems(unreachable, CARTS)
    assert "s3cret" not in str(refused.value)


def test_the_password_comes_from_its_file_and_a_missing_file_says_so(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    kwargs = connection_kwargs(password_file=str(secret), timeout=5)
    assert kwargs["password"] == "s3cret"
    with pytest.raises(JournalUnavailable, match="cannot read the store password file"):
        connection_kwargs(password_file=str(tmp_path / "no"), timeout=5)


async def test_a_journal_of_a_newer_schema_is_refused_with_why(
    postgres: postgres_server.Postgres,
) -> None:
    url = postgres.create_database()
    journal = open_journal(url, clock=time.time)
    await journal.open()
    await journal.close()
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("UPDATE journal_meta SET value = 99 WHERE key = 'schema_version'")
    newer = open_journal(url, clock=time.time)
    with pytest.raises(JournalUnavailable, match="schema version 99, newer than this receiver"):
        await newer.open()
