"""The Prometheus SLI provider's edges against the stand-in (tests/prometheus_standin.py):
credentials, and the values that are no value. The real Prometheus is in
test_prometheus_real.py."""

from __future__ import annotations

import base64
import math
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from receiver.errors import SliError
from receiver.settings import Secret
from receiver.slo.prometheus import Prometheus
from tests import prometheus_standin

QUERY = prometheus_standin.response_time_p90()
Serve = Callable[..., Any]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[TestServer] = []

    async def start(values: dict[str, float | None], **options: Any) -> str:
        server = TestServer(prometheus_standin.create_app(values, **options))
        await server.start_server()
        servers.append(server)
        return str(server.make_url(""))

    yield start
    for server in servers:
        await server.close()


async def measure(url: str, **credentials: Any) -> float:
    async with aiohttp.ClientSession() as session:
        provider = Prometheus(session, url, timeout=5, **credentials)
        return await provider.value(QUERY, start=1_800_000_000.0, end=1_800_000_600.0)


async def test_a_bearer_token_is_sent(serve: Serve) -> None:
    url = await serve({QUERY: 412.0}, authorization="Bearer prom-token")
    assert await measure(url, token=Secret("prom-token")) == 412.0
    with pytest.raises(SliError, match="Prometheus answered 401: Unauthorized"):
        await measure(url, token=Secret("wrong"))


async def test_basic_credentials_are_sent(serve: Serve) -> None:
    expected = "Basic " + base64.b64encode(b"grafana:s3cret").decode()
    url = await serve({QUERY: 412.0}, authorization=expected)
    assert await measure(url, basic_username="grafana", basic_password=Secret("s3cret")) == 412.0
    with pytest.raises(SliError, match="answered 401"):
        await measure(url)


async def test_the_value_is_asked_at_the_end_of_the_window(serve: Serve) -> None:
    values: dict[str, float | None] = {QUERY: 412.0}
    app = prometheus_standin.create_app(values)
    server = TestServer(app)
    await server.start_server()
    try:
        await measure(str(server.make_url("")))
    finally:
        await server.close()
    assert app[prometheus_standin.QUERIES] == [(QUERY, 1_800_000_600.0)]


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (math.nan, "NaN"),
        (math.inf, "Inf"),
        (-math.inf, "Inf"),
    ],
)
async def test_nan_and_infinities_are_no_value(serve: Serve, value: float, words: str) -> None:
    url = await serve({QUERY: value})
    with pytest.raises(SliError, match=words):
        await measure(url)


async def test_no_series_is_zero_as_keptn_counted_it(serve: Serve) -> None:
    assert await measure(await serve({QUERY: None})) == 0.0


async def test_a_query_prometheus_cannot_parse_is_its_message(serve: Serve) -> None:
    async with aiohttp.ClientSession() as session:
        provider = Prometheus(session, await serve({}), timeout=5)
        with pytest.raises(SliError, match=r"answered 400: .*unclosed left parenthesis"):
            await provider.value("sum(rate(x[5m])", start=0, end=1)
