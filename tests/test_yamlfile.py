"""Configuration files are read safely: what `receiver check` passes, `serve` can load."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from receiver import configtree, settings, yamlfile
from receiver.errors import ConfigError
from tests import processes

BOMB = """
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
remediations:
- name: *g
  actions: [{action: escalate}]
"""


def test_a_yaml_alias_bomb_is_refused_in_a_moment(tmp_path: Path) -> None:
    file = tmp_path / "remediation.yaml"
    file.write_text(BOMB)
    started = time.monotonic()
    with pytest.raises(ConfigError, match=r"expands to \d+ values through YAML aliases"):
        yamlfile.read(file)
    assert time.monotonic() - started < 1


def test_aliases_within_reason_are_read(tmp_path: Path) -> None:
    file = tmp_path / "slo.yaml"
    file.write_text("base: &base {criteria: ['<600']}\npass: [*base]\nwarning: [*base]\n")
    assert yamlfile.read(file)["pass"] == [{"criteria": ["<600"]}]


def test_a_file_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "sli.yaml"
    file.write_text("indicators: {}\n" + "#" * yamlfile.MAX_BYTES)
    with pytest.raises(ConfigError, match=r"larger than the 1048576 a file may be"):
        yamlfile.read(file)


@pytest.mark.parametrize("target", ["fifo", "/dev/zero", "directory"])
def test_only_regular_files_are_read(tmp_path: Path, target: str) -> None:
    if target == "fifo":
        os.mkfifo(tmp_path / "fifo")
        source = tmp_path / "fifo"
    elif target == "directory":
        (tmp_path / "directory").mkdir()
        source = tmp_path / "directory"
    else:
        source = Path(target)
    link = tmp_path / "remediation.yaml"
    link.symlink_to(source)
    with pytest.raises(ConfigError, match="not a regular file"):
        yamlfile.read(link)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfe not text", "not UTF-8 text"),
        (b"[" * 5000 + b"]" * 5000, "invalid YAML"),
        (b"key: [unclosed\n", "invalid YAML"),
        (b"a: 1\nx: \x00\n", "line 2, column 4: invalid YAML: character #x0000 is not allowed"),
        (b"x: \x07\n", "invalid YAML: character #x0007 is not allowed"),
    ],
)
def test_unreadable_yaml_names_the_file(tmp_path: Path, content: bytes, message: str) -> None:
    file = tmp_path / "slo.yaml"
    file.write_bytes(content)
    with pytest.raises(ConfigError, match=message) as caught:
        yamlfile.read(file)
    assert caught.value.file == str(file)


def test_check_and_serve_refuse_the_same_bomb(config_dir: Path, tmp_path: Path) -> None:
    carts = config_dir / "sockshop" / "production" / "carts"
    (carts / "remediation.yaml").write_text(BOMB)
    (error,) = configtree.check(configtree.scan(config_dir))
    assert "expands to" in error.message
    checked = subprocess.run(
        [sys.executable, "-m", "receiver", "check", "--config", str(config_dir)],
        capture_output=True,
        text=True,
        timeout=30,
        env=processes.receiver_env(RECEIVER_AUTH_TOKEN="test-token-0123456789"),
    )
    assert checked.returncode == 1
    assert "expands to" in checked.stdout
    (config_dir / "receiver.yaml").write_text(BOMB.replace("remediations:", "server:"))
    loaded, errors = settings.load_checked(config_dir, {})
    assert loaded is None
    assert "expands to" in errors[0].message


@pytest.mark.parametrize(
    ("text", "line", "key"),
    [
        ("auth: {protect_reads: true}\nauth: {disabled: false}\n", 2, "auth"),
        ("a: {b: 1, b: 2}\n", 1, "b"),
        (
            "spec:\n  remediations:\n  - problemType: error_rate\n    problemType: default\n"
            "    actionsOnOpen: [{action: escalate}]\n",
            4,
            "problemType",
        ),
        ("objectives:\n- sli: a\n  sli: b\n", 3, "sli"),
        ("indicators:\n  rt: up\n  rt: down\n", 3, "rt"),
        ("1: a\n01: b\n", 2, 1),  # the same key as YAML reads it, written two ways
    ],
)
def test_a_key_written_twice_is_refused_with_line_and_key(
    tmp_path: Path, text: str, line: int, key: object
) -> None:
    file = tmp_path / "file.yaml"
    file.write_text(text)
    with pytest.raises(ConfigError) as caught:
        yamlfile.read(file)
    assert (caught.value.file, caught.value.path.split(",")[0]) == (str(file), f"line {line}")
    assert caught.value.message.startswith(f"invalid YAML: duplicate key {key!r} (first at line")


def test_merged_keys_are_not_repeats_and_the_written_ones_win(tmp_path: Path) -> None:
    file = tmp_path / "slo.yaml"
    file.write_text("base: &base {weight: 1, key_sli: false}\nobjective: {<<: *base, weight: 2}\n")
    assert yamlfile.read(file)["objective"] == {"weight": 2, "key_sli": False}


@pytest.mark.parametrize(
    "file", sorted((Path(__file__).parent / "data" / "keptn").glob("*.yaml")), ids=lambda p: p.name
)
def test_keptns_own_files_still_load(file: Path) -> None:
    assert isinstance(yamlfile.read(file), dict | list)
