"""Hostile and odd input, generated: whatever the bytes of a webhook, the Authorization header
or a read's path and query, the receiver answers with a deliberate status (never a 500),
logs nothing at error level, and echoes no credential. The receiver runs in a thread on
loopback; requests go through http.client so that headers can carry any bytes."""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import socket
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import prometheus_client as prom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from receiver import configuration, server
from tests import processes
from tests.conftest import EXAMPLE_CONFIG, TOKEN, make_settings, payload

EXAMPLES = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
WEBHOOKS = ("/webhooks/alertmanager", "/webhooks/dynatrace")
DELIBERATE = {200, 400, 401, 404, 405, 409, 413, 503}  # 503: shed or journal, on purpose


class Errors(logging.Handler):
    """Every error-level record, from any thread."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def errors() -> Iterator[Errors]:
    handler = Errors()
    logging.getLogger().addHandler(handler)
    yield handler
    logging.getLogger().removeHandler(handler)


@contextlib.contextmanager
def serving(tmp: Path, **overrides: Any) -> Iterator[tuple[str, int]]:
    """The receiver on the example configuration, in a thread: its host and port."""
    app = server.create_app(
        configuration.with_settings(EXAMPLE_CONFIG, make_settings(tmp, **overrides)),
        registry=prom.CollectorRegistry(),
    )
    with processes.receiver_in_thread(app) as url:
        parsed = urllib.parse.urlsplit(url)
        assert parsed.hostname is not None
        assert parsed.port is not None
        yield parsed.hostname, parsed.port


@pytest.fixture(scope="module")
def address(tmp_path_factory: pytest.TempPathFactory, errors: Errors) -> Iterator[tuple[str, int]]:
    with serving(tmp_path_factory.mktemp("hostile")) as host_port:
        yield host_port


def request(
    address: tuple[str, int],
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    headers: Mapping[str, bytes | str] | None = None,
) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection(*address, timeout=10)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        if body is not None:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


AUTH: dict[str, bytes | str] = {
    "Authorization": f"Bearer {TOKEN}",
    "Content-Type": "application/json",
}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children),
    max_leaves=12,
)


def alertmanager_like(alert: dict[str, Any]) -> dict[str, Any]:
    body = payload("alertmanager-firing.json")
    body["alerts"] = [body["alerts"][0] | alert]
    return body


@EXAMPLES
@given(path=st.sampled_from(WEBHOOKS), body=st.binary(max_size=2048))
def test_arbitrary_bytes_get_a_deliberate_answer(
    address: tuple[str, int], errors: Errors, path: str, body: bytes
) -> None:
    errors.records.clear()
    status, answer = request(address, "POST", path, body=body, headers=AUTH)
    assert status in DELIBERATE, answer
    assert not errors.records, errors.records[-1].getMessage()


@EXAMPLES
@given(path=st.sampled_from(WEBHOOKS), document=json_values)
def test_arbitrary_json_gets_a_deliberate_answer(
    address: tuple[str, int], errors: Errors, path: str, document: Any
) -> None:
    errors.records.clear()
    body = json.dumps(document).encode()
    status, answer = request(address, "POST", path, body=body, headers=AUTH)
    assert status in {200, 400, 503}, answer
    assert not errors.records, errors.records[-1].getMessage()


@EXAMPLES
@given(
    alert=st.dictionaries(
        st.sampled_from(["status", "fingerprint", "labels", "annotations", "startsAt"]),
        json_values,
    )
)
def test_odd_alerts_in_a_real_group_get_a_deliberate_answer(
    address: tuple[str, int], errors: Errors, alert: dict[str, Any]
) -> None:
    errors.records.clear()
    body = json.dumps(alertmanager_like(alert)).encode()
    status, answer = request(address, "POST", WEBHOOKS[0], body=body, headers=AUTH)
    assert status in {200, 400, 503}, answer
    assert not errors.records, errors.records[-1].getMessage()


# Raw bytes inside the strings of real payloads: UTF-16 surrogates written as UTF-8 (which
# json.loads lets through), overlong forms, bytes no UTF-8 has, code points past U+10FFFF.
RAW_BYTES = st.sampled_from(
    [b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xc0\xaf", b"\xe0\x80\xaf", b"\xff", b"\xf4\x90\x80\x80"]
) | st.binary(min_size=1, max_size=8)
TITLES = {
    WEBHOOKS[0]: ("alertmanager-firing.json", b'"summary":"response_time_p90"'),
    WEBHOOKS[1]: ("dynatrace-open-plain.json", b'"ProblemTitle":"Failure rate increase"'),
}


@EXAMPLES
@given(path=st.sampled_from(WEBHOOKS), raw=RAW_BYTES, at=st.integers(min_value=0, max_value=12))
def test_raw_bytes_in_a_real_payloads_strings_get_a_deliberate_answer(
    address: tuple[str, int], errors: Errors, path: str, raw: bytes, at: int
) -> None:
    errors.records.clear()
    name, title = TITLES[path]
    body = (Path(__file__).parent / "payloads" / name).read_bytes()
    cut = title.index(b':"') + 2 + at
    body = body.replace(title, title[:cut] + raw + title[cut:])
    status, answer = request(address, "POST", path, body=body, headers=AUTH)
    assert status in {200, 400, 503}, answer
    assert not errors.records, errors.records[-1].getMessage()


# Strings that broke the receiver before: lone surrogates (escaped, and written as UTF-8
# bytes), deep nesting, huge integers.
@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b'{"alerts": [{"labels": {"service": "\\ud800"}}]}', "lone UTF-16 surrogate"),
        (b'{"alerts": [{"labels": {"service": "\xed\xa0\x80"}}]}', "not UTF-8 text"),
        (b'{"State": "OPEN", "PID": "1", "ProblemTitle": "x\xed\xbf\xbf"}', "not UTF-8 text"),
        (b"[" * 5000 + b"]" * 5000, "nested too deeply"),
        (b'{"version": ' + b"9" * 5000 + b"}", "unusable JSON"),
    ],
)
@pytest.mark.parametrize("path", WEBHOOKS)
def test_bodies_that_broke_the_decoder_are_400s(
    address: tuple[str, int], errors: Errors, body: bytes, detail: str, path: str
) -> None:
    errors.records.clear()
    status, answer = request(address, "POST", path, body=body, headers=AUTH)
    assert status == 400
    assert detail in json.loads(answer)["detail"]
    assert not errors.records


def test_a_body_that_is_not_what_its_content_encoding_says_is_a_400(
    address: tuple[str, int], errors: Errors
) -> None:
    errors.records.clear()
    headers = AUTH | {"Content-Encoding": "gzip"}
    status, answer = request(address, "POST", WEBHOOKS[0], body=b"{}", headers=headers)
    assert status == 400, answer
    assert not errors.records


@EXAMPLES
@given(value=st.binary(max_size=64))
def test_any_authorization_header_is_401_or_accepted_and_never_echoed(
    address: tuple[str, int], errors: Errors, value: bytes
) -> None:
    errors.records.clear()
    value = value.replace(b"\r", b"").replace(b"\n", b"")
    headers: dict[str, bytes | str] = {"Authorization": value}
    status, answer = request(address, "POST", WEBHOOKS[1], body=b"{}", headers=headers)
    assert status in {400, 401}, answer
    assert TOKEN.encode() not in answer
    assert not errors.records


@pytest.mark.parametrize(
    "value",
    [TOKEN, f"Token {TOKEN}", "Basic é", "Basic !!!", "Bearer ünïcödé", b"Bearer \xff\xfe"],
)
def test_credentials_in_a_wrong_form_are_refused_without_echo(
    address: tuple[str, int], errors: Errors, value: str | bytes
) -> None:
    errors.records.clear()
    raw = value if isinstance(value, bytes) else value.encode("utf-8")
    headers: dict[str, bytes | str] = {"Authorization": raw}
    status, answer = request(address, "POST", WEBHOOKS[0], body=b"{}", headers=headers)
    assert status == 401
    assert TOKEN.encode()[:6] not in answer
    assert not errors.records


segments = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="/?#"),
    min_size=1,
    max_size=30,
)


@EXAMPLES
@given(
    route=st.sampled_from(
        ["/api/v1/problems/{}", "/api/v1/remediations/{}", "/api/v1/remediations/{}/cancel"]
    ),
    segment=segments,
    query=st.dictionaries(
        st.sampled_from(["limit", "state", "notifications", "before", "service", "outcome"]),
        st.text(max_size=25),
        max_size=3,
    ),
)
def test_any_read_path_or_query_gets_a_deliberate_answer(
    address: tuple[str, int], errors: Errors, route: str, segment: str, query: dict[str, str]
) -> None:
    errors.records.clear()
    path = route.format(urllib.parse.quote(segment, safe=""))
    if query:
        path += "?" + urllib.parse.urlencode(query)
    method = "POST" if path.split("?")[0].endswith("/cancel") else "GET"
    status, answer = request(address, method, path, headers=AUTH)
    assert status in DELIBERATE, (path, answer)
    assert not errors.records, errors.records[-1].getMessage()


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/remediations/²",
        "/api/v1/remediations/99999999999999999999999",
        "/api/v1/problems?limit=²",
        "/api/v1/problems/x?notifications=0",
        "/api/v1/notifications?limit=-1",
    ],
)
def test_numbers_that_are_not_plain_ascii_digits_are_400s(
    address: tuple[str, int], errors: Errors, path: str
) -> None:
    errors.records.clear()
    status, answer = request(address, "GET", urllib.parse.quote(path, safe="/?=&"), headers=AUTH)
    assert status == 400, answer
    assert not errors.records


def test_a_problem_of_a_thousand_notifications_is_read_a_page_at_a_time(
    address: tuple[str, int], errors: Errors
) -> None:
    errors.records.clear()
    group = payload("alertmanager-firing.json")
    template = group["alerts"][0] | {"fingerprint": "same-key"}
    group["alerts"] = [template] * 1000  # one key, 1,000 times in one delivery
    body = json.dumps(group).encode()
    for _ in range(3):
        assert request(address, "POST", WEBHOOKS[0], body=body, headers=AUTH)[0] == 200
    status, answer = request(address, "GET", "/api/v1/problems/same-key", headers=AUTH)
    page = json.loads(answer)
    assert status == 200
    assert (len(page["notifications"]), page["notifications_total"]) == (50, 3000)
    assert len(answer) < 200_000  # a page, not every stored body
    status, answer = request(
        address,
        "GET",
        f"/api/v1/problems/same-key?notifications=500&before={page['notifications_next']}",
        headers=AUTH,
    )
    assert (status, len(json.loads(answer)["notifications"])) == (200, 500)
    assert not errors.records


def test_a_stored_dynatrace_body_with_an_empty_alerts_list_reads_fine(
    address: tuple[str, int], errors: Errors
) -> None:
    errors.records.clear()
    body = payload("dynatrace-open-plain.json") | {"alerts": [], "PID": "odd-pid-1"}
    posted = request(address, "POST", WEBHOOKS[1], body=json.dumps(body).encode(), headers=AUTH)
    assert posted[0] == 200
    status, answer = request(address, "GET", "/api/v1/problems/odd-pid-1", headers=AUTH)
    assert status == 200, answer
    assert json.loads(answer)["notifications"][0]["payload"]["alerts"] == []
    assert not errors.records


def test_an_alert_is_recorded_beside_a_number_python_cannot_read_and_its_problem_reads_fine(
    address: tuple[str, int], errors: Errors
) -> None:
    """A field the receiver does not use is skipped by the typed decoder, so a number of more
    digits than Python converts there no longer rejects the alerts beside it; the stored body
    is shown as null where the problem lists its notifications."""
    errors.records.clear()
    alert = payload("alertmanager-firing.json")["alerts"][0] | {"fingerprint": "odd-field"}
    body = b'{"version": "4", "alerts": [%s], "odd": %s}' % (
        json.dumps(alert).encode(),
        b"9" * 5000,
    )
    status, answer = request(address, "POST", WEBHOOKS[0], body=body, headers=AUTH)
    assert status == 200, answer
    status, answer = request(address, "GET", "/api/v1/problems/odd-field", headers=AUTH)
    assert status == 200, answer
    assert json.loads(answer)["notifications"][0]["payload"] is None
    assert not errors.records


def test_a_malformed_request_line_leaks_no_credential_to_the_log(
    address: tuple[str, int], errors: Errors, caplog: pytest.LogCaptureFixture
) -> None:
    errors.records.clear()
    raw = (
        f"POST /webhooks/alertmanager HTTP/1.1\nHost: x\nAuthorization: Bearer {TOKEN}\n"
        "Content-Length: 2\n\n{}"
    ).encode()
    with caplog.at_level(logging.DEBUG), socket.create_connection(address, timeout=5) as sock:
        sock.sendall(raw)
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.0 400")
    assert TOKEN.encode() not in answer  # aiohttp's own answer quoted the raw request
    assert not errors.records
    assert all(TOKEN not in record.getMessage() for record in caplog.records)
    assert all(TOKEN not in str(record.__dict__) for record in caplog.records)


def test_a_body_that_stops_arriving_is_let_go(
    tmp_path_factory: pytest.TempPathFactory, errors: Errors
) -> None:
    with (
        serving(tmp_path_factory.mktemp("stalled"), body_timeout=0.5) as host_port,
        socket.create_connection(host_port, timeout=10) as sock,
    ):
        head = (
            "POST /webhooks/alertmanager HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {TOKEN}\r\n"
            "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
        )
        sock.sendall(head.encode() + b'{"alerts"')  # and then nothing more
        started = time.monotonic()
        answer = sock.recv(65536)
        waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b"server.body_timeout" in answer
    assert waited < 5
    assert not errors.records
