"""Real processes for tests: the receiver as users run it, and servers from Debian packages."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import aiohttp.web


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_http(
    url: str, *, timeout: float = 20.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - loopback
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer 200 within {timeout} s")


def receiver_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")}
    return env | {"RECEIVER_LOG_FORMAT": "json"} | extra


@contextlib.contextmanager
def receiver(
    config_dir: Path, *, port: int, log: Path, **env: str
) -> Iterator[subprocess.Popen[bytes]]:
    """`receiver serve` in a subprocess on loopback; stopped on exit if still running (SIGTERM,
    as Kubernetes stops it, so that it shuts down cleanly and coverage is written; SIGKILL
    after 10 s)."""
    with log.open("ab") as output:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "receiver",
                "serve",
                "--config",
                str(config_dir),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=receiver_env(**env),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", process=process)
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        process.wait(timeout=10)


def binary(name: str) -> str:
    """A program from the system or from this Python's bin directory (PyPI-installed tools)."""
    path = (
        shutil.which(name)
        or shutil.which(name, path=str(Path(sys.executable).parent))
        or f"/usr/bin/{name}"
    )
    if not Path(path).exists():
        raise RuntimeError(f"{name} is not installed: run scripts/test, which installs it")
    return path


class AsyncReceiver:
    """`receiver serve` as a subprocess, driven from async tests (stand-ins share the loop)."""

    def __init__(self, config_dir: Path, *, port: int, log: Path, env: dict[str, str]) -> None:
        self.config_dir = config_dir
        self.port = port
        self.log = log
        self.env = env
        self.process: asyncio.subprocess.Process | None = None
        self.url = f"http://127.0.0.1:{port}"

    async def start(self) -> None:
        with self.log.open("ab") as output:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "receiver",
                "serve",
                "--config",
                str(self.config_dir),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                env=receiver_env(**self.env),
                stdout=output,
                stderr=asyncio.subprocess.STDOUT,
            )
        async with aiohttp.ClientSession() as session:
            for _ in range(400):
                if self.process.returncode is not None:
                    raise RuntimeError(f"the receiver exited: {self.log.read_text()[-2000:]}")
                try:
                    async with session.get(f"{self.url}/readyz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)
        raise TimeoutError("the receiver did not become ready")

    async def kill(self) -> None:
        """SIGKILL: no chance to flush, close or finish anything."""
        assert self.process is not None
        self.process.kill()
        await self.process.wait()

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


@contextlib.contextmanager
def serve_in_thread(
    app: aiohttp.web.Application, *, ssl_context: ssl.SSLContext | None = None
) -> Iterator[str]:
    """An aiohttp app on its own event loop in a thread, for sync tests; yields its URL
    (https:// with `ssl_context`)."""
    import threading

    from aiohttp import web

    port = free_port()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, access_log=None)
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", port, ssl_context=ssl_context)
        loop.run_until_complete(site.start())
        started.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=serve, name=f"server-{port}", daemon=True)
    thread.start()
    started.wait(10)
    try:
        yield f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


@contextlib.contextmanager
def receiver_in_thread(app: aiohttp.web.Application) -> Iterator[str]:
    """The receiver's app served as `receiver serve` serves it (its listener: connection
    cap, idle timeout, its answer to unparsable requests) on loopback, in a thread, on a
    free port; yields its URL."""
    import dataclasses
    import threading

    from receiver import listener, server

    settings = app[server.SETTINGS]
    settings = dataclasses.replace(settings, host="127.0.0.1", port=free_port())
    loop = asyncio.new_event_loop()
    url: list[str] = []
    started = threading.Event()

    def on_start(name: str) -> None:
        url.append(name)
        started.set()

    def stop() -> None:
        for task in asyncio.all_tasks(loop):
            if task.get_name() == "serve":
                task.cancel()

    thread = threading.Thread(
        target=listener.run,
        args=(app, settings, loop),
        kwargs={"started": on_start},
        name=f"receiver-{settings.port}",
        daemon=True,
    )
    thread.start()
    if not started.wait(10):
        raise TimeoutError("the receiver did not start listening within 10 s")
    try:
        yield url[0]
    finally:
        loop.call_soon_threadsafe(stop)
        thread.join(10)


def alertmanager_config(receiver_port: int, token: str) -> str:
    """An Alertmanager route delivering every alert at once to a receiver on loopback, with
    bearer auth in `http_config` as production does (group_interval 0 is refused; 100ms is
    the fastest that delivers in about 0.1 s)."""
    return f"""
route:
  receiver: selfheal
  group_by: [alertname]
  group_wait: 0s
  group_interval: 100ms
  repeat_interval: 1h
receivers:
- name: selfheal
  webhook_configs:
  - url: http://127.0.0.1:{receiver_port}/webhooks/alertmanager
    send_resolved: true
    http_config:
      authorization:
        type: Bearer
        credentials: {token}
"""
