"""The operator's web page: open problems, recent remediations, one remediation's timeline.

Rendered on the server from what the API returns (the same documents), every value escaped:
titles, keys and details come from webhooks. No build step and nothing from the internet:
one stylesheet and one small script, served by the receiver itself (the Content-Security-
Policy allows nothing else). The script refreshes the page's content every few seconds
while it is open, and sends approve, reject and cancel with the token a person enters once
(kept in the tab's sessionStorage, never in a cookie or the page).
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ASSETS = Path(__file__).parent / "ui"
CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'"
_FINISHED = {"healed", "escalated", "resolved", "cancelled", "expired", "rejected"}


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)} · selfheal-receiver</title>"
        '<link rel=stylesheet href="/ui/app.css"><script defer src="/ui/app.js"></script>'
        "</head><body>"
        '<header><a href="/" class=home>selfheal-receiver</a>'
        "<form id=signin><label>token <input type=password id=token autocomplete=off"
        ' placeholder="to approve, reject, cancel"></label><button>use</button>'
        "<span id=who></span></form></header>"
        f"<main id=live data-refresh=5>{body}</main><p id=message role=status></p>"
        "</body></html>\n"
    )


def index(problems: Sequence[dict[str, Any]], remediations: Sequence[dict[str, Any]]) -> str:
    """Open problems and the newest remediations."""
    problem_rows = "".join(
        "<tr>"
        f"<td>{_e(p['title'])}</td>"
        f"<td>{_e(_service(p))}</td>"
        f"<td>{_e(p['source'])} <code>{_e(p['key'])}</code></td>"
        f"<td>{_e(p['repeats'])}</td>"
        f"<td>{_e(p['first_seen'])}</td>"
        f"<td>{_e(p['ignored_reason'] or '')}</td>"
        "</tr>"
        for p in problems
    )
    remediation_rows = "".join(
        "<tr>"
        f'<td><a href="/ui/remediations/{int(r["id"])}">{int(r["id"])}</a></td>'
        f"<td>{_badge(r['state'])}</td>"
        f"<td>{_e(_service(r))}</td>"
        f"<td>{_e(r['title'])}</td>"
        f"<td>{_e(_steps(r))}</td>"
        f"<td>{_e(r.get('started_at') or r.get('created_at'))}</td>"
        f"<td>{_e(r.get('reason') or str(r.get('phase')).replace('_', ' '))}</td>"
        "</tr>"
        for r in remediations
    )
    awaiting = sum(1 for r in remediations if r["state"] == "awaiting_approval")
    body = (
        "<h1>Self-healing</h1>"
        f"<p class=summary>{len(problems)} open problem(s), {len(remediations)} recent"
        f" remediation(s){f', <strong>{awaiting} awaiting approval</strong>' if awaiting else ''}"
        "</p>"
        "<h2>Open problems</h2>"
        + (
            "<table><thead><tr><th>title</th><th>service</th><th>source</th><th>repeats</th>"
            f"<th>first seen</th><th>why nothing runs</th></tr></thead><tbody>{problem_rows}"
            "</tbody></table>"
            if problems
            else "<p class=empty>none</p>"
        )
        + "<h2>Remediations</h2>"
        + (
            "<table id=remediations><thead><tr><th>id</th><th>state</th><th>service</th>"
            "<th>problem</th><th>steps</th><th>started</th><th>why</th></tr></thead>"
            f"<tbody>{remediation_rows}</tbody></table>"
            if remediations
            else "<p class=empty>none yet</p>"
        )
    )
    return _page("Self-healing", body)


def remediation(item: dict[str, Any]) -> str:
    """One remediation's timeline, with the controls a person may use on it."""
    rid = int(item["id"])
    controls = ""
    if item["state"] == "awaiting_approval":
        controls += (
            f"<button class=act data-action=approve data-id={rid}>Approve</button>"
            f"<button class=act data-action=reject data-id={rid}>Reject</button>"
        )
    if item["state"] not in _FINISHED:
        controls += f"<button class=act data-action=cancel data-id={rid}>Cancel</button>"
    steps = "".join(_step(step) for step in item["steps"])
    joined = item.get("joined") or {}
    approval = item.get("approval")
    body = (
        f"<h1>Remediation {rid} {_badge(item['state'])}</h1>"
        + (f"<div class=controls>{controls}</div>" if controls else "")
        + "<dl>"
        f"<dt>why</dt><dd>{_e(item.get('reason') or item['phase'].replace('_', ' '))}</dd>"
        f"<dt>problem</dt><dd>{_e(item['title'])} <code>{_e(item['problem_key'])}</code>"
        f" ({_e(item['source'])}, {_e(item['problem_state'])})</dd>"
        f"<dt>service</dt><dd>{_e(_service(item))}</dd>"
        f"<dt>rule</dt><dd>{_e(item['rule'])} <small>{_e(item.get('rule_file'))}</small></dd>"
        + (
            f"<dt>joined</dt><dd>{int(joined['problems'])} more problem(s) of the rule,"
            f" {int(joined['open'])} open</dd>"
            if joined.get("problems")
            else ""
        )
        + (
            f"<dt>approval</dt><dd>{_e(approval.get('decision') or 'awaited')}"
            + (f" until {_e(approval['until'])}" if approval.get("until") else "")
            + "</dd>"
            if approval
            else ""
        )
        + f"<dt>created</dt><dd>{_e(item['created_at'])}</dd>"
        f"<dt>started</dt><dd>{_e(item.get('started_at') or '-')}</dd>"
        f"<dt>ended</dt><dd>{_e(item.get('ended_at') or '-')}</dd>"
        + (
            f"<dt>waiting until</dt><dd>{_e(item['phase_until'])}</dd>"
            if item.get("phase_until")
            else ""
        )
        + "</dl><h2>Steps</h2>"
        + (f"<ol class=steps>{steps}</ol>" if steps else "<p class=empty>no action yet</p>")
    )
    return _page(f"Remediation {rid}", body)


def _step(step: dict[str, Any]) -> str:
    given = "" if step["input"] is None else f" <code>{_e(json.dumps(step['input']))}</code>"
    took = (
        f" in {float(step['duration_seconds']):.2f} s"
        if step.get("duration_seconds") is not None
        else ""
    )
    evaluation = step.get("evaluation")
    judged = ""
    if evaluation:
        objectives = "".join(
            f'<tr class="status-{_e(o["status"])}"><td>{_e(o["sli"])}</td>'
            f"<td>{_e('no value' if o['value'] is None else o['value'])}</td>"
            f"<td>{_e(o['status'])}</td>"
            f"<td>{_e(', '.join(str(t['criteria']) for t in o.get('targets', [])))}</td></tr>"
            for o in evaluation.get("objectives", [])
        )
        judged = (
            f"<div class=evaluation>SLO <strong>{_e(evaluation['result'])}</strong>, score"
            f" {float(evaluation['score']):.1f}"
            + (
                "<table><thead><tr><th>SLI</th><th>value</th><th>status</th><th>criteria</th>"
                f"</tr></thead><tbody>{objectives}</tbody></table>"
                if objectives
                else ""
            )
            + "</div>"
        )
    verdict = f" <span class=verdict>→ {_e(step['verdict'])}</span>" if step.get("verdict") else ""
    return (
        f'<li class="result-{_e(step["result"])}"><strong>{_e(step["action"])}</strong>{given}:'
        f" {_e(step['result'])}{took}{verdict}"
        f"<div class=detail>{_e(step.get('detail') or '')}</div>{judged}</li>"
    )


def _steps(item: dict[str, Any]) -> str:
    return " → ".join(f"{s['action']} {s['result']}" for s in item["steps"]) or "-"


def _badge(state: str) -> str:
    return f'<span class="badge state-{_e(state)}">{_e(state.replace("_", " "))}</span>'


def _service(item: dict[str, Any]) -> str:
    return "/".join(str(item.get(k) or "?") for k in ("project", "stage", "service"))
