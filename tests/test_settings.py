from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from receiver import reference, settings
from receiver.errors import ConfigError
from receiver.settings import Secret


def write(config_dir: Path, text: str) -> Path:
    config_dir.mkdir(exist_ok=True)
    (config_dir / "receiver.yaml").write_text(text)
    return config_dir


def test_every_setting_has_a_default(tmp_path: Path) -> None:
    loaded = settings.load(tmp_path, environ={})
    assert (loaded.host, loaded.port) == ("0.0.0.0", 8080)
    assert loaded.max_body_bytes == 1 << 20
    assert loaded.store_synchronous == "full"
    assert loaded.auth_token is None
    assert loaded.auth_disabled is False
    assert loaded.labels_service == ("service", "keptn_service")


def test_the_example_configuration_loads() -> None:
    loaded = settings.load(Path(__file__).parent.parent / "config", environ={})
    assert loaded.store_busy_timeout == 5.0


def test_the_environment_wins_over_the_file(tmp_path: Path) -> None:
    write(tmp_path, "server: {port: 9000}\nstore: {path: from-file.db}\n")
    loaded = settings.load(
        tmp_path,
        environ={
            "RECEIVER_PORT": "9100",
            "RECEIVER_STORE": "/data/journal.db",
            "RECEIVER_AUTH_TOKEN": "s3cret-0123456789abc",
            "RECEIVER_LABELS_SERVICE": "app, service",
            "RECEIVER_STORE_BUSY_TIMEOUT": "1500ms",
            "RECEIVER_AUTH_DISABLED": "false",
        },
    )
    assert loaded.port == 9100
    assert loaded.store_path == "/data/journal.db"
    assert loaded.auth_token == Secret("s3cret-0123456789abc")
    assert loaded.labels_service == ("app", "service")
    assert loaded.store_busy_timeout == 1.5


def test_secrets_never_show_in_repr(tmp_path: Path) -> None:
    loaded = settings.load(tmp_path, environ={"RECEIVER_AUTH_TOKEN": "s3cret-value-0123456789"})
    assert loaded.auth_token is not None
    assert (
        loaded.auth_token.reveal() == "s3cret-value-0123456789"
    )  # loaded, and only revealed on asking
    assert "s3cret-value-0123456789" not in repr(loaded)
    assert "s3cret-value-0123456789" not in str(loaded.auth_token)


def test_a_plaintext_secret_in_the_file_is_refused_by_default(tmp_path: Path) -> None:
    write(tmp_path, "auth:\n  token: s3cret-value-0123456789\n")
    loaded, errors = settings.load_checked(tmp_path, environ={})
    assert loaded is None
    (error,) = errors
    assert error.path == "auth.token"
    assert "RECEIVER_AUTH_TOKEN" in str(error)
    assert "s3cret-value-0123456789" not in str(error)
    write(tmp_path, "allow_plaintext_secrets: true\nauth:\n  token: s3cret-value-0123456789\n")
    assert settings.load(tmp_path, environ={}).auth_token == Secret("s3cret-value-0123456789")


def test_secrets_are_read_from_files(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("from-file-0123456789\n")
    write(tmp_path / "c", f"auth:\n  token_file: {tmp_path / 'token'}\n")
    assert settings.load(tmp_path / "c", environ={}).auth_token == Secret("from-file-0123456789")
    from_env = settings.load(
        tmp_path, environ={"RECEIVER_AUTH_TOKEN_FILE": str(tmp_path / "token")}
    )
    assert from_env.auth_token == Secret("from-file-0123456789")


def test_a_missing_secret_file_names_where_it_was_set(tmp_path: Path) -> None:
    write(tmp_path, "auth:\n  token_file: /nonexistent/token\n")
    _, errors = settings.load_checked(tmp_path, environ={})
    assert [(e.path, "cannot read secret file" in e.message) for e in errors] == [
        ("auth.token_file", True)
    ]


def test_every_problem_is_reported_with_its_path(tmp_path: Path) -> None:
    write(
        tmp_path,
        "server:\n  port: eighty\n  hots: x\nstore:\n  synchronous: off\nlog: {level: loud}\n",
    )
    _, errors = settings.load_checked(tmp_path, environ={})
    assert sorted(e.path for e in errors) == [
        "log.level",
        "server.hots",
        "server.port",
        "store.synchronous",
    ]
    assert all(e.file.endswith("receiver.yaml") for e in errors)


def test_a_bad_environment_value_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="environment RECEIVER_PORT: expected a whole number"):
        settings.load(tmp_path, environ={"RECEIVER_PORT": "http"})


def test_a_section_written_twice_is_refused_rather_than_half_read(tmp_path: Path) -> None:
    # YAML loaders keep the last one: the first section's protect_reads would be dropped.
    write(
        tmp_path, "auth:\n  protect_reads: true\nserver:\n  port: 8080\nauth:\n  disabled: false\n"
    )
    _, errors = settings.load_checked(tmp_path, environ={})
    (error,) = errors
    assert (error.file, error.path) == (str(tmp_path / "receiver.yaml"), "line 5, column 1")
    assert error.message == (
        "invalid YAML: duplicate key 'auth' (first at line 1); a YAML loader would keep only"
        " the last one"
    )


def test_broken_yaml_is_reported(tmp_path: Path) -> None:
    write(tmp_path, "server: [\n")
    _, errors = settings.load_checked(tmp_path, environ={})
    (error,) = errors
    assert (error.file, error.path) == (str(tmp_path / "receiver.yaml"), "line 2, column 1")
    assert error.message.startswith("invalid YAML: expected the node content")


def test_the_configuration_reference_lists_every_setting_as_the_code_has_it() -> None:
    page = (reference.DOCS / "configuration.md").read_text()
    table = reference.settings_table()
    assert reference.render(page, "settings", table) == page, "run python -m receiver.reference"
    for field in dataclasses.fields(settings.Settings):
        assert f"| `{field.metadata['yaml']}` | `{field.metadata['env']}` |" in page


def test_an_empty_secret_is_refused_rather_than_accepting_empty_credentials(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("\n")
    for environ in (
        {"RECEIVER_AUTH_TOKEN": ""},
        {"RECEIVER_AUTH_TOKEN_FILE": str(tmp_path / "token")},
    ):
        _, errors = settings.load_checked(tmp_path, environ=environ)
        assert [e.message for e in errors] == ["is empty: unset it, or give it a value"]


@pytest.mark.parametrize(
    ("text", "environ", "path", "message"),
    [
        ("scaling: {min_replicas: 5, max_replicas: 2}\n", {}, "scaling.min_replicas",
         "scaling.min_replicas (5) is larger than scaling.max_replicas (2)"),
        ("scaling: {min_replicas: 5}\n", {"RECEIVER_SCALING_MAX_REPLICAS": "2"},
         "scaling.min_replicas", "scaling.min_replicas (5) is larger than"
         " scaling.max_replicas (2, from RECEIVER_SCALING_MAX_REPLICAS)"),
        ("", {"RECEIVER_AUTH_BASIC_PASSWORD": "a-long-enough-password"},
         "RECEIVER_AUTH_BASIC_PASSWORD",
         "auth.basic_password is set but auth.basic_username is not"),
        ("", {"RECEIVER_AUTH_TOKEN": "short"}, "RECEIVER_AUTH_TOKEN",
         "auth.token is shorter than 16 characters: anyone who can reach the port could"
         " guess it (e.g. openssl rand -hex 24)"),
        ("server: {max_connections: 0}\n", {}, "server.max_connections",
         "server.max_connections must be at least 1"),
        ("auth: {disabled: maybe}\n", {}, "auth.disabled", "expected true or false, got 'maybe'"),
        ("", {"RECEIVER_AUTH_DISABLED": "sure"}, "RECEIVER_AUTH_DISABLED",
         "expected true or false, got 'sure'"),
        ("server: {port: eighty}\n", {}, "server.port", "expected a whole number, got 'eighty'"),
        ("server: {port: -1}\n", {}, "server.port", "expected a number >= 0, got -1"),
        ("labels: {service: 7}\n", {}, "labels.service", "expected a list of label names"),
        ("labels: {service: []}\n", {}, "labels.service", "expected at least one label name"),
        ("", {"RECEIVER_SERVICES": "{not json"}, "RECEIVER_SERVICES",
         "expected a JSON object of project/stage/service to settings"),
        ("services: [a]\n", {}, "services",
         "expected a mapping of project/stage/service to settings"),
        ("services: {carts: {}}\n", {}, "services",
         "'carts': expected a key of the form project/stage/service"),
        ("services: {a/b/c: 3}\n", {}, "services", "a/b/c: expected a mapping"),
        ("services: {a/b/c: {replicas: 3}}\n", {}, "services",
         "a/b/c: unknown setting 'replicas'"),
        ("services: {a/b/c: {max_replicas: -2}}\n", {}, "services",
         "a/b/c.max_replicas: expected a whole number >= 0"),
        ("services: {a/b/c: {namespace: 5}}\n", {}, "services",
         "a/b/c.namespace: expected a string"),
        ("- a list\n", {}, "", "expected a mapping of settings"),
        ("store: {sync: full}\n", {}, "store.sync", "unknown setting"),
        ("store: {synchronous: sometimes}\n", {}, "store.synchronous",
         "expected one of full, normal, got 'sometimes'"),
    ],
)  # fmt: skip
def test_a_bad_setting_is_named_by_where_it_came_from(
    tmp_path: Path, text: str, environ: dict[str, str], path: str, message: str
) -> None:
    write(tmp_path, text)
    loaded, errors = settings.load_checked(tmp_path, environ)
    assert loaded is None
    if path.startswith("RECEIVER_"):
        where = (f"environment {path}", "")
    else:
        where = (str(tmp_path / "receiver.yaml"), path)
    assert [(e.file, e.path, e.message) for e in errors] == [(*where, message)]


def test_actions_run_as_http_calls_are_mapped_by_name_and_checked(tmp_path: Path) -> None:
    (tmp_path / "receiver.yaml").write_text(
        "actions:\n  webhooks:\n    run-snow-wf: {url: 'https://snow.example.com/x',"
        " token_file: /var/run/secrets/snow}\n"
    )
    loaded = settings.load(tmp_path, environ={})
    assert loaded.action_webhooks == {
        "run-snow-wf": settings.WebhookAction(
            url="https://snow.example.com/x", token_file="/var/run/secrets/snow"
        )
    }
    from_env = settings.load(
        None, environ={"RECEIVER_ACTIONS_WEBHOOKS": '{"rollback": {"url": "http://roll:80/"}}'}
    )
    assert from_env.action_webhooks["rollback"].url == "http://roll:80/"
    for text, message in (
        ("{x: {url: 'ftp://a'}}", "x.url: expected an http:// or https:// URL"),
        ("{x: {url: 'http://a', token: abc}}", "x: unknown setting 'token'"),
        ("{x: 'http://a'}", "x: expected a mapping with url (and token_file)"),
        ("[a]", "expected a mapping of action name to {url, token_file}"),
    ):
        (tmp_path / "receiver.yaml").write_text(f"actions:\n  webhooks: {text}\n")
        _, errors = settings.load_checked(tmp_path, environ={})
        assert [(e.path, e.message) for e in errors] == [("actions.webhooks", message)], text
