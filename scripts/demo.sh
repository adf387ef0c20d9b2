#!/usr/bin/env bash
# Tutorial 1 (up-scale with Prometheus) live on this machine: installs what it needs (as the
# test suite does), then narrates alert, action, replicas, evaluation and verdict.
set -euo pipefail
cd "$(dirname "$0")/.."
SELFHEAL_SETUP_ONLY=1 scripts/test
exec .venv/bin/python scripts/demo.py
