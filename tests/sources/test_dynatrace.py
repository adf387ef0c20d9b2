from __future__ import annotations

from typing import Any

import pytest

from receiver.errors import PayloadError
from receiver.models import Signal, Source
from receiver.sources import dynatrace
from tests.conftest import payload


def test_the_plain_body_becomes_an_open_problem_of_the_tagged_service() -> None:
    n = dynatrace.parse(payload("dynatrace-open-plain.json"))
    assert n.source is Source.DYNATRACE
    assert n.signal is Signal.OPEN
    assert n.key == "-7212004481837740123_1606470300000V2"
    assert n.title == "Failure rate increase"
    assert (n.project, n.stage, n.service) == ("sockshop", "production", "carts")


def test_the_keptn_cloudevent_envelope_is_unwrapped() -> None:
    n = dynatrace.parse(payload("dynatrace-open-keptn-cloudevent.json"))
    assert n.signal is Signal.OPEN
    assert n.key == "-4637158203512934567_1606470000000V2"
    assert n.title == "Response time degradation"
    assert (n.project, n.stage, n.service) == ("sockshop", "production", "carts")
    assert n.state == "OPEN"
    assert n.url == (
        "https://abc12345.live.dynatrace.com/#problems/problemdetails"
        ";pid=-4637158203512934567_1606470000000V2"
    )


def test_resolved_resolves_the_same_pid() -> None:
    opened = dynatrace.parse(payload("dynatrace-open-plain.json"))
    resolved = dynatrace.parse(payload("dynatrace-resolved-plain.json"))
    assert resolved.signal is Signal.RESOLVED
    assert resolved.key == opened.key


def test_the_test_notification_is_a_test() -> None:
    assert dynatrace.parse(payload("dynatrace-test-notification.json")).signal is Signal.TEST


def test_other_states_are_recorded_but_not_acted_on() -> None:
    body = payload("dynatrace-open-plain.json") | {"State": "MERGED"}
    assert dynatrace.parse(body).signal is Signal.OTHER


@pytest.mark.parametrize("envelope", ["plain", "cloudevent"])
def test_keptn_tags_override_the_keptn_fields_as_keptn_routed_them(envelope: str) -> None:
    # keptn-contrib/dynatrace-service's own test: fields shop/production/carts, tags
    # shop2/production2/carts2 → the problem goes to shop2/production2/carts2; in the plain
    # body and in the Keptn CloudEvent body Keptn recommended alike.
    fields = {
        "KeptnProject": "shop",
        "KeptnStage": "production",
        "KeptnService": "carts",
        "Tags": "keptn_project:shop2, keptn_stage:production2, keptn_service:carts2",
    }
    if envelope == "plain":
        body = payload("dynatrace-open-plain.json") | fields
    else:
        body = payload("dynatrace-open-keptn-cloudevent.json")
        body["data"] |= fields
    n = dynatrace.parse(body)
    assert (n.project, n.stage, n.service) == ("shop2", "production2", "carts2")


def test_the_keptn_fields_route_what_has_no_keptn_tags() -> None:
    body = payload("dynatrace-open-plain.json") | {
        "KeptnProject": "shop",
        "KeptnStage": "prod",
        "KeptnService": "cart",
        "Tags": "keptn_service:cart-tagged, owner:team-a",
        "ProblemDetails": {},
    }
    n = dynatrace.parse(body)
    assert (n.project, n.stage, n.service) == ("shop", "prod", "cart-tagged")


def test_entity_tags_stand_in_when_the_tags_string_is_empty() -> None:
    body = payload("dynatrace-open-keptn-cloudevent.json")["data"] | {"Tags": ""}
    n = dynatrace.parse(body)
    assert (n.project, n.stage, n.service) == ("sockshop", "production", "carts")


def test_tags_tolerate_spaces_and_values_without_a_key() -> None:
    body = payload("dynatrace-open-plain.json") | {
        "Tags": " keptn_project : sockshop ,frontend, keptn_stage:production,keptn_service:carts ",
    }
    n = dynatrace.parse(body)
    assert (n.project, n.stage, n.service) == ("sockshop", "production", "carts")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("text", "body"),
        ({"State": "OPEN", "ProblemTitle": "x"}, "PID"),
        ({"PID": "1", "ProblemTitle": "x"}, "State"),
        ({"PID": "1", "State": "OPEN"}, "ProblemTitle"),
        ({"PID": "1", "State": "OPEN", "ProblemTitle": "x", "Tags": 5}, "Tags"),
        ({"specversion": "0.2", "data": []}, "data"),
        ({"specversion": "0.2", "data": {"State": "OPEN"}}, "data.PID"),
    ],
)
def test_a_wrong_shape_names_the_offending_field(body: Any, field: str) -> None:
    with pytest.raises(PayloadError) as caught:
        dynatrace.parse(body)
    assert caught.value.field == field
