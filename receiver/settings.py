"""One frozen `Settings`, built once from `receiver.yaml` and the environment.

Every setting has a default (with the reason for it next to it), a place in `receiver.yaml`
and a `RECEIVER_…` environment variable; the environment wins over the file. Secrets are
never read from the YAML in plain text unless `allow_plaintext_secrets: true` says so: they
come from the environment or from a file (`…_file`, a mounted Kubernetes Secret).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Any, ClassVar

from receiver import durations, yamlfile
from receiver.errors import ConfigError

SETTINGS_FILE = "receiver.yaml"


class Secret:
    """A credential that never shows in `repr`, logs or error messages."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class ServiceTarget:
    """A service's Kubernetes target, where the naming templates do not fit."""

    namespace: str | None = None
    deployment: str | None = None
    min_replicas: int | None = None
    max_replicas: int | None = None
    # Its HorizontalPodAutoscaler, where that is not named like the Deployment (the RBAC
    # `receiver manifests` renders may patch it).
    autoscaler: str | None = None


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class WebhookAction:
    """An action name of remediation.yaml that the receiver runs as an HTTP POST (Keptn
    handed such names to whichever service subscribed to them)."""

    url: str
    token_file: str | None = None  # read at every call: a rotated Secret is picked up


def _field(default: Any, yaml_path: str, env: str, kind: str, **extra: Any) -> Any:
    return dataclasses.field(
        default=default, metadata={"yaml": yaml_path, "env": env, "kind": kind, **extra}
    )


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Settings:
    # Listen on every interface: in a pod the Service reaches it there.
    host: str = _field("0.0.0.0", "server.host", "RECEIVER_HOST", "str")  # noqa: S104
    port: int = _field(8080, "server.port", "RECEIVER_PORT", "int")
    # Alertmanager groups are small; 1 MiB is ~1000 alerts and stops memory abuse.
    max_body_bytes: int = _field(1 << 20, "server.max_body_bytes", "RECEIVER_MAX_BODY_BYTES", "int")
    # A webhook whose body stops arriving (a stalled or hostile client) is answered 408 and
    # let go after this long, instead of holding its connection forever.
    body_timeout: float = _field(10.0, "server.body_timeout", "RECEIVER_BODY_TIMEOUT", "duration")
    # Under more load than the process can parse, webhooks are answered 503 (retry later) at
    # once while the event loop runs this late, so that nothing waits for long and probes
    # still answer.
    max_loop_lag: float = _field(0.25, "server.max_loop_lag", "RECEIVER_MAX_LOOP_LAG", "duration")
    # Where people reach this receiver (e.g. https://selfheal.example.com), for the links in
    # the messages it sends; empty: messages name the API path only.
    public_url: str = _field("", "server.public_url", "RECEIVER_PUBLIC_URL", "str")
    # The configuration directory is looked at this often and reloaded when a file changed
    # (Kubernetes swaps a ConfigMap volume through a symlink); 0: only SIGHUP and /-/reload.
    watch_config: float = _field(10.0, "server.watch_config", "RECEIVER_WATCH_CONFIG", "duration")
    # A connection that has not sent a whole request head this long after it opened, or
    # after its previous answer, is closed: idle keep-alive and slow headers alike.
    idle_timeout: float = _field(30.0, "server.idle_timeout", "RECEIVER_IDLE_TIMEOUT", "duration")
    # Connections beyond this many are answered 503 and closed at once, well before the
    # process runs out of file descriptors (the soft limit is raised to fit when it can be).
    max_connections: int = _field(1000, "server.max_connections", "RECEIVER_MAX_CONNECTIONS", "int")
    # One source address (a flood, a client that reconnects) holds at most this many of them,
    # before any credential is checked; behind an ingress every webhook comes from its
    # address, so this is a share of the cap rather than a handful.
    max_connections_per_client: int = _field(
        250, "server.max_connections_per_client", "RECEIVER_MAX_CONNECTIONS_PER_CLIENT", "int"
    )
    # A connection none of whose requests carried valid credentials yet is closed once it has
    # been open this long and is idle (Alertmanager authenticates its first request; probes
    # and anonymous reads reconnect), instead of holding a slot for server.idle_timeout.
    unauthenticated_timeout: float = _field(
        5.0, "server.unauthenticated_timeout", "RECEIVER_UNAUTHENTICATED_TIMEOUT", "duration"
    )

    # In the working directory by default; the Kubernetes manifests point it at a volume.
    # A file path is SQLite; postgresql://user@host:port/db is PostgreSQL (several replicas).
    store_path: str = _field("receiver-journal.db", "store.path", "RECEIVER_STORE", "str")
    # FULL: the WAL is fsynced before a webhook is acknowledged, so a power loss loses nothing
    # acknowledged. NORMAL survives a process crash but may lose the last commits on power loss.
    store_synchronous: str = _field(
        "full",
        "store.synchronous",
        "RECEIVER_STORE_SYNCHRONOUS",
        "choice",
        choices=("full", "normal"),
    )
    # Webhook requests waiting for the journal before new ones are shed with 503.
    store_max_pending: int = _field(1000, "store.max_pending", "RECEIVER_STORE_MAX_PENDING", "int")
    # Delivered bodies, closed problems and finished remediations older than this are pruned
    # in the background (0: keep everything). Open problems and remediations under way stay.
    store_retention: float = _field(
        14 * 86400.0, "store.retention", "RECEIVER_STORE_RETENTION", "duration"
    )
    # How long a write waits for a lock held by another process before answering 503.
    store_busy_timeout: float = _field(
        5.0, "store.busy_timeout", "RECEIVER_STORE_BUSY_TIMEOUT", "duration"
    )
    # PostgreSQL only: a file holding the password (a mounted Secret), read at start.
    store_password_file: str | None = _field(
        None, "store.password_file", "RECEIVER_STORE_PASSWORD_FILE", "str"
    )
    # Several replicas on PostgreSQL: a leader that stops renewing its lease (dead, paused,
    # cut off) is replaced this long after its last renewal; it stops acting a fifth sooner.
    leadership_lease: float = _field(
        10.0, "leadership.lease", "RECEIVER_LEADERSHIP_LEASE", "duration"
    )

    # Authentication is on unless switched off explicitly (which logs a warning).
    auth_disabled: bool = _field(False, "auth.disabled", "RECEIVER_AUTH_DISABLED", "bool")
    # The bearer token webhooks and writes must carry (at least 16 characters).
    auth_token: Secret | None = _field(None, "auth.token", "RECEIVER_AUTH_TOKEN", "secret")
    # Basic auth instead of, or beside, the token (Alertmanager's `basic_auth`).
    auth_basic_username: str | None = _field(
        None, "auth.basic_username", "RECEIVER_AUTH_BASIC_USERNAME", "optional_str"
    )
    # Its password (at least 16 characters).
    auth_basic_password: Secret | None = _field(
        None, "auth.basic_password", "RECEIVER_AUTH_BASIC_PASSWORD", "secret"
    )
    # Reads (problem lists) are open by default so `receiver status` works through a
    # port-forward; set this where problem titles are sensitive.
    auth_protect_reads: bool = _field(
        False, "auth.protect_reads", "RECEIVER_AUTH_PROTECT_READS", "bool"
    )
    # /metrics separately (Prometheus can send the token with `authorization` in its scrape
    # config); the probes (/healthz, /readyz) stay open for the kubelet.
    auth_protect_metrics: bool = _field(
        False, "auth.protect_metrics", "RECEIVER_AUTH_PROTECT_METRICS", "bool"
    )
    # true lets receiver.yaml hold secrets in plain text (for a throwaway setup only).
    allow_plaintext_secrets: bool = _field(
        False, "allow_plaintext_secrets", "RECEIVER_ALLOW_PLAINTEXT_SECRETS", "bool"
    )

    # Where SLI values come from unless a sli.yaml says `provider:`; Keptn's default too.
    sli_provider: str = _field(
        "prometheus",
        "sli.provider",
        "RECEIVER_SLI_PROVIDER",
        "choice",
        choices=("prometheus", "dynatrace"),
    )
    # A slow provider must not stall a remediation: each SLI query gives up after this.
    sli_timeout: float = _field(10.0, "sli.timeout", "RECEIVER_SLI_TIMEOUT", "duration")
    # Keptn's $DEPLOYMENT: remediation acts on the live (primary) deployment.
    sli_deployment: str = _field("primary", "sli.deployment", "RECEIVER_SLI_DEPLOYMENT", "str")
    # Prometheus next to the receiver (port-forward or sidecar) unless told otherwise.
    prometheus_url: str = _field(
        "http://localhost:9090", "prometheus.url", "RECEIVER_PROMETHEUS_URL", "str"
    )
    # A bearer token for Prometheus, or basic auth below.
    prometheus_token: Secret | None = _field(
        None, "prometheus.token", "RECEIVER_PROMETHEUS_TOKEN", "secret"
    )
    # Basic auth for Prometheus: user name and password.
    prometheus_basic_username: str | None = _field(
        None, "prometheus.basic_username", "RECEIVER_PROMETHEUS_BASIC_USERNAME", "optional_str"
    )
    # The password of that user.
    prometheus_basic_password: Secret | None = _field(
        None, "prometheus.basic_password", "RECEIVER_PROMETHEUS_BASIC_PASSWORD", "secret"
    )
    # The tenant URL, e.g. https://abc12345.live.dynatrace.com; empty: Dynatrace SLIs fail.
    dynatrace_url: str = _field("", "dynatrace.url", "RECEIVER_DYNATRACE_URL", "str")
    # An API token with metrics.read.
    dynatrace_token: Secret | None = _field(
        None, "dynatrace.token", "RECEIVER_DYNATRACE_TOKEN", "secret"
    )
    # Keptn waited 10 minutes after an action before evaluating the SLO again.
    remediation_wait: float = _field(
        600.0, "remediation.wait", "RECEIVER_REMEDIATION_WAIT", "duration"
    )
    # After a remediation of a service ends, a new one for it waits this long (Keptn: none),
    # so that the effect of the last action is not judged as the next problem.
    remediation_cooldown: float = _field(
        60.0, "remediation.cooldown", "RECEIVER_REMEDIATION_COOLDOWN", "duration"
    )
    # A rule with `approval: manual` waits this long for a person, then escalates.
    remediation_approval_timeout: float = _field(
        15 * 60.0,
        "remediation.approval_timeout",
        "RECEIVER_REMEDIATION_APPROVAL_TIMEOUT",
        "duration",
    )
    # An alert storm on one service must not queue a remediation per alert: problems of a
    # rule already queued or running for the service join it, and at most this many
    # remediations (different rules) are queued or running per service; more are recorded
    # without one, with the reason.
    remediation_max_queued_per_service: int = _field(
        3,
        "remediation.max_queued_per_service",
        "RECEIVER_REMEDIATION_MAX_QUEUED_PER_SERVICE",
        "int",
    )
    # A problem that has had no notification for this long is closed as `expired` (its
    # source lost it, or the resolve never came; Alertmanager resends firing alerts every
    # repeat_interval, 4h by default), and its remediation stops. 0: never.
    problems_stale_after: float = _field(
        86400.0, "problems.stale_after", "RECEIVER_PROBLEMS_STALE_AFTER", "duration"
    )
    # Keptn evaluated the SLO over the 10 minutes before the evaluation. An action is judged
    # on the time since it ran, at most this much of it.
    remediation_evaluation_window: float = _field(
        600.0,
        "remediation.evaluation_window",
        "RECEIVER_REMEDIATION_EVALUATION_WINDOW",
        "duration",
    )
    # When the source resolves a problem soon after an action, the SLO is judged once this
    # much time has passed since the action (still long before the wait ends): enough for
    # Prometheus' rate() over a few scrapes, or Dynatrace's one-minute resolution.
    remediation_min_evaluation_window: float = _field(
        60.0,
        "remediation.min_evaluation_window",
        "RECEIVER_REMEDIATION_MIN_EVALUATION_WINDOW",
        "duration",
    )

    # Where the pod's service account token and CA are mounted (the kubelet's path); the
    # token is read again whenever the kubelet rotates it.
    kubernetes_service_account_dir: str = _field(
        "/var/run/secrets/kubernetes.io/serviceaccount",
        "kubernetes.service_account_dir",
        "RECEIVER_KUBERNETES_SERVICE_ACCOUNT_DIR",
        "str",
    )
    # Keptn's blue/green naming: namespace project-stage, deployment service-primary, then
    # the plain service name.
    kubernetes_namespace_template: str = _field(
        "{project}-{stage}",
        "kubernetes.namespace_template",
        "RECEIVER_KUBERNETES_NAMESPACE_TEMPLATE",
        "str",
    )
    # The Deployment a service maps to: the first of these names that exists.
    kubernetes_deployment_templates: tuple[str, ...] = _field(
        ("{service}-primary", "{service}"),
        "kubernetes.deployment_templates",
        "RECEIVER_KUBERNETES_DEPLOYMENT_TEMPLATES",
        "names",
    )
    # Keptn had no bounds; a runaway chain must not scale a service to the cluster's limits.
    scaling_min_replicas: int = _field(
        1, "scaling.min_replicas", "RECEIVER_SCALING_MIN_REPLICAS", "int"
    )
    scaling_max_replicas: int = _field(
        10, "scaling.max_replicas", "RECEIVER_SCALING_MAX_REPLICAS", "int"
    )
    # 0: keep the added replicas. Otherwise return to the count before the remediation this
    # long after it healed and the problem was resolved.
    scaling_scale_back_after: float = _field(
        0.0, "scaling.scale_back_after", "RECEIVER_SCALING_SCALE_BACK_AFTER", "duration"
    )
    # Keptn waited forever on an action that never answered.
    action_timeout: float = _field(60.0, "actions.timeout", "RECEIVER_ACTION_TIMEOUT", "duration")
    action_attempts: int = _field(3, "actions.attempts", "RECEIVER_ACTION_ATTEMPTS", "int")
    action_backoff: float = _field(1.0, "actions.backoff", "RECEIVER_ACTION_BACKOFF", "duration")
    # Record what each action would change without changing anything.
    dry_run: bool = _field(False, "actions.dry_run", "RECEIVER_DRY_RUN", "bool")
    # Action names run as an HTTP POST: name -> url (and token_file), as JSON in the environment.
    action_webhooks: dict[str, WebhookAction] = _field(
        None, "actions.webhooks", "RECEIVER_ACTIONS_WEBHOOKS", "webhooks"
    )
    # Per service: namespace, deployment, min_replicas, max_replicas (see config/receiver.yaml).
    services: dict[str, ServiceTarget] = _field(None, "services", "RECEIVER_SERVICES", "services")

    # Unleash v5+ admin API; the token must be an admin (or personal access) token.
    unleash_url: str = _field("", "unleash.url", "RECEIVER_UNLEASH_URL", "str")
    # An admin (or personal access) token of Unleash.
    unleash_token: Secret | None = _field(None, "unleash.token", "RECEIVER_UNLEASH_TOKEN", "secret")
    unleash_project: str = _field("default", "unleash.project", "RECEIVER_UNLEASH_PROJECT", "str")
    unleash_environment: str = _field(
        "production", "unleash.environment", "RECEIVER_UNLEASH_ENVIRONMENT", "str"
    )

    # Where escalations go: any JSON webhook, and/or a Slack-compatible incoming webhook
    # (its URL is a credential, so it is a secret).
    escalation_webhook_url: str = _field(
        "", "escalation.webhook_url", "RECEIVER_ESCALATION_WEBHOOK_URL", "str"
    )
    # Sent to the escalation webhook as a bearer token.
    escalation_webhook_token: Secret | None = _field(
        None, "escalation.webhook_token", "RECEIVER_ESCALATION_WEBHOOK_TOKEN", "secret"
    )
    # A Slack-compatible incoming webhook (a secret: the URL is the credential).
    escalation_slack_url: Secret | None = _field(
        None, "escalation.slack_url", "RECEIVER_ESCALATION_SLACK_URL", "secret"
    )
    escalation_attempts: int = _field(
        5, "escalation.attempts", "RECEIVER_ESCALATION_ATTEMPTS", "int"
    )

    # Keptn's labels first, then the names Keptn's own services used.
    labels_project: tuple[str, ...] = _field(
        ("project", "keptn_project"), "labels.project", "RECEIVER_LABELS_PROJECT", "names"
    )
    labels_stage: tuple[str, ...] = _field(
        ("stage", "keptn_stage"), "labels.stage", "RECEIVER_LABELS_STAGE", "names"
    )
    labels_service: tuple[str, ...] = _field(
        ("service", "keptn_service"), "labels.service", "RECEIVER_LABELS_SERVICE", "names"
    )

    # auto: JSON lines when stderr is not a terminal (in a pod), text on a terminal.
    log_format: str = _field(
        "auto", "log.format", "RECEIVER_LOG_FORMAT", "choice", choices=("auto", "json", "text")
    )
    log_level: str = _field(
        "info",
        "log.level",
        "RECEIVER_LOG_LEVEL",
        "choice",
        choices=("debug", "info", "warning", "error"),
    )

    SECRET_FILE_SUFFIX: ClassVar[str] = "_file"  # noqa: S105 - a name suffix, not a secret

    def __post_init__(self) -> None:
        if self.services is None:
            object.__setattr__(self, "services", {})
        if self.action_webhooks is None:
            object.__setattr__(self, "action_webhooks", {})
        for _, message in _conflicts(self):
            raise ValueError(message)


def _conflicts(
    settings: Settings, origin: Callable[[str], str] = lambda name: ""
) -> list[tuple[str, str]]:
    """Values that are fine alone and wrong together or for what they are: (the field to
    blame, why). `origin` says where a field's value came from, when the message names a
    second one (" from RECEIVER_…")."""
    found = []
    if settings.max_connections < 1:
        found.append(("max_connections", "server.max_connections must be at least 1"))
    if settings.max_connections_per_client < 1:
        found.append(
            ("max_connections_per_client", "server.max_connections_per_client must be at least 1")
        )
    if settings.scaling_min_replicas > settings.scaling_max_replicas:
        found.append(
            (
                "scaling_min_replicas",
                f"scaling.min_replicas ({settings.scaling_min_replicas}) is larger than"
                f" scaling.max_replicas ({settings.scaling_max_replicas}"
                f"{origin('scaling_max_replicas')})",
            )
        )
    if settings.auth_basic_password is not None and not settings.auth_basic_username:
        found.append(
            ("auth_basic_password", "auth.basic_password is set but auth.basic_username is not")
        )
    for name, path, secret in (
        ("auth_token", "auth.token", settings.auth_token),
        ("auth_basic_password", "auth.basic_password", settings.auth_basic_password),
    ):
        if secret is not None and len(secret.reveal()) < MIN_SECRET_LENGTH:
            found.append(
                (
                    name,
                    f"{path} is shorter than {MIN_SECRET_LENGTH} characters: anyone who can"
                    " reach the port could guess it (e.g. openssl rand -hex 24)",
                )
            )
    return found


MIN_SECRET_LENGTH = 16  # for the credentials webhooks and writes are checked against


def _parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _parse_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected a whole number, got {value!r}")
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ValueError(f"expected a whole number, got {value!r}") from None
    if number < 0:
        raise ValueError(f"expected a number >= 0, got {number}")
    return number


def _parse_str(value: Any) -> str:
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise ValueError(f"expected a string, got {value!r}")
    return str(value)


def _parse_secret(value: Any) -> str:
    # An empty token would let an empty `Authorization: Bearer ` in: refuse it.
    text = _parse_str(value).strip()
    if not text:
        raise ValueError("is empty: unset it, or give it a value")
    return text


def _parse_names(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise ValueError("expected a list of label names")
    names = tuple(item.strip() for item in items if item.strip())
    if not names:
        raise ValueError("expected at least one label name")
    return names


def _parse_services(value: Any) -> dict[str, ServiceTarget]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError(
                "expected a JSON object of project/stage/service to settings"
            ) from None
    if not isinstance(value, dict):
        raise ValueError("expected a mapping of project/stage/service to settings")
    targets = {}
    for name, entry in value.items():
        if str(name).count("/") != 2:
            raise ValueError(f"{name!r}: expected a key of the form project/stage/service")
        if not isinstance(entry, dict):
            raise ValueError(f"{name}: expected a mapping")
        unknown = set(entry) - {f.name for f in dataclasses.fields(ServiceTarget)}
        if unknown:
            raise ValueError(f"{name}: unknown setting {sorted(unknown)[0]!r}")
        for key in ("min_replicas", "max_replicas"):
            if key in entry and (not isinstance(entry[key], int) or entry[key] < 0):
                raise ValueError(f"{name}.{key}: expected a whole number >= 0")
        for key in ("namespace", "deployment", "autoscaler"):
            if key in entry and not isinstance(entry[key], str):
                raise ValueError(f"{name}.{key}: expected a string")
        targets[str(name)] = ServiceTarget(**entry)
    return targets


def _parse_webhooks(value: Any) -> dict[str, WebhookAction]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError("expected a JSON object of action name to {url, token_file}") from None
    if not isinstance(value, dict):
        raise ValueError("expected a mapping of action name to {url, token_file}")
    actions = {}
    for name, entry in value.items():
        if not isinstance(entry, dict):
            raise ValueError(f"{name}: expected a mapping with url (and token_file)")
        unknown = set(entry) - {f.name for f in dataclasses.fields(WebhookAction)}
        if unknown:
            raise ValueError(f"{name}: unknown setting {sorted(unknown)[0]!r}")
        url = entry.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"{name}.url: expected an http:// or https:// URL")
        token_file = entry.get("token_file")
        if token_file is not None and not isinstance(token_file, str):
            raise ValueError(f"{name}.token_file: expected a file path")
        actions[str(name)] = WebhookAction(url=url, token_file=token_file)
    return actions


_PARSERS: dict[str, Callable[[Any], Any]] = {
    "str": _parse_str,
    "optional_str": _parse_str,
    "int": _parse_int,
    "bool": _parse_bool,
    "duration": durations.parse,
    "names": _parse_names,
    "services": _parse_services,
    "webhooks": _parse_webhooks,
    "secret": lambda value: Secret(_parse_secret(value)),
}


def load(config_dir: Path | None, environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from `config_dir/receiver.yaml` (None: no file) and the environment; raises
    the first error."""
    settings, errors = load_checked(config_dir, environ)
    if errors:
        raise errors[0]
    assert settings is not None
    return settings


def load_checked(
    config_dir: Path | None, environ: Mapping[str, str] | None = None
) -> tuple[Settings | None, list[ConfigError]]:
    """Settings, or None and every problem found (for `receiver check`)."""
    environ = os.environ if environ is None else environ
    file = (config_dir or Path()) / SETTINGS_FILE
    errors: list[ConfigError] = []
    document: dict[str, Any] = {}
    if config_dir is not None and file.exists():
        try:
            loaded = yamlfile.read(file)
        except ConfigError as e:
            return None, [e]
        if loaded is not None and not isinstance(loaded, dict):
            return None, [ConfigError(str(file), "", "expected a mapping of settings")]
        document = loaded or {}

    values: dict[str, Any] = {}
    sources: dict[str, tuple[str, str]] = {}  # field name → (file or variable, path)
    known_paths: set[str] = set()
    for field in dataclasses.fields(Settings):
        meta = field.metadata
        path, env, kind = meta["yaml"], meta["env"], meta["kind"]
        known_paths.add(path)
        try:
            raw, where = _lookup(field.name, path, env, kind, document, environ, str(file))
        except ConfigError as e:
            errors.append(e)
            continue
        if raw is _MISSING:
            continue
        try:
            value = _PARSERS["str" if kind == "choice" else kind](raw)
            if kind == "choice" and value not in meta["choices"]:
                raise ValueError(f"expected one of {', '.join(meta['choices'])}, got {value!r}")
        except ValueError as e:
            errors.append(ConfigError(where[0], where[1], str(e)))
            continue
        values[field.name], sources[field.name] = value, where

    if not _parse_bool(values.get("allow_plaintext_secrets", False)):
        for field in dataclasses.fields(Settings):
            meta = field.metadata
            if meta["kind"] == "secret" and _dig(document, meta["yaml"]) is not _MISSING:
                errors.append(
                    ConfigError(
                        str(file),
                        meta["yaml"],
                        f"secrets are not read from this file in plain text: set {meta['env']} "
                        f"or {meta['yaml']}{Settings.SECRET_FILE_SUFFIX} (a file path) instead",
                    )
                )
    known_paths |= {
        f.metadata["yaml"] + Settings.SECRET_FILE_SUFFIX
        for f in dataclasses.fields(Settings)
        if f.metadata["kind"] == "secret"
    }
    mappings = {
        f.metadata["yaml"]
        for f in dataclasses.fields(Settings)
        if f.metadata["kind"] in ("services", "webhooks")
    }
    errors.extend(
        ConfigError(str(file), path, "unknown setting")
        for path in _leaf_paths(document, mappings=mappings)
        if path not in known_paths
    )
    if errors:
        return None, errors
    # Built without its own checks first, so that each conflict is named where its value
    # came from (receiver.yaml and the path, or the environment variable).
    unchecked = object.__new__(Settings)
    for field in dataclasses.fields(Settings):
        object.__setattr__(unchecked, field.name, values.get(field.name, field.default))

    def origin(name: str) -> str:
        source = sources.get(name, (str(file), ""))[0]
        return f", from {source.removeprefix('environment ')}" if source != str(file) else ""

    conflicts = [
        ConfigError(*sources.get(name, (str(file), "")), message)
        for name, message in _conflicts(unchecked, origin)
    ]
    if conflicts:
        return None, conflicts
    return Settings(**values), []


class _Missing:
    pass


_MISSING: Any = _Missing()


def _lookup(
    name: str,
    path: str,
    env: str,
    kind: str,
    document: dict[str, Any],
    environ: Mapping[str, str],
    file: str,
) -> tuple[Any, tuple[str, str]]:
    """The raw value of one setting and where it came from: environment, file, or neither."""
    if env in environ:
        return environ[env], (f"environment {env}", "")
    if kind == "secret":
        file_env = env + Settings.SECRET_FILE_SUFFIX.upper()
        file_path, where = (
            (environ[file_env], (f"environment {file_env}", ""))
            if file_env in environ
            else (
                _dig(document, path + Settings.SECRET_FILE_SUFFIX),
                (file, path + Settings.SECRET_FILE_SUFFIX),
            )
        )
        if file_path is not _MISSING:
            try:
                return Path(str(file_path)).read_text(encoding="utf-8").strip(), where
            except OSError as e:
                message = f"cannot read secret file: {_short(e)}"
                raise ConfigError(where[0], where[1], message) from e
    value = _dig(document, path)
    return value, (file, path)


def credentials_missing(settings: Settings, file: str = SETTINGS_FILE) -> ConfigError | None:
    """Why `receiver serve` would refuse these settings for want of credentials, or None."""
    if settings.auth_disabled or settings.auth_token or settings.auth_basic_password:
        return None
    return ConfigError(
        file,
        "auth",
        "webhooks need credentials: set RECEIVER_AUTH_TOKEN (or auth.token_file, or basic"
        " auth), or switch authentication off explicitly with auth.disabled: true",
    )


def overridden(
    config_dir: Path | None, environ: Mapping[str, str] | None = None
) -> list[ConfigError]:
    """Settings written in receiver.yaml that the environment overrides: worth saying, as a
    Deployment's `env:` silently wins over a ConfigMap edit otherwise."""
    environ = os.environ if environ is None else environ
    file = (config_dir or Path()) / SETTINGS_FILE
    if config_dir is None or not file.is_file():
        return []
    try:
        document = yamlfile.read(file)
    except ConfigError:
        return []  # load_checked reports it
    if not isinstance(document, dict):
        return []
    found = []
    for field in dataclasses.fields(Settings):
        path, env = field.metadata["yaml"], field.metadata["env"]
        if env in environ and _dig(document, path) is not _MISSING:
            found.append(
                ConfigError(str(file), path, f"set here, but {env} in the environment wins over it")
            )
    return found


def _dig(document: dict[str, Any], path: str) -> Any:
    node: Any = document
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _leaf_paths(
    document: dict[str, Any],
    prefix: str = "",
    *,
    mappings: AbstractSet[str] = frozenset(),
) -> list[str]:
    paths = []
    for name, value in document.items():
        path = f"{prefix}{name}"
        if isinstance(value, dict) and value and path not in mappings:
            paths.extend(_leaf_paths(value, path + ".", mappings=mappings))
        else:
            paths.append(path)
    return paths


def _short(error: Exception) -> str:
    return str(error).splitlines()[0][:200]
