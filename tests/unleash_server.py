"""A real Unleash server (npm `unleash-server`, pinned in tests/unleash/package.json) on a
real PostgreSQL (tests/postgres_server.py, the suite's one), both on loopback, once per test
session.
Tokens: an admin token (the receiver's) and a client token (what an application's SDK
uses) are created at start through Unleash's `initApiTokens`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests import postgres_server, processes

HERE = Path(__file__).parent / "unleash"
ADMIN_TOKEN = "*:*.selfheal-test-admin-token"
CLIENT_TOKEN = "*:production.selfheal-test-client-token"


@dataclasses.dataclass
class Unleash:
    url: str
    admin_token: str = ADMIN_TOKEN
    client_token: str = CLIENT_TOKEN

    def admin(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        request = urllib.request.Request(  # noqa: S310 - loopback
            f"{self.url}{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": self.admin_token, "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                text = response.read()
                return response.status, json.loads(text) if text else None
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace")

    def create_flag(self, name: str, *, enabled_in: str | None = "production") -> None:
        status, body = self.admin(
            "POST", "/api/admin/projects/default/features", {"name": name, "type": "release"}
        )
        assert status in (200, 201), body
        if enabled_in:
            status, body = self.admin(
                "POST",
                f"/api/admin/projects/default/features/{name}/environments/{enabled_in}/on",
            )
            assert status == 200, body

    def enabled(self, name: str, environment: str = "production") -> bool:
        status, body = self.admin("GET", f"/api/admin/projects/default/features/{name}")
        assert status == 200, body
        return bool(next(e["enabled"] for e in body["environments"] if e["name"] == environment))


@contextlib.contextmanager
def running(workdir: Path, postgres: postgres_server.Postgres) -> Iterator[Unleash]:
    if not (HERE / "node_modules" / "unleash-server").exists():
        raise RuntimeError(
            "unleash-server is not installed: run scripts/test (npm ci in tests/unleash)"
        )
    port = processes.free_port()
    node = None
    try:
        postgres.create_database("unleash")
        env = os.environ | {
            "UNLEASH_DB_PORT": str(postgres.port),
            "UNLEASH_DB_USER": postgres.user,
            "UNLEASH_DB_NAME": "unleash",
            "UNLEASH_PORT": str(port),
            "UNLEASH_ADMIN_TOKEN": ADMIN_TOKEN,
            "UNLEASH_CLIENT_TOKEN": CLIENT_TOKEN,
            "NODE_ENV": "production",
        }
        with (workdir / "unleash.log").open("wb") as output:
            node = subprocess.Popen(
                ["node", str(HERE / "start.js")],
                env=env,
                cwd=HERE,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        server = Unleash(url=f"http://127.0.0.1:{port}")
        processes.wait_http(f"{server.url}/health", process=node, timeout=90)
        deadline = time.monotonic() + 30
        while server.admin("GET", "/api/admin/projects/default/features")[0] != 200:
            if time.monotonic() > deadline:
                raise TimeoutError("Unleash did not accept the admin token within 30 s")
            time.sleep(0.2)
        yield server
    finally:
        if node is not None:
            node.terminate()
            node.wait(timeout=20)
