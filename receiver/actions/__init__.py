"""Remediation actions: each adapter does one job against one system (Kubernetes, Unleash,
an escalation endpoint) and reports what it did. Only adapters talk to the network."""
