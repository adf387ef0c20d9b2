"""Every benchmark in bench/ runs here at a tiny size, as a user runs it, so that none can rot
unseen (bench/remediate.py did: the stand-in's RBAC refused its services). The numbers they
print are for people; here only that each runs to its end and prints its figures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests import processes

BENCH = Path(__file__).resolve().parent.parent / "bench"
RUNS = {
    "image.py": ([], "MB, "),
    "ingest.py": (["--rounds", "1", "--requests", "20", "--concurrency", "4"], "repeats"),
    "overload.py": (["--seconds", "1", "--concurrency", "8"], "/healthz:"),
    "remediate.py": (["--problems", "3"], "burst of 3"),
    "retention.py": (["--webhooks", "50"], "pruning took"),
    "slo.py": (["--rounds", "1", "--slis", "2", "--delay", "0.01"], "slowest single query"),
}


def test_every_bench_script_is_run_here() -> None:
    scripts = {p.name for p in BENCH.glob("*.py")} - {"__init__.py", "bare_app.py"}
    assert scripts == set(RUNS)


@pytest.mark.parametrize("script", sorted(RUNS))
def test_the_bench_runs_at_a_tiny_size(script: str) -> None:
    args, says = RUNS[script]
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=processes.receiver_env(),
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert says in done.stdout, done.stdout
