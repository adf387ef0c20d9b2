"""`receiver status`: the remediations as a table, or one remediation's timeline; and
`receiver approve|reject|cancel ID`: a person's say on one remediation.

Made for `kubectl port-forward -n selfheal svc/selfheal-receiver 8080`: it talks to the HTTP
API, so it works from a laptop. RECEIVER_AUTH_TOKEN is sent when set (writes need it; reads
with `auth.protect_reads`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any


def add_command(commands: Any) -> None:
    status = commands.add_parser("status", help="show remediations (table) or one timeline")
    status.add_argument("id", nargs="?", type=int, help="a remediation's id: its timeline")
    status.add_argument("--url", default=os.environ.get("RECEIVER_URL", "http://localhost:8080"))
    status.add_argument("--state", help="only remediations in this state")
    status.add_argument("--output", choices=("table", "json"), default="table")
    status.set_defaults(run=run)


def add_decision_commands(commands: Any) -> None:
    for name, what in (
        ("approve", "let a remediation that awaits approval run its actions"),
        ("reject", "stop a remediation that awaits approval before any action"),
        ("cancel", "stop a remediation at its next safe point"),
    ):
        command = commands.add_parser(name, help=what)
        command.add_argument("id", type=int, help="the remediation's id (receiver status)")
        command.add_argument(
            "--url", default=os.environ.get("RECEIVER_URL", "http://localhost:8080")
        )
        command.set_defaults(run=decide, decision=name)


def decide(args: argparse.Namespace) -> int:
    path = f"/api/v1/remediations/{args.id}/{args.decision}"
    try:
        document = _request(args.url.rstrip("/") + path, method="POST")
    except (urllib.error.URLError, OSError, ValueError) as e:
        print(f"receiver: {args.decision} {args.id}: {e}", file=sys.stderr)
        return 1 if isinstance(e, ValueError) else 2
    done = {"approve": "approved", "reject": "rejected", "cancel": "cancel requested"}
    print(f"remediation {document.get('id', args.id)}: {done[args.decision]}")
    return 0


def run(args: argparse.Namespace) -> int:
    path = f"/api/v1/remediations/{args.id}" if args.id is not None else "/api/v1/remediations"
    if args.id is None and args.state:
        path += f"?state={args.state}"
    try:
        document = _get(args.url.rstrip("/") + path)
    except (urllib.error.URLError, OSError, ValueError) as e:
        print(f"receiver: cannot read {args.url}{path}: {e}", file=sys.stderr)
        return 2
    if args.output == "json":
        print(json.dumps(document, indent=2))
    elif args.id is not None:
        print(timeline(document))
    else:
        print(table(document["remediations"]))
    return 0


def _get(url: str) -> Any:
    return _request(url, method="GET")


def _request(url: str, *, method: str) -> Any:
    headers = {"Accept": "application/json"}
    token = os.environ.get("RECEIVER_AUTH_TOKEN")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, headers=headers, method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return json.load(response)
    except urllib.error.HTTPError as e:
        detail = e.read().decode(errors="replace")[:300]
        raise ValueError(f"HTTP {e.code}: {detail}") from None


def table(items: list[dict[str, Any]]) -> str:
    if not items:
        return "no remediations"
    rows = [("ID", "STATE", "SERVICE", "PROBLEM", "STEPS", "STARTED", "WHY")]
    for item in items:
        steps = " → ".join(f"{s['action']}:{s['result']}" for s in item["steps"]) or "-"
        rows.append(
            (
                str(item["id"]),
                item["state"],
                f"{item['project']}/{item['stage']}/{item['service']}",
                _cut(item["title"], 32) + _joined(item),
                _cut(steps, 48),
                (item.get("started_at") or item["created_at"] or "")[:19],
                _cut(item.get("reason") or item.get("phase") or "", 72, words=True),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def timeline(item: dict[str, Any]) -> str:
    lines = [
        f"remediation {item['id']}: {item['state']}"
        + (f" — {item['reason']}" if item.get("reason") else f" ({item['phase']})"),
        f"problem   {item['title']} [{item['source']} {item['problem_key']}, "
        f"{item['problem_state']}] on {item['project']}/{item['stage']}/{item['service']}",
        f"rule      {item['rule']} from {item.get('rule_file')}",
        *(
            [
                f"joined    {item['joined']['problems']} more problems of the rule"
                f" ({item['joined']['open']} open): "
                + ", ".join(p["key"] for p in item.get("joined_problems", []))
                + (
                    " …"
                    if item["joined"]["problems"] > len(item.get("joined_problems", []))
                    else ""
                )
            ]
            if item.get("joined", {}).get("problems")
            else []
        ),
        f"created   {item['created_at']}   started {item.get('started_at') or '-'}"
        f"   ended {item.get('ended_at') or '-'}",
    ]
    for step in item["steps"]:
        duration = (
            f"{step['duration_seconds']:.2f}s" if step["duration_seconds"] is not None else ""
        )
        given = "" if step["input"] is None else f" {json.dumps(step['input'])}"
        detail = f" — {step['detail']}" if step["detail"] else ""
        lines.append(
            f"  {step['position'] + 1}. {step['action']}{given}: {step['result']}"
            f"{' ' + duration if duration else ''}{detail}"
        )
        evaluation = step.get("evaluation")
        if evaluation:
            lines.append(f"     SLO {evaluation['result']} (score {evaluation['score']:.1f})")
            for objective in evaluation.get("objectives", []):
                value = objective["value"]
                shown = "no value" if value is None else f"{value:g}"
                lines.append(f"       {objective['sli']}: {shown} → {objective['status']}")
        if step.get("verdict"):
            lines.append(f"     verdict: {step['verdict']}")
    if item["phase"] in ("wait", "cooldown") and item.get("phase_until"):
        lines.append(f"  waiting until {item['phase_until']}")
    if item["phase"] == "awaiting_approval":
        lines.append(
            f"  awaiting approval until {item.get('phase_until')}: receiver approve {item['id']}"
            f" (or reject {item['id']})"
        )
    return "\n".join(lines)


def _joined(item: dict[str, Any]) -> str:
    joined = item.get("joined", {}).get("problems", 0)
    return f" (+{joined})" if joined else ""


def _cut(text: str, width: int, *, words: bool = False) -> str:
    """`text` within `width` characters, an ellipsis where it was cut — at a word boundary
    when `words` (a reason cut mid-word reads as a different word)."""
    if len(text) <= width:
        return text
    cut = text[: width - 1]
    if words and " " in cut:
        cut = cut.rsplit(" ", 1)[0].rstrip(" ,;:")
    return cut + "…"
