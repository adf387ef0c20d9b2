"""The reference parts of docs/ that are generated, so that they cannot drift from the code:
the settings table (from the Settings fields, described by config/receiver.yaml's comments)
and the metrics table (from the registry). Each sits between `<!-- generated:NAME -->` and
`<!-- end:NAME -->` in its page; `python -m receiver.reference` rewrites them, and a test
fails while a page differs from what this renders.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import prometheus_client as prom

from receiver.metrics import Metrics
from receiver.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config" / "receiver.yaml"
DOCS = ROOT / "docs"


def settings_table(example: Path = EXAMPLE) -> str:
    comments = _comments(example.read_text(encoding="utf-8"))
    explained = _field_comments((Path(__file__).parent / "settings.py").read_text(encoding="utf-8"))
    rows = ["| receiver.yaml | environment | default | what |", "| --- | --- | --- | --- |"]
    for field in dataclasses.fields(Settings):
        meta = field.metadata
        path, env = meta["yaml"], meta["env"]
        if meta["kind"] == "secret":
            name = path.rsplit(".", 1)[-1]
            default = f"— secret: the environment, or a file: `{name}_file` / `{env}_FILE`"
        else:
            default = _default(field.default, meta["kind"])
        what = comments.get(env) or explained.get(field.name, "")
        rows.append(f"| `{path}` | `{env}` | {default} | {what} |")
    return "\n".join(rows)


def _default(value: Any, kind: str) -> str:
    if value is None or value == "" or value == {}:
        return "—"
    if kind == "duration":
        return f"`{_duration(float(value))}`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, tuple):
        return f"`{', '.join(value)}`"
    return f"`{value}`"


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s" if seconds >= 1 or seconds == 0 else f"{seconds * 1000:g}ms"


def _comments(text: str) -> dict[str, str]:
    """Environment variable → what config/receiver.yaml says of it: the comment after
    `VAR;` on its line, and the indented comment-only lines that continue it."""
    found: dict[str, str] = {}
    last, column = None, -1
    for line in text.splitlines():
        code, _, comment = line.partition("#")
        comment = comment.strip()
        match = re.match(r"(RECEIVER_[A-Z0-9_]+)[;,]?\s*(.*)", comment)
        if match and code.strip():
            last, column = match[1], len(code)
            found[last] = match[2]
        elif last and comment and not code.strip() and len(code) == column:
            found[last] = f"{found[last]} {comment}".strip()  # aligned: it goes on
        else:
            last = None
    return {env: text.replace("|", "\\|") for env, text in found.items()}


def _field_comments(source: str) -> dict[str, str]:
    """Field name → the comment written above it in receiver/settings.py."""
    found: dict[str, str] = {}
    pending: list[str] = []
    for line in source.splitlines():
        stripped = line.strip()
        if line.startswith("    # "):
            pending.append(stripped[2:])
            continue
        match = re.match(r"    (\w+): .*= _field\(", line) or re.match(
            r"    (\w+): [^=]+=\s*$", line
        )
        if match and pending:
            found[match[1]] = " ".join(pending).replace("|", "\\|")
        pending = [] if not stripped.startswith("#") else pending
    return found


def metrics_table() -> str:
    registry = prom.CollectorRegistry()
    metrics = Metrics(registry)
    rows = ["| metric | type | labels | what |", "| --- | --- | --- | --- |"]
    for metric in vars(metrics).values():
        if not isinstance(metric, prom.Counter | prom.Gauge | prom.Histogram):
            continue
        kind = type(metric).__name__.lower()
        name = getattr(metric, "_name", "") + ("_total" if kind == "counter" else "")
        labels = ", ".join(getattr(metric, "_labelnames", ()))
        what = str(getattr(metric, "_documentation", "")).replace("|", "\\|")
        rows.append(f"| `{name}` | {kind} | {labels} | {what} |")
    return "\n".join(rows)


GENERATED: dict[str, tuple[str, Callable[[], str]]] = {
    "settings": ("configuration.md", settings_table),
    "metrics": ("metrics.md", metrics_table),
}


def render(page: str, name: str, content: str) -> str:
    begin, end = f"<!-- generated:{name} -->", f"<!-- end:{name} -->"
    head, found, rest = page.partition(begin)
    if not found or end not in rest:
        raise ValueError(f"no {begin} … {end} block")
    return f"{head}{begin}\n{content}\n{end}{rest.partition(end)[2]}"


def main() -> int:
    for name, (page, make) in GENERATED.items():
        path = DOCS / page
        path.write_text(render(path.read_text(encoding="utf-8"), name, make()), encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
