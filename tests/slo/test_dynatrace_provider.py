"""The Dynatrace SLI provider against a stand-in of the metrics API v2 (dynatrace_standin)."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from receiver.errors import SliError
from receiver.models import ServiceRef
from receiver.settings import Secret
from receiver.slo import evaluation, indicators, objectives
from receiver.slo.dynatrace import Dynatrace, split
from tests import dynatrace_standin

TOKEN = "dt0c01.TESTTOKEN"
P90 = 'builtin:service.response.time:merge("dt.entity.service"):percentile(90)'


@pytest.fixture
async def standin() -> Any:
    server = TestServer(dynatrace_standin.create_app(token=TOKEN))
    await server.start_server()
    yield server
    await server.close()


async def value(server: TestServer, query: str, *, token: str = TOKEN) -> float:
    async with aiohttp.ClientSession() as session:
        provider = Dynatrace(session, str(server.make_url("")), token=Secret(token), timeout=5)
        end = time.time()
        return await provider.value(query, start=end - 600, end=end)


async def test_response_time_is_converted_from_microseconds(standin: TestServer) -> None:
    standin.app[dynatrace_standin.METRICS][(P90, "type(SERVICE)")] = [412000.0]
    assert await value(standin, f"metricSelector={P90}&entitySelector=type(SERVICE)") == 412.0
    (request,) = standin.app[dynatrace_standin.REQUESTS]
    assert request["resolution"] == "Inf"
    assert int(request["to"]) - int(request["from"]) == pytest.approx(600_000, abs=1)
    assert request["entitySelector"] == "type(SERVICE)"


async def test_a_response_time_dynatrace_converted_with_to_unit_is_not_converted_again(
    standin: TestServer,
) -> None:
    standin.app[dynatrace_standin.METRICS][(P90, "type(SERVICE)")] = [412000.0]  # µs
    selector = f"{P90}:toUnit(MicroSecond,MilliSecond)"
    assert await value(standin, f"metricSelector={selector}&entitySelector=type(SERVICE)") == 412.0


async def test_an_entity_selector_that_matches_nothing_is_no_value(standin: TestServer) -> None:
    selector = "type(SERVICE),tag(keptn_service:carts)"
    standin.app[dynatrace_standin.METRICS][(P90, selector)] = [412000.0]
    with pytest.raises(SliError, match="returned 0 series"):
        await value(standin, f"metricSelector={P90}&entitySelector=type(SERVICE),tag(x:y)")
    with pytest.raises(SliError, match="returned 0 series"):
        await value(standin, f"metricSelector={P90}")  # every service is not this one


@pytest.mark.parametrize(
    ("query", "words"),
    [
        (f"metricSelector={P90}&entitySelector=type(SERVICE", "unbalanced parentheses"),
        (f"metricSelector={P90}&entitySelector=service(carts)", "unknown criterion"),
        ("metricSelector=builtin:service.response.time:frobnicate(1)", "no metric key"),
        (f"metricSelector={P90}:toUnit(MicroSecond,Parsec)", "unknown units"),
    ],
)
async def test_a_selector_dynatrace_cannot_parse_is_its_400(
    standin: TestServer, query: str, words: str
) -> None:
    standin.app[dynatrace_standin.METRICS][P90] = [412000.0]
    with pytest.raises(SliError, match=f"answered 400: .*{words}"):
        await value(standin, query)


async def test_other_metrics_are_taken_as_they_come(standin: TestServer) -> None:
    standin.app[dynatrace_standin.METRICS]["builtin:service.errors.total.rate:merge(0):avg"] = [2.5]
    assert (
        await value(standin, "metricSelector=builtin:service.errors.total.rate:merge(0):avg") == 2.5
    )


async def test_keptn_06s_scope_is_sent_as_an_entity_selector_of_services(
    standin: TestServer,
) -> None:
    selector = "builtin:service.requestCount.total:merge(0):sum"
    entities = "tag(keptn_project:sockshop),tag(keptn_service:carts),type(SERVICE)"
    standin.app[dynatrace_standin.METRICS][(selector, entities)] = [1234.0]
    query = f"{selector}?scope=tag(keptn_project:sockshop),tag(keptn_service:carts)"
    assert await value(standin, query) == 1234.0
    (request,) = standin.app[dynatrace_standin.REQUESTS]
    assert (request["entitySelector"], "scope" in request) == (entities, False)


def test_a_scope_that_names_its_entity_type_keeps_it() -> None:
    assert split("m:avg?scope=type(PROCESS_GROUP),tag(x)") == {
        "metricSelector": "m:avg",
        "entitySelector": "type(PROCESS_GROUP),tag(x)",
    }


async def test_placeholders_are_escaped_so_values_arrive_intact(standin: TestServer) -> None:
    standin.app[dynatrace_standin.METRICS][
        (
            P90,
            "type(SERVICE),tag(keptn_project:sock&shop),tag(keptn_stage:prod=1),"
            "tag(keptn_service:carts #2)",
        )
    ] = [1000.0]
    ref = ServiceRef(project="sock&shop", stage="prod=1", service="carts #2")
    service_slo = evaluation.ServiceSlo(
        service=ref,
        slo=objectives.parse({"objectives": [{"sli": "rt"}]}, "slo.yaml")[0],
        queries={
            "rt": f"metricSelector={P90}&entitySelector=type(SERVICE),tag(keptn_project:"
            "$PROJECT),tag(keptn_stage:$STAGE),tag(keptn_service:$SERVICE)"
        },
        provider="dynatrace",
    )
    async with aiohttp.ClientSession() as session:
        provider = Dynatrace(session, str(standin.make_url("")), token=Secret(TOKEN))
        measured = await evaluation.measure(
            service_slo, provider, end=time.time(), window=60, deployment="primary"
        )
    assert measured.values == {"rt": 1.0}
    (request,) = standin.app[dynatrace_standin.REQUESTS]
    assert request["entitySelector"] == (
        "type(SERVICE),tag(keptn_project:sock&shop),tag(keptn_stage:prod=1),"
        "tag(keptn_service:carts #2)"
    )


async def test_a_wrong_token_is_dynatraces_message(standin: TestServer) -> None:
    with pytest.raises(SliError, match="Dynatrace answered 401: Token Authentication failed"):
        await value(standin, f"metricSelector={P90}", token="wrong")


async def test_an_unknown_metric_is_dynatraces_message(standin: TestServer) -> None:
    with pytest.raises(SliError, match="answered 404: Metric selector: Metric 'nope' does not"):
        await value(standin, "metricSelector=nope")


async def test_more_than_one_series_is_not_a_value(standin: TestServer) -> None:
    standin.app[dynatrace_standin.METRICS][P90] = [1000.0, 2000.0]
    with pytest.raises(SliError, match="returned 2 series, expected one"):
        await value(standin, f"metricSelector={P90}")


async def test_a_missing_data_point_is_not_a_value(standin: TestServer) -> None:
    standin.app[dynatrace_standin.METRICS][P90] = [None]
    with pytest.raises(SliError, match="expected exactly one data point"):
        await value(standin, f"metricSelector={P90}")


async def test_dynatrace_down_is_a_clear_error(standin: TestServer) -> None:
    url = str(standin.make_url(""))
    await standin.close()
    async with aiohttp.ClientSession() as session:
        provider = Dynatrace(session, url, token=Secret(TOKEN), timeout=2)
        with pytest.raises(SliError, match="cannot reach Dynatrace"):
            await provider.value(f"metricSelector={P90}", start=0, end=1)


def test_split_keeps_plus_signs_and_decodes_escapes() -> None:
    assert split("metricSelector=a:filter(eq(x,1+2))&entitySelector=tag(k:a%26b)") == {
        "metricSelector": "a:filter(eq(x,1+2))",
        "entitySelector": "tag(k:a&b)",
    }
    assert split("?metricSelector=m&x=1") == {"metricSelector": "m", "x": "1"}


def test_fill_replaces_every_placeholder_keptn_knew() -> None:
    context = indicators.Context(
        service=ServiceRef(project="sockshop", stage="production", service="carts"),
        deployment="primary",
        window_seconds=600,
        filter={"handler": "'Items'", "id": "7"},
    )
    query = "$PROJECT $STAGE $SERVICE $DEPLOYMENT $DURATION_SECONDS $handler $HANDLER $id $project"
    assert indicators.fill(query, context) == (
        "sockshop production carts primary 600s Items Items 7 sockshop"
    )
