"""The receiver's Prometheus metrics. Labels are bounded: never a problem key or a path."""

from __future__ import annotations

from collections.abc import Callable

import prometheus_client as prom


class Metrics:
    def __init__(self, registry: prom.CollectorRegistry) -> None:
        self.registry = registry
        self._notified: dict[tuple[str, str], prom.Counter] = {}
        self.notifications = prom.Counter(
            "receiver_notifications",
            "Problem notifications received, by source and what the journal did with them.",
            ["source", "outcome"],
            registry=registry,
        )
        self.rejected = prom.Counter(
            "receiver_webhooks_rejected",
            "Webhook requests not recorded, by source and reason.",
            ["source", "reason"],
            registry=registry,
        )
        self.connections_refused = prom.Counter(
            "receiver_connections_refused",
            "Connections answered 503 and closed at once, by the limit they met:"
            " max_connections (open in all), max_connections_per_client (from one address).",
            ["reason"],
            registry=registry,
        )
        self.config_reload_ok = prom.Gauge(
            "receiver_config_last_reload_successful",
            "1 if the last configuration (re)load was taken, 0 if it was refused.",
            registry=registry,
        )
        self.config_reload_ok.set(1)
        self.config_reload_time = prom.Gauge(
            "receiver_config_last_reload_success_timestamp_seconds",
            "When the configuration in force was loaded.",
            registry=registry,
        )
        self.config_reload_time.set_to_current_time()
        self.open_problems = prom.Gauge(
            "receiver_open_problems", "Problems currently open.", registry=registry
        )
        self.request_seconds = prom.Histogram(
            "receiver_http_request_duration_seconds",
            "HTTP request latency by route and status code.",
            ["route", "method", "status"],
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.journal_commit_seconds = prom.Histogram(
            "receiver_journal_commit_seconds",
            "Time to commit one group of journal writes (fsync included).",
            registry=registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
        )
        self.journal_pending = prom.Gauge(
            "receiver_journal_pending_writes",
            "Writes waiting for the journal; at store.max_pending new webhooks get 503.",
            registry=registry,
        )
        self.journal_bytes = prom.Gauge(
            "receiver_journal_bytes",
            "What the journal takes on disk (pruned space is reused, not given back).",
            registry=registry,
        )
        self.journal_pruned = prom.Counter(
            "receiver_journal_pruned",
            "Rows removed by retention (store.retention), by kind.",
            ["kind"],
            registry=registry,
        )
        self.remediations_started = prom.Counter(
            "receiver_remediations_started", "Remediations that began running.", registry=registry
        )
        self.remediations_finished = prom.Counter(
            "receiver_remediations_finished",
            "Remediations that ended, by final state.",
            ["state"],
            registry=registry,
        )
        self.leader = prom.Gauge(
            "receiver_leader",
            "1 while this replica leads (runs the remediations), 0 while it follows.",
            registry=registry,
        )
        self.leadership_changes = prom.Counter(
            "receiver_leadership_changes",
            "Times this replica became leader or follower.",
            ["to"],
            registry=registry,
        )
        self.remediations_in_progress = prom.Gauge(
            "receiver_remediations_in_progress",
            "Remediations under way: queued, awaiting approval or running.",
            registry=registry,
        )
        self.action_seconds = prom.Histogram(
            "receiver_action_duration_seconds",
            "Time an action took, by action and result.",
            ["action", "result"],
            registry=registry,
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
        )
        self.evaluations = prom.Counter(
            "receiver_slo_evaluations",
            "SLO evaluations after an action, by result.",
            ["result"],
            registry=registry,
        )

    def notified(self, source: str, outcome: str, count: int) -> None:
        """Count notifications recorded; the labelled child is looked up once per pair (a
        labels() call locks and validates, and every webhook counts)."""
        child = self._notified.get((source, outcome))
        if child is None:
            child = self._notified[(source, outcome)] = self.notifications.labels(
                source=source, outcome=outcome
            )
        child.inc(count)

    def watch_journal(
        self,
        *,
        open_problems: Callable[[], float],
        pending: Callable[[], float],
        size: Callable[[], float],
    ) -> None:
        self.open_problems.set_function(open_problems)
        self.journal_pending.set_function(pending)
        self.journal_bytes.set_function(size)

    def render(self) -> bytes:
        return prom.generate_latest(self.registry)
