"""The listening socket's limits, on a real `receiver serve`: connections beyond the cap get
503 and are closed, idle and slow-header connections are let go, a request aiohttp cannot
parse is answered without quoting it, a taken port is one clear line, SIGTERM stops it."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests import processes
from tests.conftest import AUTH, TOKEN


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def metric(port: int, name: str) -> float:
    # A closed connection leaves the count once its handler's task has ended: the next loop
    # iterations. Until then the cap may still refuse this one (503: retry, as a client would).
    deadline = time.monotonic() + 5
    while True:
        try:
            url = f"http://127.0.0.1:{port}/metrics"
            with urllib.request.urlopen(url, timeout=10) as r:
                text = r.read().decode()
            break
        except urllib.error.HTTPError as e:
            if e.code != 503 or time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


def test_connections_beyond_the_cap_get_503_and_idle_ones_are_let_go(
    config_dir: Path, tmp_path: Path
) -> None:
    port = processes.free_port()
    env = {
        "RECEIVER_STORE": str(tmp_path / "journal.db"),
        "RECEIVER_AUTH_TOKEN": TOKEN,
        "RECEIVER_MAX_CONNECTIONS": "3",
        "RECEIVER_IDLE_TIMEOUT": "1s",
    }
    log = tmp_path / "receiver.log"
    with processes.receiver(config_dir, port=port, log=log, **env) as process:
        time.sleep(1.5)  # the readiness probe's connection is let go
        idle = connect(port)
        slow = connect(port)
        slow.sendall(b"POST /webhooks/alertmanager HTTP/1.1\r\nHost: x\r\n")  # and no more
        third = connect(port)
        time.sleep(0.2)
        with connect(port) as fourth:
            answer = fourth.recv(65536)
        assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
        assert b"Retry-After: 1\r\n" in answer
        assert b"server.max_connections" in answer

        started = time.monotonic()
        assert [idle.recv(1), slow.recv(1), third.recv(1)] == [b"", b"", b""]
        assert time.monotonic() - started < 3  # closed by the idle timeout, not by us
        for held in (idle, slow, third):
            held.close()

        # Room again: the service answers as usual, and counted the refusal.
        assert metric(port, 'receiver_connections_refused_total{reason="max_connections"}') >= 1
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    written = log.read_text()
    assert '"event": "receiver.listening"' in written
    assert '"reasons": {"max_connections": ' in written
    assert '"event": "receiver.stopped"' in written
    assert '"level": "error"' not in written


def test_a_request_aiohttp_cannot_parse_is_not_quoted_back(
    config_dir: Path, tmp_path: Path
) -> None:
    port = processes.free_port()
    env = {"RECEIVER_STORE": str(tmp_path / "journal.db"), "RECEIVER_AUTH_TOKEN": TOKEN}
    log = tmp_path / "receiver.log"
    with processes.receiver(config_dir, port=port, log=log, **env), connect(port) as sock:
        sock.sendall(
            b"POST /webhooks/alertmanager HTTP/1.1\nHost: x\n"  # bare LF line ends
            + f"{next(iter(AUTH))}: {AUTH['Authorization']}\n".encode()
            + b"Content-Length: 2\n\n{}"
        )
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.0 400 Bad Request")
    assert b"not valid HTTP/1.1 (BadStatusLine)" in answer
    assert TOKEN.encode() not in answer
    assert TOKEN not in log.read_text()


def test_a_port_in_use_is_one_clear_line(config_dir: Path, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "receiver", "serve", "--config", str(config_dir),
             "--host", "127.0.0.1", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=30,
            env=processes.receiver_env(
                RECEIVER_STORE=str(tmp_path / "journal.db"), RECEIVER_AUTH_TOKEN=TOKEN
            ),
        )  # fmt: skip
    assert result.returncode == 2
    assert f"receiver: cannot listen on 127.0.0.1:{port}:" in result.stderr
    assert "address already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_flood_from_one_address_leaves_webhooks_from_another_answered(
    config_dir: Path, tmp_path: Path
) -> None:
    """1,000 idle or trickling connections from one address held every slot for 30 s, and
    for ever if the client reconnected. With the default limits it holds a share, for a few
    seconds at a time, and a webhook from another address is answered meanwhile."""
    port = processes.free_port()
    env = {"RECEIVER_STORE": str(tmp_path / "journal.db"), "RECEIVER_AUTH_TOKEN": TOKEN}
    log = tmp_path / "receiver.log"
    body = (Path(__file__).parent / "payloads" / "alertmanager-firing.json").read_bytes()

    request = (
        b"POST /webhooks/alertmanager HTTP/1.1\r\nHost: x\r\n"
        + f"Authorization: {AUTH['Authorization']}\r\n".encode()
        + b"Content-Type: application/json\r\n"
        + b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )

    def webhook_from(address: str) -> bytes:
        with socket.create_connection(
            ("127.0.0.1", port), timeout=5, source_address=(address, 0)
        ) as sock:
            sock.sendall(request)
            return sock.recv(65536)

    def answered(sock: socket.socket) -> bytes:
        """The status it was answered with, or b"" while it is held open unanswered."""
        sock.setblocking(False)
        try:
            return sock.recv(12, socket.MSG_PEEK)[9:12]
        except BlockingIOError:
            return b""
        finally:
            sock.settimeout(10)

    def flood() -> list[socket.socket]:
        held = []
        for n in range(1000):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            if n % 2:  # trickling: a request head that never ends
                sock.sendall(b"POST /webhooks/alertmanager HTTP/1.1\r\nHost: x\r\n")
            held.append(sock)
        return held

    with processes.receiver(config_dir, port=port, log=log, **env):
        vouched = socket.create_connection(("127.0.0.1", port), source_address=("127.0.0.4", 0))
        vouched.sendall(request)  # a webhook that authenticated: its connection may idle
        assert vouched.recv(65536).startswith(b"HTTP/1.1 200 OK")
        first = flood()
        assert webhook_from("127.0.0.2").startswith(b"HTTP/1.1 200 OK")
        time.sleep(0.5)
        assert [answered(s) for s in first].count(b"503") == 1000 - 250  # per client
        # Nobody vouched for the rest: let go after server.unauthenticated_timeout, not the
        # 30 s of server.idle_timeout.
        started = time.monotonic()
        for sock in first:
            # The 503 of a refused one, then the end; or the end (a reset where the head it
            # trickled was never read).
            with contextlib.suppress(ConnectionResetError):
                while sock.recv(65536):
                    pass
        assert time.monotonic() - started < 7
        vouched.sendall(request)  # kept for server.idle_timeout, as Alertmanager reuses it
        assert vouched.recv(65536).startswith(b"HTTP/1.1 200 OK")
        vouched.close()
        again = flood()  # and a client that reconnects gets no further
        assert webhook_from("127.0.0.3").startswith(b"HTTP/1.1 200 OK")
        for sock in first + again:
            sock.close()
        assert (
            metric(port, 'receiver_connections_refused_total{reason="max_connections_per_client"}')
            >= 1500
        )
    assert '"level": "error"' not in log.read_text()
