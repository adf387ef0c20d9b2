"""`receiver send-test`: post a realistic notification, as Alertmanager or Dynatrace would.

For trying a deployment by hand (`kubectl port-forward -n selfheal svc/selfheal-receiver 8080`, then
`receiver send-test alertmanager`, then `receiver status`). Credentials come from
RECEIVER_AUTH_TOKEN (or basic auth variables), or from the settings of `--config`.
The problem key is derived from source, service and title, so `--resolved` resolves the
problem the same command opened.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import hashlib
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from receiver import settings
from receiver.errors import ConfigError


def add_command(commands: Any) -> None:
    send = commands.add_parser("send-test", help="post a realistic test notification")
    send.add_argument("source", choices=("alertmanager", "dynatrace"))
    send.add_argument("--url", default="http://localhost:8080", help="the receiver's base URL")
    send.add_argument("--title", help="problem title (default: the tutorials' titles)")
    send.add_argument("--project", default="sockshop")
    send.add_argument("--stage", default="production")
    send.add_argument("--service", default="carts")
    send.add_argument("--resolved", action="store_true", help="send the resolve instead")
    send.add_argument("--config", type=Path, help="read credentials from these settings")
    send.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        config = settings.load(args.config)
    except ConfigError as e:
        print(f"receiver: {e}", file=sys.stderr)
        return 2
    title = args.title or (
        "response_time_p90" if args.source == "alertmanager" else "Response time degradation"
    )
    key = hashlib.sha256(
        f"{args.source}/{args.project}/{args.stage}/{args.service}/{title}".encode()
    ).hexdigest()[:16]
    body = (alertmanager if args.source == "alertmanager" else dynatrace)(
        title=title,
        key=key,
        resolved=args.resolved,
        project=args.project,
        stage=args.stage,
        service=args.service,
    )
    headers = {"Content-Type": "application/json"}
    if config.auth_token is not None:
        headers["Authorization"] = f"Bearer {config.auth_token.reveal()}"
    elif config.auth_basic_password is not None:
        pair = f"{config.auth_basic_username}:{config.auth_basic_password.reveal()}"
        headers["Authorization"] = f"Basic {base64.b64encode(pair.encode()).decode()}"
    url = f"{args.url.rstrip('/')}/webhooks/{args.source}"
    request = urllib.request.Request(  # noqa: S310 - the user's own receiver
        url, data=json.dumps(body).encode(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            print(f"{response.status} {response.read().decode()}")
            return 0
    except urllib.error.HTTPError as e:
        print(f"{e.code} {e.read().decode(errors='replace')[:500]}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as e:
        print(f"receiver: cannot reach {url}: {e}", file=sys.stderr)
        return 1


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def alertmanager(
    *, title: str, key: str, resolved: bool, project: str, stage: str, service: str
) -> dict[str, Any]:
    """A version 4 webhook as Alertmanager 0.25 sends it for Keptn's generated rules."""
    now = _now()
    labels = {
        "alertname": title,
        "pod_name": f"{service}-primary",
        "project": project,
        "service": service,
        "severity": "webhook",
        "stage": stage,
    }
    annotations = {"descriptions": f"Pod name {service}-primary", "summary": title}
    status = "resolved" if resolved else "firing"
    return {
        "receiver": "selfheal",
        "status": status,
        "alerts": [
            {
                "status": status,
                "labels": labels,
                "annotations": annotations,
                "startsAt": (now - datetime.timedelta(minutes=10))
                .isoformat()
                .replace("+00:00", "Z"),
                "endsAt": now.isoformat().replace("+00:00", "Z")
                if resolved
                else "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus:9090/graph",
                "fingerprint": key,
            }
        ],
        "groupLabels": {"alertname": title},
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{title}"}}',
        "truncatedAlerts": 0,
    }


def dynatrace(
    *, title: str, key: str, resolved: bool, project: str, stage: str, service: str
) -> dict[str, Any]:
    """The plain custom-webhook body, with the placeholders Dynatrace fills in."""
    pid = f"-{int(key, 16) % 10**19}_{int(_now().timestamp()) // 3600 * 3600000}V2"
    tags = f"keptn_project:{project}, keptn_stage:{stage}, keptn_service:{service}"
    return {
        "State": "RESOLVED" if resolved else "OPEN",
        "ProblemID": f"P-{int(key[:6], 16)}",
        "PID": pid,
        "ProblemTitle": title,
        "ProblemURL": f"https://example.live.dynatrace.com/#problems/problemdetails;pid={pid}",
        "ProblemSeverity": "PERFORMANCE",
        "ProblemImpact": "SERVICE",
        "ProblemDetails": {
            "id": pid,
            "status": "CLOSED" if resolved else "OPEN",
            "severityLevel": "PERFORMANCE",
            "impactLevel": "SERVICE",
        },
        "Tags": tags,
        "ImpactedEntities": [
            {"type": "SERVICE", "name": service, "entity": f"SERVICE-{key.upper()}"}
        ],
        "ImpactedEntity": f"{title} on Web service {service}",
    }
