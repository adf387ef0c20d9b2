"""Fail when line or branch coverage of receiver/ falls below its floor; list the least
covered modules. Reads the combined data of the run (the receiver subprocesses included).

    python scripts/coverage_floor.py --lines 95 --branches 90
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=float, required=True, help="floor, percent of lines")
    parser.add_argument("--branches", type=float, required=True, help="floor, percent of branches")
    parser.add_argument("--show", type=int, default=8, help="least covered modules to list")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        report = Path(directory) / "coverage.json"
        subprocess.run(
            [sys.executable, "-m", "coverage", "json", "-q", "-o", str(report)], check=True
        )
        data = json.loads(report.read_text())
    totals = data["totals"]
    lines = 100 * totals["covered_lines"] / totals["num_statements"]
    branches = 100 * totals["covered_branches"] / max(totals["num_branches"], 1)
    modules = sorted(
        ((summary["summary"]["percent_covered"], name) for name, summary in data["files"].items()),
    )[: args.show]
    print("least covered: " + ", ".join(f"{name} {percent:.0f}%" for percent, name in modules))
    print(
        f"coverage of receiver/: lines {lines:.1f}% (floor {args.lines:g}%),"
        f" branches {branches:.1f}% (floor {args.branches:g}%)"
    )
    if lines < args.lines or branches < args.branches:
        print("coverage fell below its floor", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
