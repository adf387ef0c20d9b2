"""The HTTP interface, end to end over real HTTP, with the real payload samples."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from receiver.settings import Secret
from tests.conftest import AUTH, TOKEN, ClientFactory, journal_write_lock, payload

pytestmark = pytest.mark.usefixtures("journal_backend")  # SQLite and PostgreSQL

Client = TestClient[Any, Any]


async def post(client: Client, source: str, body: Any, **kwargs: Any) -> Any:
    headers = kwargs.pop("headers", AUTH)
    data = body if isinstance(body, bytes | str) else json.dumps(body)
    return await client.post(f"/webhooks/{source}", data=data, headers=headers, **kwargs)


async def problems(client: Client, **filters: str) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/problems", params=filters)
    assert response.status == 200
    listed: list[dict[str, Any]] = (await response.json())["problems"]
    return listed


# -- intake ----------------------------------------------------------------------------------


async def test_alertmanager_firing_becomes_an_open_problem(client: Client) -> None:
    response = await post(client, "alertmanager", payload("alertmanager-firing.json"))
    assert response.status == 200
    assert (await response.json())["recorded"][0]["outcome"] == "opened"
    (problem,) = await problems(client)
    assert (
        problem
        | {
            "key": "8dd2c31a47cf2e78",
            "source": "alertmanager",
            "title": "response_time_p90",
            "state": "open",
            "project": "sockshop",
            "stage": "production",
            "service": "carts",
            "repeats": 0,
            "ignored_reason": None,
        }
        == problem
    )


async def test_repeats_update_one_problem_and_a_resolve_closes_it(client: Client) -> None:
    for _ in range(3):
        assert (await post(client, "alertmanager", payload("alertmanager-firing.json"))).ok
    (problem,) = await problems(client)
    assert problem["repeats"] == 2
    assert problem["last_seen"] >= problem["first_seen"]
    assert (await post(client, "alertmanager", payload("alertmanager-resolved.json"))).ok
    (problem,) = await problems(client)
    assert problem["state"] == "resolved"
    assert problem["resolved_at"] is not None


async def test_a_firing_after_a_resolve_opens_a_new_occurrence(client: Client) -> None:
    for name in ("firing", "resolved", "firing"):
        assert (await post(client, "alertmanager", payload(f"alertmanager-{name}.json"))).ok
    newest, oldest = await problems(client)
    assert (oldest["occurrence"], oldest["state"]) == (1, "resolved")
    assert (newest["occurrence"], newest["state"], newest["repeats"]) == (2, "open", 0)
    assert [p["key"] for p in await problems(client, state="open")] == ["8dd2c31a47cf2e78"]


async def test_every_alert_of_a_mixed_group_is_handled(client: Client) -> None:
    firing = payload("alertmanager-firing.json")
    first = firing["alerts"][0]
    second = first | {"fingerprint": "second", "annotations": {"summary": "Failure rate"}}
    assert (await post(client, "alertmanager", firing | {"alerts": [first, second]})).ok
    resolved_first = first | {"status": "resolved"}
    third = first | {"fingerprint": "third"}
    mixed = firing | {"alerts": [resolved_first, third]}  # group status still "firing"
    response = await post(client, "alertmanager", mixed)
    outcomes = [r["outcome"] for r in (await response.json())["recorded"]]
    assert outcomes == ["resolved", "opened"]
    states = {p["key"]: p["state"] for p in await problems(client)}
    assert states == {"8dd2c31a47cf2e78": "resolved", "second": "open", "third": "open"}


async def test_dynatrace_plain_and_cloudevent_bodies_open_problems(client: Client) -> None:
    assert (await post(client, "dynatrace", payload("dynatrace-open-plain.json"))).ok
    assert (await post(client, "dynatrace", payload("dynatrace-open-keptn-cloudevent.json"))).ok
    titles = {p["title"]: p for p in await problems(client)}
    assert set(titles) == {"Failure rate increase", "Response time degradation"}
    assert all(p["source"] == "dynatrace" and p["service"] == "carts" for p in titles.values())
    assert (await post(client, "dynatrace", payload("dynatrace-resolved-plain.json"))).ok
    states = {p["title"]: p["state"] for p in await problems(client)}
    assert states == {"Failure rate increase": "resolved", "Response time degradation": "open"}


async def test_the_dynatrace_test_notification_is_recorded_as_a_test_only(client: Client) -> None:
    response = await post(client, "dynatrace", payload("dynatrace-test-notification.json"))
    assert response.status == 200
    assert (await response.json())["recorded"][0]["outcome"] == "test"
    assert await problems(client) == []
    listed = await (await client.get("/api/v1/notifications")).json()
    (note,) = listed["notifications"]
    assert (note["outcome"], note["key"]) == ("test", "99999")


async def test_a_merged_dynatrace_problem_is_recorded_and_visibly_ignored(client: Client) -> None:
    body = payload("dynatrace-open-plain.json") | {"State": "MERGED"}
    response = await post(client, "dynatrace", body)
    (result,) = (await response.json())["recorded"]
    assert result["outcome"] == "ignored"
    assert "MERGED" in result["reason"]
    assert await problems(client) == []


async def test_an_unknown_service_is_accepted_recorded_and_shown_with_the_reason(
    client: Client,
) -> None:
    body = payload("alertmanager-firing.json")
    body["alerts"][0]["labels"]["service"] = "orders"
    response = await post(client, "alertmanager", body)
    assert response.status == 200
    (problem,) = await problems(client)
    assert problem["state"] == "open"
    assert problem["ignored_reason"] == "no remediation.yaml for sockshop/production/orders"


async def test_the_stage_level_remediation_file_covers_every_service_of_the_stage(
    make_client: ClientFactory,
    config_dir: Path,
) -> None:
    stage = config_dir / "sockshop" / "production"
    (stage / "remediation.yaml").write_text((stage / "carts" / "remediation.yaml").read_text())
    client = await make_client()
    body = payload("alertmanager-firing.json")
    body["alerts"][0]["labels"]["service"] = "orders"
    await post(client, "alertmanager", body)
    (problem,) = await problems(client)
    assert problem["ignored_reason"] is None


async def test_an_alert_without_service_labels_is_recorded_with_the_reason(client: Client) -> None:
    body = payload("alertmanager-firing.json")
    body["alerts"][0]["labels"] = {"alertname": "HighLoad"}
    await post(client, "alertmanager", body)
    (problem,) = await problems(client)
    assert problem["ignored_reason"].startswith("no project/stage/service: the alert has none")
    assert "keptn_service" in problem["ignored_reason"]


async def test_a_problem_shows_the_notifications_that_made_it(client: Client) -> None:
    for name in ("firing", "firing", "resolved"):
        await post(client, "alertmanager", payload(f"alertmanager-{name}.json"))
    response = await client.get("/api/v1/problems/8dd2c31a47cf2e78")
    assert response.status == 200
    problem = await response.json()
    newest_first = [n["outcome"] for n in problem["notifications"]]
    assert newest_first == ["resolved", "repeated", "opened"]
    assert problem["notifications"][0]["payload"]["status"] == "resolved"
    assert problem["notifications_total"] == 3
    assert (await client.get("/api/v1/problems/unknown")).status == 404


async def test_problems_can_be_filtered(client: Client) -> None:
    await post(client, "alertmanager", payload("alertmanager-firing.json"))
    await post(client, "dynatrace", payload("dynatrace-open-plain.json"))
    await post(client, "dynatrace", payload("dynatrace-resolved-plain.json"))
    assert len(await problems(client, project="sockshop", stage="production")) == 2
    assert [p["source"] for p in await problems(client, state="open")] == ["alertmanager"]
    assert await problems(client, service="orders") == []
    bad = await client.get("/api/v1/problems", params={"state": "closed"})
    assert bad.status == 400
    assert (await bad.json())["field"] == "state"


# -- bad input ---------------------------------------------------------------------------------


async def test_malformed_json_is_a_400_with_the_reason(client: Client) -> None:
    response = await post(client, "alertmanager", b'{"alerts": [')
    assert response.status == 400
    body = await response.json()
    assert body["field"] == "body"
    assert body["detail"].startswith("malformed JSON")


async def test_a_wrong_shape_is_a_400_naming_the_field(client: Client) -> None:
    body = payload("alertmanager-firing.json")
    body["alerts"][0]["status"] = "pending"
    response = await post(client, "alertmanager", body)
    assert response.status == 400
    assert (await response.json())["field"] == "alerts[0].status"
    response = await post(client, "dynatrace", {"State": "OPEN"})
    assert (await response.json())["field"] == "PID"
    assert await problems(client) == []


async def test_a_body_over_the_limit_is_a_413(make_client: ClientFactory) -> None:
    client = await make_client(max_body_bytes=2048)
    body = payload("alertmanager-firing.json")
    body["alerts"] = body["alerts"] * 10
    response = await post(client, "alertmanager", body)
    assert response.status == 413
    assert "2048" in (await response.json())["detail"]


async def test_unknown_routes_and_methods_answer_json(client: Client) -> None:
    missing = await client.get("/nowhere")
    assert missing.status == 404
    assert (await missing.json())["error"] == "Not Found"
    wrong = await client.get("/webhooks/alertmanager")
    assert wrong.status == 405
    assert "POST" in wrong.headers["Allow"]


# -- authentication ----------------------------------------------------------------------------


async def test_webhooks_need_credentials(client: Client) -> None:
    body = payload("alertmanager-firing.json")
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Token x"}):
        response = await post(client, "alertmanager", body, headers=headers)
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert TOKEN not in await response.text()
    assert await problems(client) == []


async def test_basic_auth_is_accepted_as_alertmanager_sends_it(make_client: ClientFactory) -> None:
    client = await make_client(
        auth_token=None,
        auth_basic_username="am",
        auth_basic_password=Secret("pw-0123456789abcdef"),
    )
    good = base64.b64encode(b"am:pw-0123456789abcdef").decode()
    bad = base64.b64encode(b"am:nope").decode()
    body = payload("alertmanager-firing.json")
    response = await post(client, "alertmanager", body, headers={"Authorization": f"Basic {bad}"})
    assert response.status == 401
    response = await post(client, "alertmanager", body, headers={"Authorization": f"Basic {good}"})
    assert response.status == 200


async def test_auth_can_be_switched_off_explicitly(make_client: ClientFactory) -> None:
    client = await make_client(auth_token=None, auth_disabled=True)
    response = await post(client, "alertmanager", payload("alertmanager-firing.json"), headers={})
    assert response.status == 200


async def test_reads_can_be_protected(make_client: ClientFactory) -> None:
    client = await make_client(auth_protect_reads=True)
    for path in ("/api/v1/problems", "/api/v1/notifications", "/api/v1/remediations"):
        assert (await client.get(path)).status == 401
        assert (await client.get(path, headers=AUTH)).status == 200
    assert (await client.get("/metrics")).status == 200  # separately, below
    assert (await client.get("/readyz")).status == 200  # the kubelet sends no token


async def test_metrics_can_be_protected_separately(make_client: ClientFactory) -> None:
    client = await make_client(auth_protect_metrics=True)
    assert (await client.get("/metrics")).status == 401
    assert (await client.get("/metrics", headers=AUTH)).status == 200
    assert (await client.get("/api/v1/problems")).status == 200


# -- journal refusals --------------------------------------------------------------------------


async def test_a_locked_journal_answers_503_and_records_nothing(
    make_client: ClientFactory, tmp_path: Path
) -> None:
    client = await make_client(store_busy_timeout=0.2)
    with journal_write_lock(tmp_path):  # another process holding the journal
        response = await post(client, "alertmanager", payload("alertmanager-firing.json"))
        assert response.status == 503
        assert response.headers["Retry-After"] == "5"
        readiness = await client.get("/readyz")
        assert readiness.status == 503
    assert await problems(client) == []
    response = await post(client, "alertmanager", payload("alertmanager-firing.json"))
    assert response.status == 200  # the retry Alertmanager makes gets through
    assert len(await problems(client)) == 1


async def test_overload_is_shed_with_503_and_nothing_acknowledged_is_dropped(
    make_client: ClientFactory, tmp_path: Path
) -> None:
    client = await make_client(store_max_pending=2, store_busy_timeout=10)
    bodies = []
    for index in range(6):
        body = payload("alertmanager-firing.json")
        body["alerts"][0]["fingerprint"] = f"key-{index}"
        bodies.append(body)
    with journal_write_lock(tmp_path):  # the writer stalls, as on a saturated disk
        first = [asyncio.create_task(post(client, "alertmanager", b)) for b in bodies[:2]]
        await asyncio.sleep(0.3)
        shed = [await post(client, "alertmanager", b) for b in bodies[2:]]
        assert [r.status for r in shed] == [503] * 4
        assert all(r.headers["Retry-After"] == "1" for r in shed)
    accepted = [await task for task in first]
    assert [r.status for r in accepted] == [200, 200]
    assert {p["key"] for p in await problems(client)} == {"key-0", "key-1"}
    metrics = await (await client.get("/metrics")).text()
    assert 'receiver_webhooks_rejected_total{reason="overloaded",source="alertmanager"} 4.0' in (
        metrics
    )


# -- health and metrics ------------------------------------------------------------------------


async def test_health_and_readiness_say_which_actions_cannot_run(
    make_client: ClientFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    client = await make_client()
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200  # intake works without Kubernetes
    body = await ready.json()
    assert body["checks"] | {"configuration": "loaded", "journal": "open"} == body["checks"]
    assert body["checks"]["kubernetes"].startswith("no Kubernetes access: not in a cluster")
    assert set(body["actions_unavailable"]) == {
        "scaling",
        "restart",
        "rollback",
        "toggle-feature",
        "escalate",
    }


async def test_metrics_count_notifications_and_open_problems(client: Client) -> None:
    await post(client, "alertmanager", payload("alertmanager-firing.json"))
    await post(client, "alertmanager", payload("alertmanager-firing.json"))
    await post(client, "dynatrace", payload("dynatrace-open-plain.json"))
    await post(client, "alertmanager", b"nope")
    text = await (await client.get("/metrics")).text()
    assert 'receiver_notifications_total{outcome="opened",source="alertmanager"} 1.0' in text
    assert 'receiver_notifications_total{outcome="repeated",source="alertmanager"} 1.0' in text
    assert 'receiver_notifications_total{outcome="opened",source="dynatrace"} 1.0' in text
    assert "receiver_open_problems 2.0" in text
    assert 'reason="invalid_payload"' in text
    assert 'route="/webhooks/alertmanager"' in text
    assert "8dd2c31a47cf2e78" not in text  # no unbounded label values


async def test_one_log_line_per_webhook_not_per_alert(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    group = payload("alertmanager-firing.json")
    group["alerts"] = [group["alerts"][0] | {"fingerprint": f"k{i}"} for i in range(10)]
    with caplog.at_level(logging.INFO, logger="receiver.server"):
        await post(client, "alertmanager", group)
        await post(client, "alertmanager", group)  # all repeats: not news, no line
    (line,) = [r for r in caplog.records if r.getMessage() == "webhook.recorded"]
    fields = vars(line)
    assert (fields["notifications"], fields["opened"], fields["key"]) == (10, 10, "k0")


async def test_a_refused_webhook_is_logged_with_why_and_from_where_a_line_a_second(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = {"Authorization": "Bearer not-the-token-at-all-0123"}
    with caplog.at_level(logging.INFO, logger="receiver.loadshed"):
        for _ in range(5):
            response = await post(
                client, "alertmanager", payload("alertmanager-firing.json"), headers=wrong
            )
            assert response.status == 401
        assert (await post(client, "alertmanager", {"alerts": 3})).status == 400
    lines = [r for r in caplog.records if r.getMessage() == "http.rejected"]
    assert [(r.__dict__["reason"], r.__dict__["detail"]) for r in lines] == [
        ("unauthorized", "wrong bearer token"),  # once, not five times
        ("invalid_payload", "alerts: expected a list, got a number"),
    ]
    assert lines[0].__dict__["remote"] == "127.0.0.1"
    assert lines[0].__dict__["path"] == "/webhooks/alertmanager"
    assert all("not-the-token" not in str(r.__dict__) for r in caplog.records)
    assert all("fingerprint" not in str(r.__dict__) for r in lines)  # no body either
