"""The durable journal, behind one interface: webhook intake, the remediations' progress, the
evaluation history and the reads the API serves.

    Intake            record a delivery and what it does to problems (2xx only once committed)
    RemediationStore  what the engine loads, saves before every effect, and is told of
    Reads             what the API and the CLI show

`open_journal(url)` picks the backend: a path is SQLite (sqlite.py, the default; one writer
process), a postgresql:// URL is PostgreSQL (postgres.py; several replicas share it). No
caller above this package sees a database driver or a row: errors are JournalError, results
are values from receiver.models and receiver.remediation.model.

    Leadership        who may act: the engine runs only while its process leads, and the
                      engine's writes are fenced (refused once another process took over)

The engine is fed from the journal, not from the HTTP handler: after a commit, the journal
publishes what it changed (`JournalEvent`) to its subscribers, so that the process that acts
learns of new, resolved and cancelled remediations wherever they were recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import socket
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from receiver.models import Notification, ProblemKey, ProblemState, Recorded, ServiceRef, Source
from receiver.remediation.model import (
    Decision,
    Judgement,
    Progress,
    Remediation,
    ScaleBack,
    StepResult,
)

# -- what the journal tells its subscribers ----------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class RemediationCreated:
    remediation_id: int
    problem_id: int
    service: ServiceRef


@dataclasses.dataclass(frozen=True, slots=True)
class ProblemResolved:
    """A problem of a remediation (its own, or one that joined it) was resolved; `open_left`
    of its problems are still open (0: every problem it was for is resolved)."""

    problem_id: int
    remediation_id: int
    open_left: int
    expired: bool = False  # closed by the receiver for want of notifications, not resolved


@dataclasses.dataclass(frozen=True, slots=True)
class CancelRequested:
    remediation_id: int


@dataclasses.dataclass(frozen=True, slots=True)
class ApprovalDecided:
    remediation_id: int
    approved: bool


@dataclasses.dataclass(frozen=True, slots=True)
class Resync:
    """Events may have been missed (the connection that brings them was lost): whoever acts
    reads what is under way again."""


JournalEvent = RemediationCreated | ProblemResolved | CancelRequested | ApprovalDecided | Resync


class Leadership(Protocol):
    """Who may act. Every replica records webhooks and serves reads; only the leader runs
    remediations, and the journal refuses the engine's writes (JournalFenced) from a process
    that no longer leads."""

    @property
    def leading(self) -> bool: ...

    async def acquire(self, *, wait: bool = True) -> bool:
        """Return once this process leads (True); without `wait`, after one try (whether
        it leads)."""
        ...

    async def lost(self) -> None:
        """Return once this process no longer leads (it may acquire again)."""
        ...

    async def release(self) -> None:
        """Step down, so that another replica takes over at once."""
        ...


class Solo:
    """The only process on its journal (SQLite, held under a file lock): it leads from the
    start and never loses it."""

    leading = True

    async def acquire(self, *, wait: bool = True) -> bool:
        return True

    async def lost(self) -> None:
        await asyncio.Event().wait()  # never

    async def release(self) -> None:
        return None


class Intake(Protocol):
    async def record(
        self,
        delivery: bytes,
        notifications: Sequence[Notification],
        *,
        decisions: Sequence[Decision],
        source: Source,
    ) -> tuple[Recorded, ...]:
        """Commit one delivery and what each notification does; returns once durable."""
        ...

    async def probe(self) -> None:
        """Raise JournalError unless a write can be committed now (for readiness)."""
        ...


class RemediationStore(Protocol):
    def subscribe(self) -> asyncio.Queue[JournalEvent]:
        """Every JournalEvent committed from now on, in commit order."""
        ...

    async def unfinished(self) -> list[Remediation]: ...

    async def load(self, remediation_id: int) -> Remediation | None: ...

    async def save(
        self,
        remediation_id: int,
        progress: Progress,
        judgement: Judgement | None = None,
        *,
        scale_back: ScaleBack | None = None,
    ) -> None:
        """Commit `progress` — with a verdict on one step, a scale-back planned when it
        healed — in one transaction, before the next effect runs."""
        ...

    async def problem_state(self, problem_id: int) -> ProblemState: ...

    async def expire_stale(self, cutoff: float, *, stale_after: float) -> int:
        """Close as expired every open problem whose last notification came before `cutoff`;
        how many."""
        ...

    async def unresolved_problems(self, remediation_id: int) -> int:
        """How many of the problems a remediation is for (its own and those that joined it)
        are still open."""
        ...

    async def last_ended(self, service: ServiceRef) -> float | None:
        """When the service's newest finished remediation ended (for the cooldown)."""
        ...

    async def next_position(self, remediation_id: int) -> int: ...

    async def start_step(self, remediation_id: int, position: int, action: str, value: Any) -> None:
        """Journal that a step is about to run (a no-op if it already was)."""
        ...

    async def save_checkpoint(
        self, remediation_id: int, position: int, checkpoint: dict[str, Any]
    ) -> None: ...

    async def finish_step(
        self,
        remediation_id: int,
        position: int,
        *,
        result: StepResult,
        detail: str,
        data: dict[str, Any],
    ) -> None: ...

    async def request_cancel(self, remediation_id: int) -> Remediation | None:
        """Mark a remediation for cancelling; it as it was (None: there is no such one)."""
        ...

    async def decide_approval(self, remediation_id: int, *, approved: bool) -> Remediation | None:
        """Record a person's decision on a remediation that awaits approval; it as it was
        (None: there is no such one). Nothing is recorded unless it awaits approval and
        nobody decided yet."""
        ...

    async def scale_backs(self) -> list[ScaleBack]:
        """Every scale-back still to come."""
        ...

    async def save_scale_back(self, scale_back: ScaleBack) -> None: ...

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
    ) -> int: ...

    async def previous_evaluations(
        self, ref: ServiceRef, *, results: Sequence[str], limit: int
    ) -> list[tuple[str, dict[str, float | None]]]:
        """(result, values) of the newest `limit` evaluations whose result is in `results`."""
        ...

    async def timeline(self, remediation_id: int) -> dict[str, Any] | None: ...


class Reads(Protocol):
    async def problems(
        self,
        *,
        project: str | None = None,
        stage: str | None = None,
        service: str | None = None,
        state: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]: ...

    async def problem(
        self, key: ProblemKey, *, notifications: int = 50, before: int | None = None
    ) -> dict[str, Any] | None:
        """The newest occurrence of `key` with a page of its notifications, newest first."""
        ...

    async def notifications(
        self, *, outcome: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]: ...

    async def remediations(
        self, *, limit: int = 100, **filters: str | None
    ) -> list[dict[str, Any]]: ...

    async def timeline(self, remediation_id: int) -> dict[str, Any] | None: ...


@dataclasses.dataclass(frozen=True, slots=True)
class Pruned:
    """What one retention round removed."""

    deliveries: int = 0
    notifications: int = 0
    problems: int = 0
    remediations: int = 0
    evaluations: int = 0

    def __add__(self, other: Pruned) -> Pruned:
        return Pruned(
            *(
                a + b
                for a, b in zip(dataclasses.astuple(self), dataclasses.astuple(other), strict=True)
            )
        )


class Retention(Protocol):
    async def prune(self, cutoff: float) -> Pruned:
        """Remove what ended before `cutoff`, in small transactions that let intake through:
        delivered bodies and their notifications; closed problems; finished remediations
        (no scale-back waiting, every problem closed) with their steps; evaluations beyond
        the newest EVALUATIONS_KEPT of a service (the history relative criteria compare with)."""
        ...


EVALUATIONS_KEPT = 100  # per service, whatever their age: Keptn's comparisons look this far back


class Journal(Intake, RemediationStore, Reads, Retention, Protocol):
    """Everything the receiver keeps, with its life cycle and the numbers it is watched by."""

    commit_seconds: Callable[[float], None]

    @property
    def open_problems(self) -> int: ...

    @property
    def pending(self) -> int: ...

    @property
    def size_bytes(self) -> int:
        """What the journal takes on disk."""
        ...

    backend: str  # sqlite | postgresql
    where: str  # the file, or the database (without credentials): for logs and /readyz

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    def leadership(self, identity: str, lease: float) -> Leadership:
        """Who acts on this journal: `identity` names this process, `lease` is how long a
        leader that stopped renewing (dead, paused, cut off) keeps it."""
        ...


def replica_identity() -> str:
    """This process among the replicas: the pod's name (POD_NAME, from the downward API) or
    the host's, and the process id."""
    return f"{os.environ.get('POD_NAME') or socket.gethostname()}/{os.getpid()}"


def is_postgresql(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def open_journal(
    url: str,
    *,
    synchronous: str = "full",
    max_pending: int = 1000,
    busy_timeout: float = 5.0,
    max_queued_per_service: int = 3,
    password_file: str | None = None,
    clock: Callable[[], float],
) -> Journal:
    """The journal at `url` (not opened yet): a postgresql:// URL is PostgreSQL (the password
    from the URL, `password_file`, PGPASSWORD or a passfile; TLS as libpq's sslmode,
    sslrootcert, … in the URL), anything else a SQLite file."""
    if is_postgresql(url):
        from receiver.journal import postgres  # imports psycopg: only when it is used

        return postgres.PostgresJournal(
            url,
            max_pending=max_pending,
            busy_timeout=busy_timeout,
            max_queued_per_service=max_queued_per_service,
            password_file=password_file,
            clock=clock,
        )
    from receiver.journal import sqlite  # the backend imports this module's interface

    return sqlite.SQLiteJournal(
        url,
        synchronous=synchronous,
        max_pending=max_pending,
        busy_timeout=busy_timeout,
        max_queued_per_service=max_queued_per_service,
        clock=clock,
    )


def read_history(
    url: str, ref: ServiceRef, *, results: Sequence[str], limit: int
) -> list[tuple[str, dict[str, float | None]]]:
    """Evaluation history for tools beside the service, read-only; JournalUnavailable when
    there is no journal (or none with evaluations) at `url`."""
    from receiver.journal import sqlite  # the statements, for either backend

    with _read_only(url) as connection:
        return sqlite.previous_evaluations(connection, ref, results=results, limit=limit)


def read_open_problems(url: str, ref: ServiceRef) -> int:
    """Open problems of `ref`, read-only, for tools beside the service; JournalUnavailable
    when there is no journal at `url`."""
    from receiver.journal import sqlite

    with _read_only(url) as connection:
        return sqlite.open_problems_of(connection, ref)


def _read_only(url: str) -> contextlib.AbstractContextManager[Any]:
    if is_postgresql(url):
        from receiver.journal import postgres

        return postgres.read_only(url)
    from receiver.journal import sqlite

    return sqlite.read_only(url)
