from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from receiver.errors import PayloadError
from receiver.models import Signal, Source
from receiver.sources import alertmanager, shape
from tests.conftest import payload

LABELS = alertmanager.LabelNames()


def alert(status: str = "firing", **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = copy.deepcopy(payload("alertmanager-firing.json")["alerts"][0])
    base["status"] = status
    base.update(changes)
    return base


def webhook(*alerts: dict[str, Any], status: str = "firing") -> dict[str, Any]:
    body = payload("alertmanager-firing.json")
    body["status"] = status
    body["alerts"] = list(alerts)
    return body


def test_the_real_firing_payload_becomes_one_open_problem_notification() -> None:
    (n,) = alertmanager.parse(payload("alertmanager-firing.json"), labels=LABELS)
    assert n.source is Source.ALERTMANAGER
    assert n.signal is Signal.OPEN
    assert n.key == "8dd2c31a47cf2e78"
    assert n.title == "response_time_p90"
    assert (n.project, n.stage, n.service) == ("sockshop", "production", "carts")
    assert n.url == "http://prometheus:9090/graph?g0.expr=x"


def test_the_real_resolved_payload_resolves_the_same_key() -> None:
    (n,) = alertmanager.parse(payload("alertmanager-resolved.json"), labels=LABELS)
    assert n.signal is Signal.RESOLVED
    assert n.key == "8dd2c31a47cf2e78"


def test_every_alert_is_read_and_its_own_status_decides_even_in_a_firing_group() -> None:
    body = webhook(
        alert(fingerprint="a1"), alert("resolved", fingerprint="b2"), alert(fingerprint="c3")
    )
    parsed = alertmanager.parse(body, labels=LABELS)
    assert [(n.key, n.signal) for n in parsed] == [
        ("a1", Signal.OPEN),
        ("b2", Signal.RESOLVED),
        ("c3", Signal.OPEN),
    ]


def test_title_is_the_summary_annotation_and_falls_back_to_alertname() -> None:
    with_summary = alert(annotations={"summary": "Response time degradation"})
    without = alert(annotations={})
    first, second = alertmanager.parse(webhook(with_summary, without), labels=LABELS)
    assert first.title == "Response time degradation"
    assert second.title == "response_time_p90"


def test_keptn_prefixed_labels_are_accepted() -> None:
    labels = {"alertname": "x", "keptn_project": "p", "keptn_stage": "s", "keptn_service": "v"}
    (n,) = alertmanager.parse(webhook(alert(labels=labels)), labels=LABELS)
    assert (n.project, n.stage, n.service) == ("p", "s", "v")


def test_label_names_are_configurable() -> None:
    names = alertmanager.LabelNames(project=("team",), stage=("env",), service=("app",))
    labels = {"alertname": "x", "team": "p", "env": "s", "app": "v", "project": "ignored"}
    (n,) = alertmanager.parse(webhook(alert(labels=labels)), labels=names)
    assert (n.project, n.stage, n.service) == ("p", "s", "v")


def test_an_alert_without_fingerprint_gets_a_stable_key_from_its_labels() -> None:
    bare = alert()
    del bare["fingerprint"]
    (first,) = alertmanager.parse(webhook(bare), labels=LABELS)
    (again,) = alertmanager.parse(webhook(copy.deepcopy(bare)), labels=LABELS)
    assert first.key == again.key
    assert len(first.key) == 16


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "body"),
        ({"version": "4"}, "alerts"),
        ({"alerts": {}}, "alerts"),
        ({"version": "3", "alerts": []}, "version"),
        ({"alerts": ["x"]}, "alerts[0]"),
        ({"alerts": [{"labels": {"alertname": "a"}}]}, "alerts[0].status"),
        ({"alerts": [{"status": "pending", "labels": {"alertname": "a"}}]}, "alerts[0].status"),
        (
            {"alerts": [{"status": "firing", "labels": {"alertname": 3}}]},
            "alerts[0].labels.alertname",
        ),
        ({"alerts": [{"status": "firing", "labels": []}]}, "alerts[0].labels"),
        ({"alerts": [{"status": "firing", "labels": {}}]}, "alerts[0].labels.alertname"),
        (
            {"alerts": [{"status": "firing", "labels": {"alertname": "a"}, "fingerprint": 7}]},
            "alerts[0].fingerprint",
        ),
    ],
)
def test_a_wrong_shape_names_the_offending_field(body: Any, field: str) -> None:
    with pytest.raises(PayloadError) as caught:
        alertmanager.parse(body, labels=LABELS)
    assert caught.value.field == field


# -- read: the fast path of a webhook's bytes must say exactly what parse says ----------------

_TEXT = st.text(max_size=6)
_ODD = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), _TEXT, st.lists(_TEXT))
_LABELS = st.one_of(
    st.dictionaries(st.sampled_from(["alertname", "service", "stage", "project", "x"]), _TEXT),
    st.dictionaries(_TEXT, _ODD, max_size=2),
    _ODD,
)
_WELL_FORMED = st.fixed_dictionaries(
    {
        "status": st.sampled_from(["firing", "resolved"]),
        "labels": st.fixed_dictionaries(
            {"alertname": st.text(min_size=1, max_size=6)},
            optional={"service": _TEXT, "keptn_stage": _TEXT, "project": _TEXT, "pod": _TEXT},
        ),
    },
    optional={
        "annotations": st.dictionaries(st.sampled_from(["summary", "x"]), _TEXT),
        "fingerprint": st.one_of(st.none(), _TEXT),
        "generatorURL": st.one_of(st.none(), _TEXT),
    },
)
_ANY = st.fixed_dictionaries(
    {},
    optional={
        "status": st.one_of(st.sampled_from(["firing", "resolved", "Firing"]), _ODD),
        "labels": _LABELS,
        "annotations": _LABELS,
        "fingerprint": st.one_of(_TEXT, _ODD),
        "generatorURL": st.one_of(_TEXT, _ODD),
        "startsAt": _ODD,
    },
)
_ALERT = st.one_of(_WELL_FORMED, _ANY)
_WEBHOOK = st.one_of(
    st.fixed_dictionaries(
        {"alerts": st.lists(_WELL_FORMED, max_size=3)},
        optional={"version": st.sampled_from(["4", 4]), "status": _ODD},
    ),
    st.fixed_dictionaries(
        {"alerts": st.one_of(st.lists(st.one_of(_ALERT, _ODD), max_size=3), _ODD)},
        optional={"version": st.one_of(st.sampled_from(["4", 4, "3"]), _ODD), "status": _ODD},
    ),
)


def outcome(read: Any) -> Any:
    try:
        return read()
    except PayloadError as e:
        return ("rejected", e.field, e.message)


@settings(max_examples=400, deadline=None)
@given(document=st.one_of(_WEBHOOK, _ODD))
def test_reading_the_bytes_says_what_parsing_the_json_says(document: Any) -> None:
    body = json.dumps(document).encode()
    slow = outcome(lambda: alertmanager.parse(json.loads(body), labels=LABELS))
    assert outcome(lambda: alertmanager.read(body, labels=LABELS)) == slow


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b"\xef\xbb\xbf" + json.dumps(payload("alertmanager-firing.json")).encode(),  # a BOM
        json.dumps(payload("alertmanager-firing.json")).encode("utf-16"),
        b'{"alerts": [], "x": NaN}',
        b'{"alerts": [{"status": "firing", "labels": {"alertname": "\\ud800"}}]}',
        b'{"alerts": [{"status": "firing", "status": 5, "labels": {"alertname": "a"}}]}',
        b'{"alerts": [], "version": 4.0}',
    ],
)
def test_odd_bytes_are_read_as_the_json_decoder_reads_them(body: bytes) -> None:
    def slow() -> Any:
        return alertmanager.parse(shape.decode_json(body), labels=LABELS)

    assert outcome(lambda: alertmanager.read(body, labels=LABELS)) == outcome(slow)
