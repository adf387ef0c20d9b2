"""A remediation's values and its state machine: pure, no I/O (see model.py, machine.py)."""
