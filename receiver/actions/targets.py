"""Which Deployment an action on a service may touch — only what configuration allows.

A service is a target only if the configuration names it: a service directory in the
config tree or an entry under `services:` in receiver.yaml. A payload's labels choose among
those; they can never point at a namespace or a Deployment that no configured service maps to.
"""

from __future__ import annotations

import dataclasses
import re

from receiver.errors import PermanentActionError
from receiver.models import ServiceRef
from receiver.settings import Settings

# A Kubernetes object name (RFC 1123 label for namespaces, subdomain for Deployments).
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class DeploymentTarget:
    service: ServiceRef
    namespace: str
    deployments: tuple[str, ...]  # tried in order: the first that exists is the target
    min_replicas: int
    max_replicas: int

    def __str__(self) -> str:
        return f"{self.namespace}/{' or '.join(self.deployments)}"


def resolve(
    ref: ServiceRef, *, configured: frozenset[ServiceRef], settings: Settings
) -> DeploymentTarget:
    override = settings.services.get(str(ref))
    if ref not in configured and override is None:
        raise PermanentActionError(
            f"{ref} is not a configured service: add its directory to the configuration or an"
            " entry under services: in receiver.yaml"
        )
    fields = {"project": ref.project, "stage": ref.stage, "service": ref.service}
    namespace = (override and override.namespace) or _format(
        settings.kubernetes_namespace_template, fields
    )
    deployments = (
        (override.deployment,)
        if override and override.deployment
        else tuple(_format(t, fields) for t in settings.kubernetes_deployment_templates)
    )
    for name in (namespace, *deployments):
        if not _NAME.match(name):
            raise PermanentActionError(f"{name!r} is not a valid Kubernetes name (from {ref})")
    minimum = settings.scaling_min_replicas
    maximum = settings.scaling_max_replicas
    if override is not None:
        minimum = override.min_replicas if override.min_replicas is not None else minimum
        maximum = override.max_replicas if override.max_replicas is not None else maximum
    return DeploymentTarget(
        service=ref,
        namespace=namespace,
        deployments=deployments,
        min_replicas=minimum,
        max_replicas=maximum,
    )


def _format(template: str, fields: dict[str, str]) -> str:
    try:
        return template.format(**fields)
    except (KeyError, IndexError, ValueError) as e:
        raise PermanentActionError(f"bad name template {template!r}: {e}") from None
