"""What `serve` runs is what `check` accepts: `receiver check`, `receiver serve` and a reload
of a running receiver give one verdict on any configuration directory, with the same
messages — on the broken variants found by trying it as a user and an attacker would, and
on trees broken at random."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import prometheus_client as prom
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from receiver import cli, configuration, server
from receiver.models import ServiceRef
from tests import processes
from tests.conftest import AUTH, EXAMPLE_CONFIG, TOKEN, config_map_volume, make_settings

CARTS = Path("sockshop") / "production" / "carts"
BOMB = 'a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]\n' + "".join(
    f"{n}: &{n} [{', '.join([f'*{p}'] * 10)}]\n" for p, n in zip("abcdef", "bcdefg", strict=True)
)


@dataclasses.dataclass(frozen=True)
class Variant:
    """A broken configuration: what is done to a copy of the example, and a fragment of the
    message that must say what is wrong."""

    change: Callable[[Path], None]
    says: str
    env: dict[str, str] = dataclasses.field(default_factory=dict)


def _edit(relative: Path | str, old: str, new: str) -> Callable[[Path], None]:
    def change(root: Path) -> None:
        file = root / relative
        text = file.read_text()
        assert old in text, (relative, old)
        file.write_text(text.replace(old, new, 1))

    return change


def _write(relative: Path | str, content: str | bytes) -> Callable[[Path], None]:
    def change(root: Path) -> None:
        file = root / relative
        file.unlink(missing_ok=True)
        if isinstance(content, bytes):
            file.write_bytes(content)
        else:
            file.write_text(content)

    return change


def _directory(relative: Path) -> Callable[[Path], None]:
    def change(root: Path) -> None:
        (root / relative).unlink()
        (root / relative).mkdir()

    return change


def _dangling(relative: Path) -> Callable[[Path], None]:
    def change(root: Path) -> None:
        (root / relative).unlink()
        (root / relative).symlink_to(root / "nowhere.yaml")

    return change


REMEDIATION, SLO, SLI = CARTS / "remediation.yaml", CARTS / "slo.yaml", CARTS / "sli.yaml"

# The 23 variants of issue 27 (13 of which `serve` used to start with), each changing the
# example configuration in one way.
VARIANTS = {
    "remediation: a wrong type": Variant(
        _edit(REMEDIATION, '      value: "1"\n', "      value: [1]\n"),
        "expected a replica delta such as +1, 1 or -1, got [1]",
    ),
    "remediation: problemTyp": Variant(
        _edit(REMEDIATION, "- problemType: error_rate", "- problemTyp: error_rate"),
        "problemType: missing: the problem title prefix",
    ),
    "remediation: a recursive alias": Variant(
        _write(REMEDIATION, "remediations: &r\n- name: loop\n  actions: *r\n"),
        "remediations[0].actions[0]",
    ),
    "remediation: wait: soon": Variant(
        _edit(
            REMEDIATION,
            "  - problemType: error_rate\n",
            "  - problemType: error_rate\n    wait: soon\n",
        ),
        "wait: expected a duration",
    ),
    "remediation: problemType twice": Variant(
        _edit(
            REMEDIATION,
            "  - problemType: error_rate\n",
            "  - problemType: error_rate\n    problemType: default\n",
        ),
        "duplicate key 'problemType'",
    ),
    "remediation: scaling by lots": Variant(
        _edit(REMEDIATION, '      value: "1"\n', "      value: lots\n"),
        "got 'lots'",
    ),
    "slo: criteria <<600": Variant(_edit(SLO, '"<600"', '"<<600"'), "'<<600'"),
    "slo: a total of ninety%": Variant(_edit(SLO, '"90%"', '"ninety%"'), "ninety%"),
    "slo: objectives: none": Variant(
        _write(SLO, "spec_version: '1.0'\nobjectives: none\n"), "objectives: expected a list"
    ),
    "slo: a dangling symlink": Variant(_dangling(SLO), "cannot read"),
    "slo: a directory": Variant(_directory(SLO), "not a regular file"),
    "slo: an alias bomb": Variant(_write(SLO, BOMB + "objectives: [*g]\n"), "through YAML aliases"),
    "slo: a tab": Variant(
        _edit(SLO, "- sli: error_rate\n", "- sli: error_rate\n\tkey_sli: true\n"), "invalid YAML"
    ),
    "slo: sli twice": Variant(
        _edit(SLO, "- sli: error_rate\n", "- sli: error_rate\n  sli: response_time_p90\n"),
        "duplicate key 'sli'",
    ),
    "sli: not UTF-8": Variant(
        _write(SLI, b"indicators:\n  error_rate: \xff\xfe\n"), "not UTF-8 text"
    ),
    "sli: a tab": Variant(_write(SLI, "indicators:\n\terror_rate: up\n"), "invalid YAML"),
    "sli: an alias bomb": Variant(
        _write(SLI, BOMB + "indicators: {error_rate: *g}\n"), "through YAML aliases"
    ),
    "sli: a directory": Variant(_directory(SLI), "not a regular file"),
    "sli: an indicator twice": Variant(
        _edit(SLI, "indicators:\n", "indicators:\n  error_rate: up\n"), "duplicate key 'error_rate'"
    ),
    "receiver.yaml: auth twice": Variant(
        _edit("receiver.yaml", "\nsli:\n", "\nauth:\n  protect_reads: true\nsli:\n"),
        "duplicate key 'auth'",
    ),
    "receiver.yaml: an unknown setting": Variant(
        _edit("receiver.yaml", "  port: 8080", "  prot: 8080"), "server.prot: unknown setting"
    ),
    "receiver.yaml: port x": Variant(
        _edit("receiver.yaml", "  port: 8080", "  port: x"), "expected a whole number, got 'x'"
    ),
    "environment: a short token": Variant(
        lambda root: None,
        "environment RECEIVER_AUTH_TOKEN: auth.token is shorter than 16 characters",
        {"RECEIVER_AUTH_TOKEN": "short"},
    ),
}


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("RECEIVER_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("RECEIVER_AUTH_TOKEN", TOKEN)
    return monkeypatch


def check_lines(root: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    """`receiver check`'s exit code and the problems it printed."""
    code = cli.main(["check", "--config", str(root)])
    out = capsys.readouterr().out.splitlines()
    return code, [line for line in out if not line.startswith("warning: ")] if code else []


def serve_lines(root: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    """What `receiver serve` printed as it refused to start (it must refuse)."""
    assert cli.main(["serve", "--config", str(root), "--host", "127.0.0.1", "--port", "0"]) == 2
    *problems, summary = capsys.readouterr().err.splitlines()
    assert summary.startswith(f"receiver: not starting: {len(problems)} problem(s) found in")
    return problems


@pytest.mark.parametrize("name", VARIANTS)
def test_check_and_serve_refuse_a_broken_configuration_with_the_same_messages(
    name: str,
    config_dir: Path,
    environment: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    variant = VARIANTS[name]
    variant.change(config_dir)
    for key, value in variant.env.items():
        environment.setenv(key, value)
    code, checked = check_lines(config_dir, capsys)
    assert code == 1
    assert any(variant.says in line for line in checked), checked
    assert serve_lines(config_dir, capsys) == checked


def test_a_configuration_mounted_as_a_configmap_volume_is_read_whole(
    tmp_path: Path, environment: pytest.MonkeyPatch
) -> None:
    """In a pod the files are symlinks through `..data` (a ConfigMap volume): followed, or a
    receiver in a pod finds no remediation.yaml (it did; only running the image showed it)."""
    volume = config_map_volume(tmp_path / "config")
    config = configuration.require(volume)
    assert config.services() == (
        ServiceRef(project="sockshop", stage="production", service="carts"),
    )
    assert sorted(str(f) for f in config.tree.files) == [
        "sockshop/production/carts/remediation.yaml",
        "sockshop/production/carts/sli.yaml",
        "sockshop/production/carts/slo.yaml",
    ]
    assert set(config.slos) == set(config.services())


def call(port: int, path: str, method: str = "GET") -> tuple[int, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        headers=AUTH,
        method=method,
        data=b"" if method == "POST" else None,
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def restore(config_dir: Path) -> None:
    shutil.rmtree(config_dir)
    shutil.copytree(EXAMPLE_CONFIG, config_dir)


def test_a_running_receiver_refuses_to_reload_what_check_refuses(
    config_dir: Path,
    tmp_path: Path,
    environment: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    port = processes.free_port()
    env = {"RECEIVER_AUTH_TOKEN": TOKEN, "RECEIVER_STORE": str(tmp_path / "journal.db")}
    env |= {"RECEIVER_WATCH_CONFIG": "0s", "KUBECONFIG": str(tmp_path / "none")}
    with processes.receiver(config_dir, port=port, log=tmp_path / "receiver.log", **env):
        # The configuration in force reloads: check accepted it, so does a reload.
        assert call(port, "/-/reload", "POST")[0] == 200
        for name, variant in VARIANTS.items():
            if variant.env:
                continue  # the process's environment is its own
            restore(config_dir)
            variant.change(config_dir)
            _, checked = check_lines(config_dir, capsys)
            status, answer = call(port, "/-/reload", "POST")
            assert (status, answer["problems"]) == (400, checked), name
            _, ready = call(port, "/readyz")
            assert ready["last_reload"].startswith(f"refused: {checked[0]}"), name
        restore(config_dir)
        assert call(port, "/-/reload", "POST")[0] == 200
        assert "last_reload" not in call(port, "/readyz")[1]


def test_serve_as_a_user_runs_it_does_not_start_on_a_broken_configuration(
    config_dir: Path,
    tmp_path: Path,
    environment: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    VARIANTS["slo: criteria <<600"].change(config_dir)
    _, checked = check_lines(config_dir, capsys)
    port = processes.free_port()
    served = subprocess.run(
        [
            sys.executable,
            "-m",
            "receiver",
            "serve",
            "--config",
            str(config_dir),
            "--port",
            str(port),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=processes.receiver_env(
            RECEIVER_AUTH_TOKEN=TOKEN, RECEIVER_STORE=str(tmp_path / "j.db")
        ),
    )
    assert served.returncode == 2
    assert served.stderr.splitlines()[:-1] == checked
    assert not (tmp_path / "j.db").exists()  # it stopped before it opened anything


# -- trees broken at random --------------------------------------------------------------------

FILES = ("receiver.yaml", str(REMEDIATION), str(SLO), str(SLI))
scalars = st.none() | st.booleans() | st.integers(-3, 700) | st.text(max_size=6) | st.just("10m")
mutations = st.one_of(
    st.tuples(st.just("set"), st.sampled_from(FILES), st.integers(0, 200), scalars),
    st.tuples(st.just("delete"), st.sampled_from(FILES), st.integers(0, 200)),
    st.tuples(st.just("rename"), st.sampled_from(FILES), st.integers(0, 200)),
    st.tuples(st.just("repeat line"), st.sampled_from(FILES), st.integers(0, 200)),
    st.tuples(st.just("tab"), st.sampled_from(FILES), st.integers(0, 200)),
    st.tuples(st.just("bytes"), st.sampled_from(FILES), st.binary(min_size=1, max_size=4)),
    st.tuples(st.just("directory"), st.sampled_from(FILES[1:])),
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*prefix, key)
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield (*prefix, index)
            yield from _paths(value, (*prefix, index))


def mutate(root: Path, mutation: tuple[Any, ...]) -> None:
    kind, name, *rest = mutation
    file = root / name
    if not file.is_file():
        return  # a directory already
    if kind == "directory":
        file.unlink()
        file.mkdir()
        return
    text = file.read_bytes()
    lines = text.splitlines(keepends=True)
    if kind in ("repeat line", "tab"):
        at = rest[0] % len(lines)
        lines.insert(at, lines[at] if kind == "repeat line" else b"\t" + lines[at])
        file.write_bytes(b"".join(lines))
        return
    if kind == "bytes":
        file.write_bytes(text + b"x: " + rest[0] + b"\n")
        return
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        return  # an earlier mutation broke it already
    paths = list(_paths(document))
    if not paths:
        return
    *parents, last = paths[rest[0] % len(paths)]
    parent = document
    for part in parents:
        parent = parent[part]
    if kind == "set":
        parent[last] = rest[1]
    elif kind == "delete":
        del parent[last]
    elif isinstance(parent, dict):  # rename
        parent[f"{last}x"] = parent.pop(last)
    file.write_text(yaml.safe_dump(document, sort_keys=False))


@contextlib.contextmanager
def running_receiver(root: Path, tmp: Path) -> Iterator[int]:
    app = server.create_app(
        configuration.with_settings(root, make_settings(tmp, watch_config=0.0)),
        registry=prom.CollectorRegistry(),
    )
    with processes.receiver_in_thread(app) as url:
        yield int(url.rsplit(":", 1)[1])


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(changes=st.lists(mutations, min_size=1, max_size=3))
def test_check_serve_and_reload_agree_on_any_broken_tree(
    tmp_path: Path,
    environment: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    changes: list[tuple[Any, ...]],
) -> None:
    with tempfile.TemporaryDirectory(dir=tmp_path) as scratch:
        root = Path(scratch) / "config"
        shutil.copytree(EXAMPLE_CONFIG, root)
        with running_receiver(root, Path(scratch)) as port:
            for change in changes:
                mutate(root, change)
            code, checked = check_lines(root, capsys)
            status, answer = call(port, "/-/reload", "POST")
            if code == 0:
                assert status == 200, answer
                assert configuration.load(root).configuration is not None  # serve would start
            else:
                assert (status, answer["problems"]) == (400, checked)
                assert serve_lines(root, capsys) == checked
