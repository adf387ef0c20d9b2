"""Remediations in the journal: their state, their steps, and the timeline the API shows.

Every change is committed before the engine moves on, so that after a restart every
unfinished remediation can resume where it was (see engine.py).
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from typing import Any

from receiver.journal import Journal, iso
from receiver.models import RemediationState, ServiceRef


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Step:
    position: int
    action: str
    result: str  # started | succeeded | failed
    checkpoint: dict[str, Any] | None
    verdict: str | None


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Remediation:
    id: int
    problem_id: int
    service: ServiceRef
    plan: dict[str, Any]
    state: RemediationState
    phase: str
    step: int
    phase_until: float | None
    cancel_requested: bool
    steps: dict[int, Step]


_COLUMNS = (
    "id, problem_id, project, stage, service, plan, state, phase, step, phase_until,"
    " cancel_requested"
)


def _remediation(connection: sqlite3.Connection, row: Any) -> Remediation:
    steps = {
        position: Step(
            position=position,
            action=action,
            result=result,
            checkpoint=json.loads(checkpoint) if checkpoint else None,
            verdict=verdict,
        )
        for position, action, result, checkpoint, verdict in connection.execute(
            "SELECT position, action, result, checkpoint, verdict FROM steps"
            " WHERE remediation_id = ? ORDER BY position",
            (row[0],),
        )
    }
    return Remediation(
        id=row[0],
        problem_id=row[1],
        service=ServiceRef(project=row[2], stage=row[3], service=row[4]),
        plan=json.loads(row[5]),
        state=RemediationState(row[6]),
        phase=row[7],
        step=row[8],
        phase_until=row[9],
        cancel_requested=bool(row[10]),
        steps=steps,
    )


async def unfinished(journal: Journal) -> list[Remediation]:
    def query(connection: sqlite3.Connection) -> list[Remediation]:
        rows = connection.execute(
            f"SELECT {_COLUMNS} FROM remediations WHERE state IN ('pending', 'running') ORDER BY id"
        ).fetchall()
        return [_remediation(connection, row) for row in rows]

    return await journal.read(query)


async def load(journal: Journal, remediation_id: int) -> Remediation | None:
    def query(connection: sqlite3.Connection) -> Remediation | None:
        row = connection.execute(
            f"SELECT {_COLUMNS} FROM remediations WHERE id = ?", (remediation_id,)
        ).fetchone()
        return _remediation(connection, row) if row else None

    return await journal.read(query)


async def update(journal: Journal, remediation_id: int, **fields: Any) -> None:
    """Set columns of a remediation; `started_at`/`ended_at` = True mean "now"."""

    def job(connection: sqlite3.Connection, now: float) -> None:
        values = {k: (now if v is True and k.endswith("_at") else v) for k, v in fields.items()}
        values = {k: (v.value if isinstance(v, RemediationState) else v) for k, v in values.items()}
        assignments = ", ".join(f"{name} = ?" for name in values)
        connection.execute(
            f"UPDATE remediations SET {assignments} WHERE id = ?",
            (*values.values(), remediation_id),
        )

    await journal.write(job, shed=False)


async def start_step(
    journal: Journal, remediation_id: int, position: int, action: str, value: Any
) -> None:
    def job(connection: sqlite3.Connection, now: float) -> None:
        connection.execute(
            "INSERT INTO steps (remediation_id, position, action, input, result, started_at)"
            " VALUES (?, ?, ?, ?, 'started', ?) ON CONFLICT (remediation_id, position) DO NOTHING",
            (remediation_id, position, action, json.dumps(value), now),
        )
        connection.execute(
            "UPDATE remediations SET phase = 'action', step = ? WHERE id = ?",
            (position, remediation_id),
        )

    await journal.write(job, shed=False)


async def save_checkpoint(
    journal: Journal, remediation_id: int, position: int, checkpoint: dict[str, Any]
) -> None:
    await _step_update(journal, remediation_id, position, checkpoint=json.dumps(checkpoint))


async def finish_step(
    journal: Journal,
    remediation_id: int,
    position: int,
    *,
    result: str,
    detail: str,
    data: dict[str, Any],
) -> None:
    await _step_update(
        journal,
        remediation_id,
        position,
        result=result,
        detail=detail,
        data=json.dumps(data),
        ended_at=True,
    )


async def set_verdict(journal: Journal, remediation_id: int, position: int, verdict: str) -> None:
    await _step_update(journal, remediation_id, position, verdict=verdict)


async def _step_update(journal: Journal, remediation_id: int, position: int, **fields: Any) -> None:
    def job(connection: sqlite3.Connection, now: float) -> None:
        values = {k: (now if v is True else v) for k, v in fields.items()}
        assignments = ", ".join(f"{name} = ?" for name in values)
        connection.execute(
            f"UPDATE steps SET {assignments} WHERE remediation_id = ? AND position = ?",
            (*values.values(), remediation_id, position),
        )

    await journal.write(job, shed=False)


async def scale_backs(journal: Journal) -> list[tuple[int, int, ServiceRef, dict[str, Any]]]:
    """(remediation, problem, service, scale-back) of every scale-back not done yet."""

    def query(connection: sqlite3.Connection) -> list[tuple[int, int, ServiceRef, dict[str, Any]]]:
        rows = connection.execute(
            "SELECT id, problem_id, project, stage, service, scale_back FROM remediations"
            " WHERE scale_back IS NOT NULL ORDER BY id"
        ).fetchall()
        pending = []
        for rid, pid, project, stage, service, text in rows:
            scale_back = json.loads(text)
            if scale_back["state"] in ("waiting", "due"):
                ref = ServiceRef(project=project, stage=stage, service=service)
                pending.append((rid, pid, ref, scale_back))
        return pending

    return await journal.read(query)


async def next_position(journal: Journal, remediation_id: int) -> int:
    def query(connection: sqlite3.Connection) -> int:
        (position,) = connection.execute(
            "SELECT COALESCE(MAX(position) + 1, 0) FROM steps WHERE remediation_id = ?",
            (remediation_id,),
        ).fetchone()
        return int(position)

    return await journal.read(query)


async def last_ended(journal: Journal, ref: ServiceRef) -> float | None:
    def query(connection: sqlite3.Connection) -> float | None:
        (ended,) = connection.execute(
            "SELECT MAX(ended_at) FROM remediations WHERE project = ? AND stage = ?"
            " AND service = ?",
            (ref.project, ref.stage, ref.service),
        ).fetchone()
        return float(ended) if ended is not None else None

    return await journal.read(query)


async def problem(journal: Journal, problem_id: int) -> dict[str, Any]:
    def query(connection: sqlite3.Connection) -> dict[str, Any]:
        row = connection.execute(
            "SELECT key, source, title, state, url FROM problems WHERE id = ?", (problem_id,)
        ).fetchone()
        return {"key": row[0], "source": row[1], "title": row[2], "state": row[3], "url": row[4]}

    return await journal.read(query)


async def request_cancel(journal: Journal, remediation_id: int) -> RemediationState | None:
    """Mark a remediation for cancelling; its state (None: no such remediation)."""

    def job(connection: sqlite3.Connection, now: float) -> RemediationState | None:
        row = connection.execute(
            "SELECT state FROM remediations WHERE id = ?", (remediation_id,)
        ).fetchone()
        if row is None:
            return None
        state = RemediationState(row[0])
        if not state.finished:
            connection.execute(
                "UPDATE remediations SET cancel_requested = 1 WHERE id = ?", (remediation_id,)
            )
        return state

    return await journal.write(job, shed=False)


# -- what the API shows ------------------------------------------------------------------------


async def listing(
    journal: Journal, *, limit: int = 100, **filters: str | None
) -> list[dict[str, Any]]:
    where = [f"r.{name} = ?" for name, value in filters.items() if value is not None]
    values = [value for value in filters.values() if value is not None]
    sql = (
        "SELECT r.id FROM remediations r"
        + (f" WHERE {' AND '.join(where)}" if where else "")
        + " ORDER BY r.id DESC LIMIT ?"
    )

    def query(connection: sqlite3.Connection) -> list[dict[str, Any]]:
        ids = [row[0] for row in connection.execute(sql, (*values, limit))]
        return [_timeline(connection, i, full=False) for i in ids]

    return await journal.read(query)


async def timeline(journal: Journal, remediation_id: int) -> dict[str, Any] | None:
    def query(connection: sqlite3.Connection) -> dict[str, Any] | None:
        exists = connection.execute(
            "SELECT 1 FROM remediations WHERE id = ?", (remediation_id,)
        ).fetchone()
        return _timeline(connection, remediation_id, full=True) if exists else None

    return await journal.read(query)


def _timeline(connection: sqlite3.Connection, remediation_id: int, *, full: bool) -> dict[str, Any]:
    row = connection.execute(
        "SELECT r.id, r.project, r.stage, r.service, r.plan, r.state, r.phase, r.step,"
        " r.phase_until, r.reason, r.created_at, r.started_at, r.ended_at, r.cancel_requested,"
        " p.key, p.source, p.title, p.state FROM remediations r"
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
    if full:
        document |= {
            "plan": plan,
            "current_step": row[7],
            "phase_until": iso(row[8]),
            "cancel_requested": bool(row[13]),
        }
    return document
