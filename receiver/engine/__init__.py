"""The remediation engine: the supervisor (who runs what), the driver (the loop that runs one
remediation through the state machine of receiver/remediation) and the effects (what the
loop does in the world)."""

from receiver.engine.supervisor import Engine

__all__ = ["Engine"]
