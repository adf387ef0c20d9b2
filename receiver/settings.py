"""One frozen `Settings`, built once from `receiver.yaml` and the environment.

Every setting has a default (with the reason for it next to it), a place in `receiver.yaml`
and a `RECEIVER_…` environment variable; the environment wins over the file. Secrets are
never read from the YAML in plain text unless `allow_plaintext_secrets: true` says so: they
come from the environment or from a file (`…_file`, a mounted Kubernetes Secret).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import yaml

from receiver import durations
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

    # In the working directory by default; the Kubernetes manifests point it at a volume.
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
    # How long a write waits for a lock held by another process before answering 503.
    store_busy_timeout: float = _field(
        5.0, "store.busy_timeout", "RECEIVER_STORE_BUSY_TIMEOUT", "duration"
    )

    # Authentication is on unless switched off explicitly (which logs a warning).
    auth_disabled: bool = _field(False, "auth.disabled", "RECEIVER_AUTH_DISABLED", "bool")
    auth_token: Secret | None = _field(None, "auth.token", "RECEIVER_AUTH_TOKEN", "secret")
    auth_basic_username: str | None = _field(
        None, "auth.basic_username", "RECEIVER_AUTH_BASIC_USERNAME", "optional_str"
    )
    auth_basic_password: Secret | None = _field(
        None, "auth.basic_password", "RECEIVER_AUTH_BASIC_PASSWORD", "secret"
    )
    # Reads (problem lists) are open by default so `receiver status` works through a
    # port-forward; set this where problem titles are sensitive.
    auth_protect_reads: bool = _field(
        False, "auth.protect_reads", "RECEIVER_AUTH_PROTECT_READS", "bool"
    )
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
    prometheus_token: Secret | None = _field(
        None, "prometheus.token", "RECEIVER_PROMETHEUS_TOKEN", "secret"
    )
    prometheus_basic_username: str | None = _field(
        None, "prometheus.basic_username", "RECEIVER_PROMETHEUS_BASIC_USERNAME", "optional_str"
    )
    prometheus_basic_password: Secret | None = _field(
        None, "prometheus.basic_password", "RECEIVER_PROMETHEUS_BASIC_PASSWORD", "secret"
    )
    # The tenant URL, e.g. https://abc12345.live.dynatrace.com; empty: Dynatrace SLIs fail.
    dynatrace_url: str = _field("", "dynatrace.url", "RECEIVER_DYNATRACE_URL", "str")
    dynatrace_token: Secret | None = _field(
        None, "dynatrace.token", "RECEIVER_DYNATRACE_TOKEN", "secret"
    )
    # Keptn evaluated the SLO over the 10 minutes before the evaluation.
    remediation_evaluation_window: float = _field(
        600.0,
        "remediation.evaluation_window",
        "RECEIVER_REMEDIATION_EVALUATION_WINDOW",
        "duration",
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
        if self.auth_basic_password is not None and not self.auth_basic_username:
            raise ValueError("auth.basic_password is set but auth.basic_username is not")


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


def _parse_names(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise ValueError("expected a list of label names")
    names = tuple(item.strip() for item in items if item.strip())
    if not names:
        raise ValueError("expected at least one label name")
    return names


_PARSERS: dict[str, Callable[[Any], Any]] = {
    "str": _parse_str,
    "optional_str": _parse_str,
    "int": _parse_int,
    "bool": _parse_bool,
    "duration": durations.parse,
    "names": _parse_names,
    "secret": lambda value: Secret(_parse_str(value)),
}


def load(config_dir: Path, environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from `config_dir/receiver.yaml` and the environment; raises the first error."""
    settings, errors = load_checked(config_dir, environ)
    if errors:
        raise errors[0]
    assert settings is not None
    return settings


def load_checked(
    config_dir: Path, environ: Mapping[str, str] | None = None
) -> tuple[Settings | None, list[ConfigError]]:
    """Settings, or None and every problem found (for `receiver check`)."""
    environ = os.environ if environ is None else environ
    file = config_dir / SETTINGS_FILE
    errors: list[ConfigError] = []
    document: dict[str, Any] = {}
    if file.exists():
        try:
            loaded = yaml.safe_load(file.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as e:
            return None, [ConfigError(str(file), "", f"cannot read: {_short(e)}")]
        if loaded is not None and not isinstance(loaded, dict):
            return None, [ConfigError(str(file), "", "expected a mapping of settings")]
        document = loaded or {}

    values: dict[str, Any] = {}
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
        values[field.name] = value

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
    errors.extend(
        ConfigError(str(file), path, "unknown setting")
        for path in _leaf_paths(document)
        if path not in known_paths
    )
    if errors:
        return None, errors
    try:
        return Settings(**values), []
    except ValueError as e:
        return None, [ConfigError(str(file), "auth", str(e))]


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


def _dig(document: dict[str, Any], path: str) -> Any:
    node: Any = document
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _leaf_paths(document: dict[str, Any], prefix: str = "") -> list[str]:
    paths = []
    for name, value in document.items():
        path = f"{prefix}{name}"
        if isinstance(value, dict) and value:
            paths.extend(_leaf_paths(value, path + "."))
        else:
            paths.append(path)
    return paths


def _short(error: Exception) -> str:
    return str(error).splitlines()[0][:200]
