"""selfheal-receiver: turn monitoring problems into ordered, verified remediation."""

__version__ = "0.1.0"
