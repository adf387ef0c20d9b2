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
from receiver.rules import remediation
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
    (error,) = remediation.check(configtree.scan(config_dir))
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
