"""Why a notification will start no remediation, decided before it is recorded.

Keptn did nothing, silently, when a problem named no service or the service had no
remediation.yaml. Here the reason is recorded on the problem and shown by the API.
"""

from __future__ import annotations

from receiver.configtree import ConfigTree
from receiver.models import Notification, Signal, Source
from receiver.settings import Settings


def reason(notification: Notification, *, tree: ConfigTree, settings: Settings) -> str | None:
    """None when a remediation may start for this notification, else why not."""
    if notification.signal is not Signal.OPEN:
        return None
    ref = notification.service_ref
    if ref is None:
        missing = [
            name for name in ("project", "stage", "service") if not getattr(notification, name)
        ]
        return f"no {'/'.join(missing)}: {_where(notification, settings, missing)}"
    if tree.remediation_file(ref) is None:
        return f"no remediation.yaml for {ref}"
    return None


def _where(notification: Notification, settings: Settings, missing: list[str]) -> str:
    if notification.source is Source.ALERTMANAGER:
        names = {
            "project": settings.labels_project,
            "stage": settings.labels_stage,
            "service": settings.labels_service,
        }
        looked = "; ".join(f"{m} from {', '.join(names[m])}" for m in missing)
        return f"the alert has none of the labels ({looked})"
    looked = ", ".join(f"keptn_{m}" for m in missing)
    return f"the problem has no {looked} tag nor Keptn{missing[0].title()} field"
