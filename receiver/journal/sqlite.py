"""The SQLite journal: every delivery, every notification, the problems they make and the
remediations they start. Every SQL statement of the receiver is in this module.

SQLite in WAL mode. One writer thread owns the only writing connection and commits in
groups: requests that arrive while a commit is under way are written together by the next
one, so a burst shares one fsync instead of paying one each, and the event loop never
blocks on disk. A webhook is answered only once `record` returns, that is once its
transaction is committed (with `synchronous=FULL`, once the WAL is fsynced).

Load is shed at the door: when more requests wait for the writer than `max_pending`,
`record` raises JournalOverloaded at once instead of queueing without bound, and the HTTP
layer answers 503 so that the sender retries. Nothing is acknowledged and then dropped.

Reads use their own connections on a small thread pool; WAL lets them run beside the writer.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import fcntl
import functools
import itertools
import json
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import IO, Any, Protocol, TypeVar

from receiver import durations
from receiver.clock import iso
from receiver.errors import JournalOverloaded, JournalUnavailable
from receiver.journal import (
    EVALUATIONS_KEPT,
    ApprovalDecided,
    CancelRequested,
    JournalEvent,
    Leadership,
    ProblemResolved,
    Pruned,
    RemediationCreated,
    Solo,
)
from receiver.models import (
    Notification,
    Outcome,
    ProblemKey,
    ProblemState,
    Recorded,
    RemediationState,
    ServiceRef,
    Signal,
    Source,
)
from receiver.remediation.model import (
    Decision,
    Judgement,
    Phase,
    Plan,
    Progress,
    Remediation,
    ScaleBack,
    ScaleBackState,
    StepRecord,
    StepResult,
    Verdict,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")


class Cursor(Protocol):
    """What the statements here use of a DB-API cursor (sqlite3's, or psycopg's)."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """A connection that takes this module's statements (qmark placeholders)."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Cursor: ...


Job = Callable[[Connection, float], T]

SCHEMA_VERSION = 4
# What each version adds to the one before; a journal is brought up to date when opened.
_MIGRATIONS = {
    2: (  # coalescing: a problem that joined a remediation of the same service and rule
        "ALTER TABLE problems ADD COLUMN remediation_id INTEGER REFERENCES remediations (id)",
        "CREATE INDEX IF NOT EXISTS problems_remediation ON problems (remediation_id)",
    ),
    3: (  # retention deletes deliveries; each delete looks up the notifications that name it
        "CREATE INDEX IF NOT EXISTS notifications_delivery ON notifications (delivery_id)",
    ),
    4: (  # manual approval: a person's decision (approved | rejected), until the engine takes it
        "ALTER TABLE remediations ADD COLUMN approval TEXT",
    ),
}
_SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY,
    received_at REAL NOT NULL,
    source TEXT NOT NULL,
    body BLOB NOT NULL                -- the webhook body exactly as received
);
CREATE TABLE IF NOT EXISTS problems (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    key TEXT NOT NULL,
    occurrence INTEGER NOT NULL,      -- 1 for the first opening of a key, 2 after a resolve, ...
    title TEXT NOT NULL,
    state TEXT NOT NULL,              -- open | resolved
    project TEXT, stage TEXT, service TEXT,
    url TEXT,
    repeats INTEGER NOT NULL DEFAULT 0,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    resolved_at REAL,
    ignored_reason TEXT               -- why no remediation will run, if none will
);
CREATE UNIQUE INDEX IF NOT EXISTS problems_open_key
    ON problems (source, key) WHERE state = 'open';
CREATE INDEX IF NOT EXISTS problems_key ON problems (key, occurrence);
CREATE INDEX IF NOT EXISTS problems_service ON problems (project, stage, service);
CREATE TABLE IF NOT EXISTS notifications (
    id INTEGER PRIMARY KEY,
    delivery_id INTEGER NOT NULL REFERENCES deliveries (id),
    position INTEGER NOT NULL,        -- index of the alert in the delivery (0 for Dynatrace)
    received_at REAL NOT NULL,
    source TEXT NOT NULL,
    key TEXT NOT NULL,
    signal TEXT NOT NULL,
    outcome TEXT NOT NULL,
    reason TEXT,
    problem_id INTEGER REFERENCES problems (id)
);
CREATE INDEX IF NOT EXISTS notifications_problem ON notifications (problem_id);
CREATE TABLE IF NOT EXISTS remediations (
    id INTEGER PRIMARY KEY,
    problem_id INTEGER NOT NULL UNIQUE REFERENCES problems (id),  -- one per open problem
    project TEXT NOT NULL, stage TEXT NOT NULL, service TEXT NOT NULL,
    plan TEXT NOT NULL,               -- JSON: the matched rule, its actions and options
    state TEXT NOT NULL,              -- pending running healed escalated resolved cancelled
    phase TEXT NOT NULL,              -- queued | cooldown | action | wait | evaluate | done
    step INTEGER NOT NULL DEFAULT 0,  -- position of the current action
    phase_until REAL,                 -- when a cooldown or wait ends
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    reason TEXT,                      -- why it ended as it did
    created_at REAL NOT NULL,
    started_at REAL,
    ended_at REAL,
    scale_back TEXT                   -- JSON, after a healed scaling: waiting | due | done
);
CREATE TABLE IF NOT EXISTS evaluations (
    id INTEGER PRIMARY KEY,
    project TEXT NOT NULL, stage TEXT NOT NULL, service TEXT NOT NULL,
    window_start REAL NOT NULL,
    window_end REAL NOT NULL,
    result TEXT NOT NULL,             -- pass | warning | fail
    score REAL NOT NULL,
    sli_values TEXT NOT NULL,         -- JSON {sli: number or null}, history for relative criteria
    detail TEXT NOT NULL,             -- JSON: objectives, targets, reasons
    created_at REAL NOT NULL,
    remediation_id INTEGER REFERENCES remediations (id),
    step INTEGER                      -- the position of the action it judged
);
CREATE INDEX IF NOT EXISTS remediations_service ON remediations (project, stage, service, id);
CREATE TABLE IF NOT EXISTS steps (
    id INTEGER PRIMARY KEY,
    remediation_id INTEGER NOT NULL REFERENCES remediations (id),
    position INTEGER NOT NULL,
    action TEXT NOT NULL,             -- as in remediation.yaml
    input TEXT NOT NULL,              -- JSON: the value from remediation.yaml
    result TEXT NOT NULL,             -- started | succeeded | failed
    detail TEXT,
    data TEXT,                        -- JSON: what the action reported
    checkpoint TEXT,                  -- JSON: the plan saved before the action changed anything
    verdict TEXT,                     -- what came of it: healed | next | resolved | cancelled
    started_at REAL NOT NULL,
    ended_at REAL,
    UNIQUE (remediation_id, position)
);
CREATE INDEX IF NOT EXISTS evaluations_service ON evaluations (project, stage, service, id);
CREATE INDEX IF NOT EXISTS evaluations_remediation ON evaluations (remediation_id);
"""

# What intake writes most, a row per alert (the PostgreSQL journal sends many as one).
INSERT_PROBLEM = (
    "INSERT INTO problems (id, source, key, occurrence, title, state, project, stage, service,"
    " url, first_seen, last_seen, ignored_reason, remediation_id)"
    " VALUES (?, ?, ?, 1 + (SELECT COALESCE(MAX(occurrence), 0) FROM problems"
    " WHERE source = ? AND key = ?), ?, 'open', ?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_NOTIFICATION = (
    "INSERT INTO notifications (delivery_id, position, received_at, source, key, signal,"
    " outcome, reason, problem_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

_PROBLEM_COLUMNS = (
    "id, source, key, occurrence, title, state, project, stage, service, url, repeats, "
    "first_seen, last_seen, resolved_at, ignored_reason"
)
_JOINED_SHOWN = 50  # problems listed on a remediation's timeline; all are counted
_MAX_GROUP = 512  # requests per group commit; bounds the latency of one commit
_PRUNE_BATCH = 500  # rows looked at per retention transaction; intake commits between them
_FINISHED = tuple(state.value for state in RemediationState if state.finished)
# Under way: queued, awaiting approval or running (an SQL list, of the enum's own values).
_UNDER_WAY = "(" + ", ".join(f"'{s.value}'" for s in RemediationState if not s.finished) + ")"
# The problems a remediation is for: its own and those that joined it (two ? for its id).
_PROBLEMS_OF = "(remediation_id = ? OR id = (SELECT problem_id FROM remediations WHERE id = ?))"


@dataclasses.dataclass(slots=True)
class _Request:
    job: Job[Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    fenced: bool = False  # the engine's: refused once this process no longer leads
    # An intake's problems (source, key) and the services it may start remediations of.
    keys: Sequence[tuple[str, str]] = ()
    services: Sequence[ServiceRef] = ()


class SQLiteJournal:
    backend = "sqlite"
    # Whether a transaction asks the database what its deliveries are about (the services
    # they may start remediations of); the only writer keeps that in memory instead.
    _prefetches = False
    # What a failing database raises: the write or read is answered JournalUnavailable.
    _errors: tuple[type[Exception], ...] = (sqlite3.Error,)

    def __init__(
        self,
        path: str,
        *,
        synchronous: str = "full",
        max_pending: int = 1000,
        busy_timeout: float = 5.0,
        max_queued_per_service: int = 3,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.where = path  # what logs and errors name: the file, or the database without secrets
        self._max_queued = max_queued_per_service
        self._synchronous = synchronous.upper()
        self._max_pending = max_pending
        self._busy_timeout = busy_timeout
        self._clock = clock
        self._queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._lock: IO[str] | None = None  # held while open: one writer per journal
        self._pending = 0  # writes waiting for the writer
        self._intake = 0  # of which webhooks, the ones shed at max_pending
        self._writer: threading.Thread | None = None
        self._readers: concurrent.futures.ThreadPoolExecutor | None = None
        self._reader_local = threading.local()
        self._reader_connections: list[sqlite3.Connection] = []
        self._reader_lock = threading.Lock()
        self._index = _OpenIndex()  # owned by the writer thread
        self._subscribers: list[asyncio.Queue[JournalEvent]] = []
        self.commit_seconds: Callable[[float], None] = lambda seconds: None

    @property
    def open_problems(self) -> int:
        return len(self._index.open)

    @property
    def pending(self) -> int:
        return self._pending

    def leadership(self, identity: str, lease: float) -> Leadership:
        """One process per SQLite file (the flock sees to it): it always leads."""
        return Solo()

    @property
    def is_open(self) -> bool:
        return self._writer is not None and self._writer.is_alive()

    # -- life cycle --------------------------------------------------------------------------

    async def open(self) -> None:
        self._lock = self._lock_file()
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._writer = threading.Thread(
            target=self._write_loop, args=(ready,), name="journal-writer", daemon=True
        )
        self._writer.start()
        try:
            await asyncio.wrap_future(ready)
        except BaseException:
            self._release_lock()
            raise
        self._readers = concurrent.futures.ThreadPoolExecutor(
            max_workers=2, thread_name_prefix="journal-read"
        )

    async def close(self) -> None:
        if self._writer is not None:
            self._queue.put(None)
            await asyncio.to_thread(self._writer.join)
            self._writer = None
        if self._readers is not None:
            self._readers.shutdown(wait=True)
            self._readers = None
        with self._reader_lock:
            for connection in self._reader_connections:
                connection.close()
            self._reader_connections.clear()
        self._release_lock()

    def _lock_file(self) -> IO[str] | None:
        """Held while open: the writer's mirror assumes it is the only writer."""
        return _take_lock(self.path)

    def _release_lock(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing the file releases the flock
            self._lock = None

    # -- writing -----------------------------------------------------------------------------

    async def write(
        self,
        job: Job[T],
        *,
        shed: bool = True,
        fenced: bool = False,
        keys: Sequence[tuple[str, str]] = (),
        services: Sequence[ServiceRef] = (),
    ) -> T:
        """Run `job(connection, now)` in a committed transaction; its result once committed.

        With `shed` (intake), raise JournalOverloaded at once when too many webhooks wait
        for the journal; the engine's own writes (shed=False) neither count nor are shed.
        A `fenced` write (the engine's progress) is refused with Fenced unless this process
        leads when it commits; one process on its own SQLite file always does.
        """
        if not self.is_open:
            raise JournalUnavailable("the journal is closed")
        if shed and self._intake >= self._max_pending:
            raise JournalOverloaded(f"{self._intake} webhooks are waiting for the journal")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._pending += 1
        future.add_done_callback(self._done)
        if shed:
            self._intake += 1
            future.add_done_callback(self._intake_done)
        self._queue.put(
            _Request(job=job, future=future, loop=loop, fenced=fenced, keys=keys, services=services)
        )
        # shield: a client that hangs up must not un-record what is being committed.
        return await asyncio.shield(future)

    def _done(self, _: asyncio.Future[Any]) -> None:
        self._pending -= 1

    def _intake_done(self, _: asyncio.Future[Any]) -> None:
        self._intake -= 1

    async def record(
        self,
        delivery: bytes,
        notifications: Sequence[Notification],
        *,
        decisions: Sequence[Decision],
        source: Source,
    ) -> tuple[Recorded, ...]:
        """Commit one webhook delivery and what each of its notifications does to problems.

        `decisions[i]` says whether notification i, if it opens a problem, starts a
        remediation (with the matched rule) or not (and why). The remediation is created in
        the same transaction as its problem: one per open problem, never lost in between.
        """

        keys = [(n.source.value, n.key) for n in notifications]
        services = (
            [
                ref
                for n, decision in zip(notifications, decisions, strict=True)
                if decision.plan is not None and (ref := n.service_ref) is not None
            ]
            if self._prefetches
            else []
        )

        def job(
            connection: Connection, now: float
        ) -> tuple[tuple[Recorded, ...], list[JournalEvent]]:
            recorded, events = self._apply(
                connection, now, source, delivery, notifications, decisions, keys, services
            )
            return recorded, self._committing(connection, events)

        recorded, events = await self.write(job, keys=keys, services=services)
        for event in events:  # committed: whoever acts may act on them now
            self._publish(event)
        return recorded

    def subscribe(self) -> asyncio.Queue[JournalEvent]:
        subscriber: asyncio.Queue[JournalEvent] = asyncio.Queue()
        self._subscribers.append(subscriber)
        return subscriber

    def _publish(self, event: JournalEvent) -> None:
        for subscriber in self._subscribers:
            subscriber.put_nowait(event)

    def _committing(self, connection: Connection, events: list[JournalEvent]) -> list[JournalEvent]:
        """What a transaction is about to commit tells subscribers `events`: here, those it
        returns are published in this process once committed (the only process on its
        journal); a shared journal sends them with the commit to every replica instead."""
        return events

    def _finished(self, remediation_id: int) -> None:
        """A remediation ended in the transaction under way."""
        self._index.finished(remediation_id)

    def _index_for(
        self,
        connection: Connection,
        writes: _Writes,
        keys: Sequence[tuple[str, str]],
        *,
        services: Sequence[ServiceRef] = (),
        new_ids: bool = False,
    ) -> OpenIndex:
        """What a transaction about problems `keys` (source, key) decides on: open problems,
        remediations under way (of `services`, where known), new ids (`new_ids`: a
        delivery's and a problem's per key)."""
        return self._index

    def _reindex(self, connection: Connection) -> None:
        """Read again what the writer mirrors in memory (after a rollback, or a rare change
        simpler to re-read than to patch)."""
        self._index.reload(connection)

    def _apply(
        self,
        connection: Connection,
        now: float,
        source: Source,
        delivery: bytes,
        notifications: Sequence[Notification],
        decisions: Sequence[Decision],
        keys: Sequence[tuple[str, str]],
        services: Sequence[ServiceRef],
    ) -> tuple[tuple[Recorded, ...], list[JournalEvent]]:
        # Decisions come from the writer's in-memory index of open problems and active
        # remediations, so a notification costs no SELECT; writes are batched per statement.
        writes = _Writes()
        index = self._index_for(connection, writes, keys, services=services, new_ids=True)
        events: list[JournalEvent] = []
        delivery_id = index.take_delivery_id()
        writes.add(
            "INSERT INTO deliveries (id, received_at, source, body) VALUES (?, ?, ?, ?)",
            (delivery_id, now, source.value, delivery),
        )
        results = []
        for position, (n, decision) in enumerate(zip(notifications, decisions, strict=True)):
            open_key = keys[position]
            current = index.current(open_key)
            problem_id = current.id if current else None
            reason = decision.reason
            remediation_id: int | None = None
            if n.signal is Signal.TEST:
                outcome, reason = Outcome.TEST, "test notification: recorded, starts nothing"
                problem_id = None
            elif n.signal is Signal.OTHER:
                outcome = Outcome.IGNORED
                reason = f"state {n.state!r} is recorded but not acted on"
            elif n.signal is Signal.OPEN and current:
                writes.add(
                    "UPDATE problems SET repeats = repeats + 1, last_seen = ? WHERE id = ?",
                    (now, current.id),
                )
                outcome, reason = Outcome.REPEATED, current.ignored_reason
            elif n.signal is Signal.OPEN:
                problem_id = index.take_problem_id()
                outcome = Outcome.OPENED
                plan, ref = decision.plan, n.service_ref
                joined: int | None = None
                if plan is not None and ref is not None:
                    active = index.active_of(ref)
                    joined = active.get(plan.rule)
                    if joined is None and len(active) >= self._max_queued:
                        plan, reason = (
                            None,
                            (
                                f"{len(active)} remediations of {ref} are queued or running"
                                f" (remediation.max_queued_per_service = {self._max_queued}):"
                                " recorded without one"
                            ),
                        )
                writes.add(
                    INSERT_PROBLEM,
                    (
                        problem_id,
                        n.source.value,
                        n.key,
                        n.source.value,
                        n.key,
                        n.title,
                        n.project,
                        n.stage,
                        n.service,
                        n.url,
                        now,
                        now,
                        reason,
                        joined,
                    ),
                )
                if joined is not None:  # a storm on one service and rule: one remediation
                    remediation_id = joined
                    reason = f"joined remediation {joined} of the same service and rule"
                elif plan is not None and ref is not None:
                    writes.flush(connection)  # the problem row first: the remediation refers to it
                    remediation_id = _create_remediation(connection, problem_id, ref, plan, now)
                    index.active_of(ref)[plan.rule] = remediation_id
                    events.append(RemediationCreated(remediation_id, problem_id, ref))
                index.opened(open_key, problem_id, reason if plan is None else None, remediation_id)
            elif current:
                writes.add(
                    "UPDATE problems SET state = 'resolved', resolved_at = ?, last_seen = ?"
                    " WHERE id = ?",
                    (now, now, current.id),
                )
                left = index.resolved(open_key)
                if current.remediation_id is not None:
                    events.append(ProblemResolved(current.id, current.remediation_id, left))
                outcome, reason = Outcome.RESOLVED, None
            else:
                writes.flush(connection)
                latest = connection.execute(
                    "SELECT id FROM problems WHERE source = ? AND key = ?"
                    " ORDER BY occurrence DESC LIMIT 1",
                    open_key,
                ).fetchone()
                problem_id = latest[0] if latest else None
                outcome = Outcome.IGNORED
                reason = "already resolved" if latest else "no open problem with this key"
            writes.add(
                INSERT_NOTIFICATION,
                (
                    delivery_id,
                    position,
                    now,
                    n.source.value,
                    n.key,
                    n.signal.value,
                    outcome.value,
                    reason,
                    problem_id,
                ),
                last=True,
            )
            results.append(
                Recorded(
                    key=n.key,
                    outcome=outcome,
                    problem_id=problem_id,
                    reason=reason,
                    remediation_id=remediation_id,
                )
            )
        writes.flush(connection)
        return tuple(results), events

    async def record_evaluation(
        self,
        ref: ServiceRef,
        *,
        window_start: float,
        window_end: float,
        result: str,
        score: float,
        values: dict[str, float | None],
        detail: dict[str, Any],
        remediation_id: int | None = None,
        step: int | None = None,
    ) -> int:
        """Keep an SLO evaluation: it is the history later relative criteria compare with."""

        def job(connection: Connection, now: float) -> int:
            (row_id,) = connection.execute(
                "INSERT INTO evaluations (project, stage, service, window_start, window_end,"
                " result, score, sli_values, detail, created_at, remediation_id, step)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (
                    ref.project,
                    ref.stage,
                    ref.service,
                    window_start,
                    window_end,
                    result,
                    score,
                    json.dumps(values),
                    json.dumps(detail),
                    now,
                    remediation_id,
                    step,
                ),
            ).fetchone()
            return int(row_id)

        return await self.write(job, shed=False, fenced=True)

    async def previous_evaluations(
        self, ref: ServiceRef, *, results: Sequence[str], limit: int
    ) -> list[tuple[str, dict[str, float | None]]]:
        """(result, values) of the newest `limit` evaluations whose result is in `results`."""
        return await self.read(lambda c: previous_evaluations(c, ref, results=results, limit=limit))

    # -- remediations ------------------------------------------------------------------------

    async def unfinished(self) -> list[Remediation]:
        """Every remediation not finished, oldest first (the per-service order)."""

        def query(connection: Connection) -> list[Remediation]:
            rows = connection.execute(
                f"SELECT {_REMEDIATION_COLUMNS} FROM remediations"
                f" WHERE state IN {_UNDER_WAY} ORDER BY id"
            ).fetchall()
            return [_remediation(connection, row) for row in rows]

        return await self.read(query)

    async def load(self, remediation_id: int) -> Remediation | None:
        return await self.read(lambda connection: _load(connection, remediation_id))

    async def save(
        self,
        remediation_id: int,
        progress: Progress,
        judgement: Judgement | None = None,
        *,
        scale_back: ScaleBack | None = None,
    ) -> None:
        def job(connection: Connection, now: float) -> list[JournalEvent]:
            connection.execute(
                "UPDATE remediations SET state = ?, phase = ?, step = ?, phase_until = ?,"
                " reason = ?,"
                " started_at = COALESCE(started_at, CASE WHEN ? = 'running' THEN ? END),"
                " ended_at = COALESCE(ended_at, CASE WHEN ? = 'done' THEN ? END),"
                " scale_back = COALESCE(?, scale_back) WHERE id = ?",
                (
                    progress.state.value,
                    progress.phase.value,
                    progress.position,
                    progress.until,
                    progress.reason,
                    progress.state.value,
                    now,
                    progress.phase.value,
                    now,
                    json.dumps(scale_back.to_json()) if scale_back else None,
                    remediation_id,
                ),
            )
            if judgement is not None:
                connection.execute(
                    "UPDATE steps SET verdict = ? WHERE remediation_id = ? AND position = ?",
                    (judgement.verdict.value, remediation_id, judgement.position),
                )
            if not progress.finished:
                return []
            self._finished(remediation_id)
            if progress.state is RemediationState.RESOLVED:
                return self._committing(
                    connection, self._carry_over(connection, remediation_id, now)
                )
            return []

        for event in await self.write(job, shed=False, fenced=True):
            self._publish(event)

    def _carry_over(
        self, connection: Connection, remediation_id: int, now: float
    ) -> list[JournalEvent]:
        """A remediation ended resolved while a problem that joined it at the last moment is
        still open: that problem gets a remediation of its own, the others join it."""
        rows = connection.execute(
            "SELECT id FROM problems WHERE remediation_id = ? AND state = 'open' ORDER BY id",
            (remediation_id,),
        ).fetchall()
        if not rows:
            return []
        heir = rows[0][0]
        row = connection.execute(
            "SELECT project, stage, service, plan FROM remediations WHERE id = ?",
            (remediation_id,),
        ).fetchone()
        ref = ServiceRef(project=row[0], stage=row[1], service=row[2])
        plan = Plan.from_json(json.loads(row[3]))
        new_id = _create_remediation(connection, heir, ref, plan, now)
        connection.execute("UPDATE problems SET remediation_id = NULL WHERE id = ?", (heir,))
        connection.execute(
            "UPDATE problems SET remediation_id = ? WHERE remediation_id = ? AND state = 'open'",
            (new_id, remediation_id),
        )
        self._reindex(connection)  # rare: simpler to re-read than to patch the mirror
        return [RemediationCreated(new_id, heir, ref)]

    async def problem_state(self, problem_id: int) -> ProblemState:
        def query(connection: Connection) -> ProblemState:
            (state,) = connection.execute(
                "SELECT state FROM problems WHERE id = ?", (problem_id,)
            ).fetchone()
            return ProblemState(state)

        return await self.read(query)

    async def expire_stale(self, cutoff: float, *, stale_after: float) -> int:
        reason = f"expired: no notification for {durations.format_seconds(stale_after)}"

        def job(connection: Connection, now: float) -> tuple[int, list[JournalEvent]]:
            stale = connection.execute(
                "SELECT source, key, id FROM problems WHERE state = 'open' AND last_seen < ?"
                " ORDER BY id LIMIT 10000",
                (cutoff,),
            ).fetchall()
            index = self._index_for(connection, _Writes(), [(s, k) for s, k, _ in stale])
            connection.executemany(
                "UPDATE problems SET state = 'expired', resolved_at = ?, ignored_reason = ?"
                " WHERE id = ?",
                [(now, reason, problem_id) for _, _, problem_id in stale],
            )
            events: list[JournalEvent] = []
            for source, key, problem_id in stale:
                current = index.current((source, key))
                assert current is not None
                remediation_id = current.remediation_id
                left = index.resolved((source, key))
                if remediation_id is not None:
                    events.append(ProblemResolved(problem_id, remediation_id, left, expired=True))
            return len(stale), self._committing(connection, events)

        count, events = await self.write(job, shed=False, fenced=True)
        for event in events:
            self._publish(event)
        return count

    async def unresolved_problems(self, remediation_id: int) -> int:
        def query(connection: Connection) -> int:
            ((count,),) = connection.execute(
                f"SELECT COUNT(*) FROM problems WHERE state = 'open' AND {_PROBLEMS_OF}",
                (remediation_id, remediation_id),
            )
            return int(count)

        return await self.read(query)

    async def last_ended(self, service: ServiceRef) -> float | None:
        def query(connection: Connection) -> float | None:
            (ended,) = connection.execute(
                "SELECT MAX(ended_at) FROM remediations WHERE project = ? AND stage = ?"
                " AND service = ?",
                (service.project, service.stage, service.service),
            ).fetchone()
            return float(ended) if ended is not None else None

        return await self.read(query)

    async def next_position(self, remediation_id: int) -> int:
        def query(connection: Connection) -> int:
            (position,) = connection.execute(
                "SELECT COALESCE(MAX(position) + 1, 0) FROM steps WHERE remediation_id = ?",
                (remediation_id,),
            ).fetchone()
            return int(position)

        return await self.read(query)

    async def start_step(self, remediation_id: int, position: int, action: str, value: Any) -> None:
        def job(connection: Connection, now: float) -> None:
            connection.execute(
                "INSERT INTO steps (remediation_id, position, action, input, result, started_at)"
                " VALUES (?, ?, ?, ?, 'started', ?)"
                " ON CONFLICT (remediation_id, position) DO NOTHING",
                (remediation_id, position, action, json.dumps(value), now),
            )

        await self.write(job, shed=False, fenced=True)

    async def save_checkpoint(
        self, remediation_id: int, position: int, checkpoint: dict[str, Any]
    ) -> None:
        def job(connection: Connection, now: float) -> None:
            connection.execute(
                "UPDATE steps SET checkpoint = ? WHERE remediation_id = ? AND position = ?",
                (json.dumps(checkpoint), remediation_id, position),
            )

        await self.write(job, shed=False, fenced=True)

    async def finish_step(
        self,
        remediation_id: int,
        position: int,
        *,
        result: StepResult,
        detail: str,
        data: dict[str, Any],
    ) -> None:
        def job(connection: Connection, now: float) -> None:
            connection.execute(
                "UPDATE steps SET result = ?, detail = ?, data = ?, ended_at = ?"
                " WHERE remediation_id = ? AND position = ?",
                (result.value, detail, json.dumps(data), now, remediation_id, position),
            )

        await self.write(job, shed=False, fenced=True)

    async def request_cancel(self, remediation_id: int) -> Remediation | None:
        def job(
            connection: Connection, now: float
        ) -> tuple[Remediation | None, list[JournalEvent]]:
            remediation = _load(connection, remediation_id)
            if remediation is not None and not remediation.progress.state.finished:
                connection.execute(
                    "UPDATE remediations SET cancel_requested = 1 WHERE id = ?", (remediation_id,)
                )
                return remediation, self._committing(connection, [CancelRequested(remediation_id)])
            return remediation, []

        remediation, events = await self.write(job, shed=False)
        for event in events:
            self._publish(event)
        return remediation

    async def decide_approval(self, remediation_id: int, *, approved: bool) -> Remediation | None:
        def job(
            connection: Connection, now: float
        ) -> tuple[Remediation | None, list[JournalEvent]]:
            remediation = _load(connection, remediation_id)
            if remediation is not None and _awaits_decision(remediation):
                connection.execute(
                    "UPDATE remediations SET approval = ? WHERE id = ?",
                    ("approved" if approved else "rejected", remediation_id),
                )
                return remediation, self._committing(
                    connection, [ApprovalDecided(remediation_id, approved)]
                )
            return remediation, []

        remediation, events = await self.write(job, shed=False)
        for event in events:
            self._publish(event)
        return remediation

    async def scale_backs(self) -> list[ScaleBack]:
        def query(connection: Connection) -> list[ScaleBack]:
            rows = connection.execute(
                "SELECT id, project, stage, service, scale_back FROM remediations"
                " WHERE scale_back IS NOT NULL ORDER BY id"
            ).fetchall()
            pending = []
            for remediation_id, project, stage, service, text in rows:
                saved = json.loads(text)
                if saved["state"] == ScaleBackState.DONE:
                    continue
                pending.append(
                    ScaleBack(
                        remediation_id=remediation_id,
                        service=ServiceRef(project=project, stage=stage, service=service),
                        state=ScaleBackState(saved["state"]),
                        due=saved["due"],
                        namespace=saved["namespace"],
                        deployment=saved["deployment"],
                        original=saved["original"],
                        scaled_to=saved["scaled_to"],
                        autoscaler=saved.get("autoscaler"),  # written since 0.2
                    )
                )
            return pending

        return await self.read(query)

    async def save_scale_back(self, scale_back: ScaleBack) -> None:
        def job(connection: Connection, now: float) -> None:
            connection.execute(
                "UPDATE remediations SET scale_back = ? WHERE id = ?",
                (json.dumps(scale_back.to_json()), scale_back.remediation_id),
            )

        await self.write(job, shed=False, fenced=True)

    async def remediations(
        self, *, limit: int = 100, **filters: str | None
    ) -> list[dict[str, Any]]:
        """The newest remediations, filtered by column (state, project, stage, service)."""
        where = [f"{name} = ?" for name, value in filters.items() if value is not None]
        values = [value for value in filters.values() if value is not None]
        sql = (
            "SELECT id FROM remediations"
            + (f" WHERE {' AND '.join(where)}" if where else "")
            + " ORDER BY id DESC LIMIT ?"
        )

        def query(connection: Connection) -> list[dict[str, Any]]:
            ids = [row[0] for row in connection.execute(sql, (*values, limit))]
            return [_timeline(connection, i, full=False) for i in ids]

        return await self.read(query)

    async def timeline(self, remediation_id: int) -> dict[str, Any] | None:
        def query(connection: Connection) -> dict[str, Any] | None:
            exists = connection.execute(
                "SELECT 1 FROM remediations WHERE id = ?", (remediation_id,)
            ).fetchone()
            return _timeline(connection, remediation_id, full=True) if exists else None

        return await self.read(query)

    # -- the writer thread -------------------------------------------------------------------

    def _connect(self, *, readonly: bool = False) -> sqlite3.Connection:
        if readonly:
            connection = sqlite3.connect(
                f"file:{self.path}?mode=ro",
                uri=True,
                timeout=self._busy_timeout,
                check_same_thread=False,
            )
        else:
            connection = sqlite3.connect(
                self.path,
                timeout=self._busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
        connection.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
        return connection

    def _open_writer(self) -> sqlite3.Connection:
        """The writer's connection, the schema brought up to date."""
        connection = self._connect()
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute(f"PRAGMA synchronous = {self._synchronous}")
        connection.execute("PRAGMA foreign_keys = ON")
        _migrate(connection)
        self._index.reload(connection)
        return connection

    def _write_loop(self, ready: concurrent.futures.Future[None]) -> None:
        try:
            connection = self._open_writer()
        except self._errors as e:
            ready.set_exception(JournalUnavailable(f"cannot open journal {self.where}: {e}"))
            return
        ready.set_result(None)
        try:
            while True:
                first = self._queue.get()
                if first is None:
                    break
                group = [first]
                stop = False
                while len(group) < _MAX_GROUP:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        stop = True
                        break
                    group.append(item)
                self._commit_group(connection, group)
                if stop:
                    break
        finally:
            connection.close()

    def _commit_group(self, connection: Connection, group: list[_Request]) -> None:
        started = time.perf_counter()
        try:
            outcomes = self._run(connection, group)
        except self._errors as e:
            self._reindex(connection)
            if len(group) > 1:
                # One bad write must not fail its neighbours: retry each on its own.
                for request in group:
                    self._commit_group(connection, [request])
                return
            logger.error("journal.write_failed", extra={"error": str(e), "store": self.where})
            _settle([(group[0], None, JournalUnavailable(f"journal write failed: {e}"))])
            return
        except Exception as e:  # a bug in a job: fail that request, keep the writer alive
            self._reindex(connection)
            logger.exception("journal.job_failed")
            if len(group) > 1:
                for request in group:
                    self._commit_group(connection, [request])
                return
            _settle([(group[0], None, e)])
            return
        self.commit_seconds(time.perf_counter() - started)
        _settle(
            [
                (request, result, error)
                for request, (result, error) in zip(group, outcomes, strict=True)
            ]
        )

    def _run(
        self, connection: Connection, group: list[_Request]
    ) -> list[tuple[Any, BaseException | None]]:
        """Run the group in one transaction; each request's (result, error)."""
        now = self._clock()
        connection.execute("BEGIN IMMEDIATE")
        try:
            results = [request.job(connection, now) for request in group]
            connection.execute("COMMIT")
        except BaseException:
            if isinstance(connection, sqlite3.Connection) and connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        return [(result, None) for result in results]

    # -- reading -----------------------------------------------------------------------------

    async def read(self, query: Callable[[Connection], T]) -> T:
        if self._readers is None:
            raise JournalUnavailable("the journal is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._readers, self._read, query)
        except self._errors as e:
            raise JournalUnavailable(f"journal read failed: {e}") from e

    def _read(self, query: Callable[[Connection], T]) -> T:
        connection: Connection | None = getattr(self._reader_local, "connection", None)
        if connection is None:
            connection = self._connect(readonly=True)
            connection.row_factory = sqlite3.Row
            self._reader_local.connection = connection
            with self._reader_lock:
                self._reader_connections.append(connection)
        return query(connection)

    @property
    def size_bytes(self) -> int:
        total = 0
        for suffix in ("", "-wal"):
            with contextlib.suppress(OSError):
                total += os.stat(self.path + suffix).st_size
        return total

    async def prune(self, cutoff: float) -> Pruned:
        total = Pruned()
        done = False
        while not done:  # oldest first: a delivery and its notifications share their age
            pruned, done = await self.write(
                lambda connection, now: _prune_deliveries(connection, cutoff), shed=False
            )
            total += pruned
        for prune_page in (_prune_remediations, _prune_problems):
            after: int | None = 0
            while after is not None:
                job = functools.partial(prune_page, cutoff=cutoff, after=after)
                pruned, after = await self.write(job, shed=False)
                total += pruned
        return total + await self.write(
            lambda connection, now: _prune_evaluations(connection, cutoff), shed=False
        )

    async def probe(self) -> None:
        """Raise JournalError unless a write can be committed now (for readiness): a real
        one — rewriting the schema version dirties a page — so a full disk shows, where an
        empty transaction would commit."""

        def job(connection: Connection, now: float) -> None:
            connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

        await self.write(job, shed=False)

    async def problems(
        self,
        *,
        project: str | None = None,
        stage: str | None = None,
        service: str | None = None,
        state: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        filters = {"project": project, "stage": stage, "service": service, "state": state}
        where = [f"{name} = ?" for name, value in filters.items() if value is not None]
        values = [value for value in filters.values() if value is not None]
        sql = (
            f"SELECT {_PROBLEM_COLUMNS} FROM problems"
            + (f" WHERE {' AND '.join(where)}" if where else "")
            + " ORDER BY id DESC LIMIT ?"
        )
        rows = await self.read(lambda c: c.execute(sql, (*values, limit)).fetchall())
        return [_problem(row) for row in rows]

    async def problem(
        self, key: ProblemKey, *, notifications: int = 50, before: int | None = None
    ) -> dict[str, Any] | None:
        """The newest occurrence of `key`, its earlier occurrences, and a page of its
        notifications, newest first: at most `notifications` of them, older than the id
        `before`. A read costs what it returns: each stored delivery is parsed once, and
        only for the notifications on the page."""

        def query(connection: Connection) -> dict[str, Any] | None:
            rows = connection.execute(
                f"SELECT {_PROBLEM_COLUMNS} FROM problems WHERE key = ? ORDER BY id DESC",
                (key,),
            ).fetchall()
            if not rows:
                return None
            problem = _problem(rows[0])
            problem["occurrences"] = [
                {
                    "id": r["id"],
                    "occurrence": r["occurrence"],
                    "state": r["state"],
                    "first_seen": iso(r["first_seen"]),
                    "resolved_at": iso(r["resolved_at"]),
                }
                for r in rows
            ]
            ((total,),) = connection.execute(
                "SELECT COUNT(*) FROM notifications WHERE problem_id = ?", (problem["id"],)
            )
            page = connection.execute(
                "SELECT id, received_at, signal, outcome, reason, position, source, delivery_id"
                " FROM notifications WHERE problem_id = ? AND id < ? ORDER BY id DESC LIMIT ?",
                (problem["id"], before if before is not None else 1 << 62, notifications),
            ).fetchall()
            bodies: dict[int, Any] = {}
            for row in page:
                if row["delivery_id"] not in bodies:
                    (text,) = connection.execute(
                        "SELECT body FROM deliveries WHERE id = ?", (row["delivery_id"],)
                    ).fetchone()
                    bodies[row["delivery_id"]] = _parsed(text)
            problem["notifications"] = [_notification(row, bodies) for row in page]
            problem["notifications_total"] = total
            if len(page) == notifications and page:
                problem["notifications_next"] = page[-1]["id"]  # ?before= for the next page
            return problem

        return await self.read(query)

    async def notifications(
        self, *, outcome: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Recent notifications, newest first: how to see what was ignored and why."""
        sql = (
            "SELECT n.id, n.received_at, n.source, n.key, n.signal, n.outcome, n.reason,"
            " n.problem_id, n.position FROM notifications n"
            + (" WHERE n.outcome = ?" if outcome else "")
            + " ORDER BY n.id DESC LIMIT ?"
        )
        args = (outcome, limit) if outcome else (limit,)
        rows = await self.read(lambda c: c.execute(sql, args).fetchall())
        return [
            {
                "id": r["id"],
                "received_at": iso(r["received_at"]),
                "source": r["source"],
                "key": r["key"],
                "signal": r["signal"],
                "outcome": r["outcome"],
                "reason": r["reason"],
                "problem_id": r["problem_id"],
            }
            for r in rows
        ]


@dataclasses.dataclass(frozen=True, slots=True)
class _OpenProblem:
    id: int
    ignored_reason: str | None
    remediation_id: int | None  # the remediation it started or joined


_ServiceKey = tuple[str, str, str]


def _service_key(ref: ServiceRef) -> _ServiceKey:
    return (ref.project, ref.stage, ref.service)


class OpenIndex(Protocol):
    """Open problems, remediations under way and new ids, as one transaction sees them."""

    def current(self, key: tuple[str, str]) -> _OpenProblem | None: ...

    def active_of(self, ref: ServiceRef) -> dict[str, int]:
        """Rule → remediation under way, of a service (the caller may add to it)."""
        ...

    def opened(
        self,
        key: tuple[str, str],
        problem_id: int,
        ignored_reason: str | None,
        remediation_id: int | None,
    ) -> None: ...

    def resolved(self, key: tuple[str, str]) -> int: ...

    def take_problem_id(self) -> int: ...

    def take_delivery_id(self) -> int: ...


class _OpenIndex:
    """The writer's memory of open problems, active remediations and the next ids, mirrored
    from the database.

    The writer is the only writer, so the mirror stays exact; after a rolled-back
    transaction it is rebuilt from what the database holds.
    """

    def __init__(self) -> None:
        self.open: dict[tuple[str, str], _OpenProblem] = {}
        self.active: dict[_ServiceKey, dict[str, int]] = {}  # service → rule → remediation
        self.members: dict[int, int] = {}  # remediation → how many of its problems are open
        self._next_problem_id = 1
        self._next_delivery_id = 1

    def reload(self, connection: Connection) -> None:
        self.open = {
            (source, key): _OpenProblem(id=problem_id, ignored_reason=reason, remediation_id=rid)
            for source, key, problem_id, reason, rid in connection.execute(
                "SELECT p.source, p.key, p.id, p.ignored_reason, COALESCE(p.remediation_id, r.id)"
                " FROM problems p LEFT JOIN remediations r ON r.problem_id = p.id"
                " WHERE p.state = 'open'"
            )
        }
        self.members = {}
        for problem in self.open.values():
            if problem.remediation_id is not None:
                self.members[problem.remediation_id] = (
                    self.members.get(problem.remediation_id, 0) + 1
                )
        self.active = {}
        for rid, project, stage, service, rule in connection.execute(
            "SELECT id, project, stage, service, json_extract(plan, '$.rule') FROM remediations"
            f" WHERE state IN {_UNDER_WAY} ORDER BY id"
        ):
            self.active.setdefault((project, stage, service), {}).setdefault(rule, rid)
        ((problems,),) = connection.execute("SELECT COALESCE(MAX(id), 0) FROM problems")
        ((deliveries,),) = connection.execute("SELECT COALESCE(MAX(id), 0) FROM deliveries")
        self._next_problem_id, self._next_delivery_id = problems + 1, deliveries + 1

    def current(self, key: tuple[str, str]) -> _OpenProblem | None:
        return self.open.get(key)

    def active_of(self, ref: ServiceRef) -> dict[str, int]:
        return self.active.setdefault(_service_key(ref), {})

    def opened(
        self,
        key: tuple[str, str],
        problem_id: int,
        ignored_reason: str | None,
        remediation_id: int | None,
    ) -> None:
        self.open[key] = _OpenProblem(
            id=problem_id, ignored_reason=ignored_reason, remediation_id=remediation_id
        )
        if remediation_id is not None:
            self.members[remediation_id] = self.members.get(remediation_id, 0) + 1

    def resolved(self, key: tuple[str, str]) -> int:
        """Forget an open problem; how many of its remediation's problems are still open."""
        problem = self.open.pop(key)
        if problem.remediation_id is None:
            return 0
        left = self.members.get(problem.remediation_id, 1) - 1
        if left:
            self.members[problem.remediation_id] = left
        else:
            self.members.pop(problem.remediation_id, None)
        return left

    def finished(self, remediation_id: int) -> None:
        for rules in self.active.values():
            for rule, rid in list(rules.items()):
                if rid == remediation_id:
                    del rules[rule]

    def take_problem_id(self) -> int:
        self._next_problem_id += 1
        return self._next_problem_id - 1

    def take_delivery_id(self) -> int:
        self._next_delivery_id += 1
        return self._next_delivery_id - 1


class _Writes:
    """Statements to run in order, consecutive runs of the same one sent as one executemany.

    Rows marked `last` (the notifications) go after everything else, which they refer to.
    """

    def __init__(self) -> None:
        self._runs: list[tuple[str, list[tuple[Any, ...]]]] = []
        self._last: list[tuple[str, list[tuple[Any, ...]]]] = []

    def add(self, sql: str, row: tuple[Any, ...], *, last: bool = False) -> None:
        runs = self._last if last else self._runs
        if runs and runs[-1][0] == sql:
            runs[-1][1].append(row)
        else:
            runs.append((sql, [row]))

    def flush(self, connection: Connection) -> None:
        for sql, rows in (*self._runs, *self._last):
            connection.executemany(sql, rows)
        self._runs.clear()
        self._last.clear()


def _settle(outcomes: list[tuple[_Request, Any, BaseException | None]]) -> None:
    """Hand results to their event loops: one wake-up per loop and group, not per request."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Request, Any, BaseException | None]]]
    by_loop = {}
    for outcome in outcomes:
        by_loop.setdefault(outcome[0].loop, []).append(outcome)

    def settle(items: list[tuple[_Request, Any, BaseException | None]]) -> None:
        for request, result, error in items:
            if request.future.done():
                continue
            if error is not None:
                request.future.set_exception(error)
            else:
                request.future.set_result(result)

    for loop, items in by_loop.items():
        # A closed loop means nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, items)


def _take_lock(path: str) -> IO[str] | None:
    """An exclusive lock on `path`.lock for as long as the journal is open: the writer's
    in-memory index assumes it is the only writer, so a second receiver on the same file
    must not start (the OS drops the lock of a process that dies, even by SIGKILL)."""
    if path == ":memory:":
        return None
    lock_path = f"{path}.lock"
    try:
        lock = open(lock_path, "a+", encoding="utf-8")  # noqa: SIM115 - held while open
    except OSError as e:
        raise JournalUnavailable(f"cannot open journal {path}: {e}") from e
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "another process"
        lock.close()
        raise JournalUnavailable(
            f"the journal {path} is in use by {holder} (it holds {lock_path}): run one"
            " receiver per journal (several replicas need a shared journal on PostgreSQL)"
        ) from None
    lock.seek(0)
    lock.truncate()
    lock.write(f"receiver pid {os.getpid()}")
    lock.flush()
    return lock


def _migrate(connection: sqlite3.Connection) -> None:
    """Create the schema, or bring a journal of an earlier version up to this one."""
    ((version,),) = connection.execute("PRAGMA user_version")
    if version > SCHEMA_VERSION:
        raise sqlite3.DatabaseError(
            f"the journal is of schema version {version}, newer than this receiver's"
            f" ({SCHEMA_VERSION}): run the newer receiver, or start on an empty journal"
        )
    connection.executescript(_SCHEMA)  # the tables of version 1, where missing
    connection.execute("BEGIN IMMEDIATE")
    for step in range(max(version, 1) + 1, SCHEMA_VERSION + 1):
        for statement in _MIGRATIONS[step]:
            connection.execute(statement)
    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    connection.execute("COMMIT")


def _prune_deliveries(connection: Connection, cutoff: float) -> tuple[Pruned, bool]:
    """One batch of the oldest deliveries received before `cutoff`, with their notifications
    (whatever their problem: its row keeps the counts); done when none older is left."""
    rows = connection.execute(
        "SELECT id, received_at FROM deliveries ORDER BY id LIMIT ?", (_PRUNE_BATCH,)
    ).fetchall()
    old = list(itertools.takewhile(lambda row: row[1] < cutoff, rows))
    if not old:
        return Pruned(), True
    last = old[-1][0]
    notifications = connection.execute(
        "DELETE FROM notifications WHERE delivery_id <= ?", (last,)
    ).rowcount
    deliveries = connection.execute("DELETE FROM deliveries WHERE id <= ?", (last,)).rowcount
    return Pruned(deliveries=deliveries, notifications=notifications), len(old) < _PRUNE_BATCH


def _prune_remediations(
    connection: Connection, _now: float, *, cutoff: float, after: int
) -> tuple[Pruned, int | None]:
    """Finished remediations among the next batch created before `cutoff` (by id, from
    `after`): those that ended before it, have no scale-back left to do, and whose every
    problem is closed and quiet since before it. Returns where the next batch starts (None:
    no more)."""
    rows = connection.execute(
        "SELECT id, state, ended_at, scale_back FROM remediations WHERE id > ? AND created_at < ?"
        " ORDER BY id LIMIT ?",
        (after, cutoff, _PRUNE_BATCH),
    ).fetchall()
    if not rows:
        return Pruned(), None
    ended = [
        remediation_id
        for remediation_id, state, ended_at, scale_back in rows
        if state in _FINISHED
        and ended_at is not None
        and ended_at < cutoff
        and (scale_back is None or json.loads(scale_back)["state"] == ScaleBackState.DONE)
    ]
    pruned = Pruned()
    for remediation_id in ended:
        problems = connection.execute(
            f"SELECT id, state, last_seen FROM problems WHERE {_PROBLEMS_OF}",
            (remediation_id, remediation_id),
        ).fetchall()
        if any(state == ProblemState.OPEN.value or seen >= cutoff for _, state, seen in problems):
            continue  # a problem it was for is open, or was heard of lately: it stays
        connection.execute("DELETE FROM steps WHERE remediation_id = ?", (remediation_id,))
        connection.execute(  # the evaluation stays: the history relative criteria compare with
            "UPDATE evaluations SET remediation_id = NULL WHERE remediation_id = ?",
            (remediation_id,),
        )
        connection.execute(
            "UPDATE problems SET remediation_id = NULL WHERE remediation_id = ?", (remediation_id,)
        )
        connection.execute("DELETE FROM remediations WHERE id = ?", (remediation_id,))
        gone = [problem_id for problem_id, _, _ in problems]
        pruned += Pruned(remediations=1) + _delete_problems(connection, gone)
    return pruned, rows[-1][0]


def _prune_problems(
    connection: Connection, _now: float, *, cutoff: float, after: int
) -> tuple[Pruned, int | None]:
    """Closed problems without a remediation, quiet since before `cutoff`, among the next
    batch first seen before it (by id, from `after`)."""
    rows = connection.execute(
        "SELECT id, state, last_seen, remediation_id,"
        " EXISTS (SELECT 1 FROM remediations WHERE problem_id = problems.id)"
        " FROM problems WHERE id > ? AND first_seen < ? ORDER BY id LIMIT ?",
        (after, cutoff, _PRUNE_BATCH),
    ).fetchall()
    if not rows:
        return Pruned(), None
    gone = [
        problem_id
        for problem_id, state, last_seen, remediation_id, has_remediation in rows
        if state != ProblemState.OPEN.value
        and last_seen < cutoff
        and remediation_id is None
        and not has_remediation
    ]
    return _delete_problems(connection, gone), rows[-1][0]


def _delete_problems(connection: Connection, problems: Sequence[int]) -> Pruned:
    notifications = problems_deleted = 0
    for problem_id in problems:
        notifications += connection.execute(
            "DELETE FROM notifications WHERE problem_id = ?", (problem_id,)
        ).rowcount
        problems_deleted += connection.execute(
            "DELETE FROM problems WHERE id = ?", (problem_id,)
        ).rowcount
    return Pruned(notifications=notifications, problems=problems_deleted)


def _prune_evaluations(connection: Connection, cutoff: float) -> Pruned:
    """Evaluations made before `cutoff`, except the newest EVALUATIONS_KEPT of each service."""
    deleted = connection.execute(
        "DELETE FROM evaluations WHERE created_at < ? AND remediation_id IS NULL AND id NOT IN"
        " (SELECT kept.id FROM evaluations AS kept WHERE kept.project = evaluations.project"
        " AND kept.stage = evaluations.stage AND kept.service = evaluations.service"
        " ORDER BY kept.id DESC LIMIT ?)",
        (cutoff, EVALUATIONS_KEPT),
    ).rowcount
    return Pruned(evaluations=deleted)


def _create_remediation(
    connection: Connection, problem_id: int, ref: ServiceRef, plan: Plan, now: float
) -> int:
    (remediation_id,) = connection.execute(
        "INSERT INTO remediations (problem_id, project, stage, service, plan, state, phase,"
        " created_at) VALUES (?, ?, ?, ?, ?, 'pending', 'queued', ?) RETURNING id",
        (problem_id, ref.project, ref.stage, ref.service, json.dumps(plan.to_json()), now),
    ).fetchone()
    return int(remediation_id)


def previous_evaluations(
    connection: Connection, ref: ServiceRef, *, results: Sequence[str], limit: int
) -> list[tuple[str, dict[str, float | None]]]:
    """Newest first, filtered by result before the newest `limit` are taken (as Keptn did)."""
    marks = ", ".join("?" for _ in results)
    rows = connection.execute(
        "SELECT result, sli_values FROM evaluations WHERE project = ? AND stage = ?"
        f" AND service = ? AND result IN ({marks}) ORDER BY id DESC LIMIT ?",
        (ref.project, ref.stage, ref.service, *results, limit),
    ).fetchall()
    return [(result, json.loads(values)) for result, values in rows]


@contextlib.contextmanager
def read_only(path: str) -> Iterator[Connection]:
    """The journal at `path`, read-only, for tools that run beside the service; what fails
    (no file, not a journal, one without evaluations) is JournalUnavailable."""
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            yield connection
        finally:
            connection.close()
    except sqlite3.Error as e:
        raise JournalUnavailable(f"cannot read the journal {path}: {e}") from e


def open_problems_of(connection: Connection, ref: ServiceRef) -> int:
    ((count,),) = connection.execute(
        "SELECT count(*) FROM problems WHERE project = ? AND stage = ? AND service = ?"
        " AND state = 'open'",
        (ref.project, ref.stage, ref.service),
    )
    return int(count)


_REMEDIATION_COLUMNS = (
    "id, problem_id, project, stage, service, plan, state, phase, step, phase_until,"
    " cancel_requested, reason, approval"
)


def _load(connection: Connection, remediation_id: int) -> Remediation | None:
    row = connection.execute(
        f"SELECT {_REMEDIATION_COLUMNS} FROM remediations WHERE id = ?", (remediation_id,)
    ).fetchone()
    return _remediation(connection, row) if row else None


def _awaits_decision(remediation: Remediation) -> bool:
    return remediation.progress.phase is Phase.AWAITING_APPROVAL and remediation.approval is None


def _remediation(connection: Connection, row: Any) -> Remediation:
    steps = {
        position: StepRecord(
            position=position,
            action=action,
            result=StepResult(result),
            checkpoint=json.loads(checkpoint) if checkpoint else None,
            verdict=Verdict(verdict) if verdict else None,
            ended_at=ended_at,
        )
        for position, action, result, checkpoint, verdict, ended_at in connection.execute(
            "SELECT position, action, result, checkpoint, verdict, ended_at FROM steps"
            " WHERE remediation_id = ? ORDER BY position",
            (row[0],),
        )
    }
    return Remediation(
        id=row[0],
        problem_id=row[1],
        service=ServiceRef(project=row[2], stage=row[3], service=row[4]),
        plan=Plan.from_json(json.loads(row[5])),
        progress=Progress(
            state=RemediationState(row[6]),
            phase=Phase(row[7]),
            position=row[8],
            until=row[9],
            reason=row[11],
        ),
        cancel_requested=bool(row[10]),
        steps=steps,
        approval=None if row[12] is None else row[12] == "approved",
    )


def _timeline(connection: Connection, remediation_id: int, *, full: bool) -> dict[str, Any]:
    row = connection.execute(
        "SELECT r.id, r.project, r.stage, r.service, r.plan, r.state, r.phase, r.step,"
        " r.phase_until, r.reason, r.created_at, r.started_at, r.ended_at, r.cancel_requested,"
        " p.key, p.source, p.title, p.state, r.approval FROM remediations r"
        " JOIN problems p ON p.id = r.problem_id WHERE r.id = ?",
        (remediation_id,),
    ).fetchone()
    plan = json.loads(row[4])
    evaluations: dict[int, dict[str, Any]] = {}
    for judged, result, score, detail, start, end in connection.execute(
        "SELECT step, result, score, detail, window_start, window_end FROM evaluations"
        " WHERE remediation_id = ? ORDER BY id",
        (remediation_id,),
    ):
        evaluation = {
            "result": result,
            "score": score,
            "window": {"start": iso(start), "end": iso(end)},
        }
        if full:
            evaluation |= json.loads(detail)
        evaluations[judged] = evaluation
    steps = []
    for (
        position,
        action,
        value,
        result,
        detail,
        data,
        verdict,
        started,
        ended,
    ) in connection.execute(
        "SELECT position, action, input, result, detail, data, verdict, started_at, ended_at"
        " FROM steps WHERE remediation_id = ? ORDER BY position",
        (remediation_id,),
    ):
        step: dict[str, Any] = {
            "position": position,
            "action": action,
            "input": json.loads(value),
            "result": result,
            "detail": detail,
            "verdict": verdict,
            "started_at": iso(started),
            "ended_at": iso(ended),
            "duration_seconds": None if ended is None else round(ended - started, 3),
            "evaluation": evaluations.get(position),
        }
        if full:
            step["data"] = json.loads(data) if data else None
        steps.append(step)
    document: dict[str, Any] = {
        "id": row[0],
        "problem_key": row[14],
        "source": row[15],
        "title": row[16],
        "problem_state": row[17],
        "project": row[1],
        "stage": row[2],
        "service": row[3],
        "rule": plan.get("rule"),
        "rule_file": plan.get("rule_file"),
        "state": row[5],
        "phase": row[6],
        "reason": row[9],
        "created_at": iso(row[10]),
        "started_at": iso(row[11]),
        "ended_at": iso(row[12]),
        "steps": steps,
    }
    if plan.get("approval") == "manual":
        document["approval"] = {
            "required": True,
            "decision": row[18],  # approved | rejected | None
            "until": iso(row[8]) if row[6] == Phase.AWAITING_APPROVAL else None,
        }
    ((joined, joined_open),) = connection.execute(
        "SELECT COUNT(*), COALESCE(SUM(CASE WHEN state = 'open' THEN 1 ELSE 0 END), 0)"
        " FROM problems WHERE remediation_id = ?",
        (remediation_id,),
    )
    document["joined"] = {"problems": joined, "open": joined_open}
    if full:
        document |= {
            "plan": plan,
            "current_step": row[7],
            "phase_until": iso(row[8]),
            "cancel_requested": bool(row[13]),
            "joined_problems": [  # the first ones; `joined.problems` counts them all
                {"key": key, "title": title, "state": state, "first_seen": iso(seen)}
                for key, title, state, seen in connection.execute(
                    "SELECT key, title, state, first_seen FROM problems WHERE remediation_id = ?"
                    " ORDER BY id LIMIT ?",
                    (remediation_id, _JOINED_SHOWN),
                )
            ],
        }
    return document


def _problem(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "key": row["key"],
        "source": row["source"],
        "occurrence": row["occurrence"],
        "title": row["title"],
        "state": row["state"],
        "project": row["project"],
        "stage": row["stage"],
        "service": row["service"],
        "url": row["url"],
        "repeats": row["repeats"],
        "first_seen": iso(row["first_seen"]),
        "last_seen": iso(row["last_seen"]),
        "resolved_at": iso(row["resolved_at"]),
        "ignored_reason": row["ignored_reason"],
    }


def _parsed(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # what Python's json cannot read, msgspec may have
        return None


def _notification(row: Any, bodies: dict[int, Any]) -> dict[str, Any]:
    body = bodies[row["delivery_id"]]
    alerts = body.get("alerts") if isinstance(body, dict) else None
    if row["source"] == Source.ALERTMANAGER.value and isinstance(alerts, list):
        position = row["position"]
        payload = alerts[position] if 0 <= position < len(alerts) else None  # one of a group
    else:
        payload = body
    return {
        "id": row["id"],
        "received_at": iso(row["received_at"]),
        "signal": row["signal"],
        "outcome": row["outcome"],
        "reason": row["reason"],
        "payload": payload,
    }
