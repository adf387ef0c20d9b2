"""The Kubernetes adapter: a Deployment's `scale` subresource, its rollout (restart, rollback
to the previous revision), the HorizontalPodAutoscaler that may own its replicas, and the
Events that tell `kubectl describe` what the receiver did.

Access: the pod's service account (KUBERNETES_SERVICE_HOST and the token and CA the kubelet
mounts, at `kubernetes.service_account_dir`), else `KUBECONFIG` / `~/.kube/config`. Without
either the adapter is `unavailable` with the reason, and every call fails permanently saying
so. The kubelet rotates a pod's token (bound tokens live an hour, and a rotated one may be
revoked at once): the token is read again whenever its file changed, and once more after a
401 before the 401 counts.

Foreign errors become ours here, once: 403 → permanent, naming the verb, resource, API group
and namespace RBAC must allow; 404 → permanent, naming what is missing; 409 → temporary with
no delay (re-read and retry); 429, 5xx, timeouts and connection errors → temporary.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import functools
import json
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import aiohttp

from receiver.actions import retries
from receiver.errors import ActionError, PermanentActionError, TemporaryActionError

if TYPE_CHECKING:  # imported when there is a cluster to talk to: about 25 MB and 0.5 s
    from kubernetes_asyncio import client
    from kubernetes_asyncio.client.exceptions import ApiException

T = TypeVar("T")
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
REVISION = "deployment.kubernetes.io/revision"
POD_TEMPLATE_HASH = "pod-template-hash"
EVENT_TIMEOUT = 2.0  # an Event is best effort: it must not hold up the remediation it tells of
REPORTING_CONTROLLER = "selfheal-receiver"
# Said, not left to the client's guess: a merge patch replaces spec.replicas with the
# resourceVersion as precondition; the restart stamps the pod template as kubectl does; a
# rollback replaces the template whole, as `kubectl rollout undo` does.
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
# Annotations a rollback keeps from the Deployment rather than taking from the old
# ReplicaSet (kubectl's annotationsToSkip).
_KEPT_ANNOTATIONS = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION,
        "deployment.kubernetes.io/revision-history",
        "deployment.kubernetes.io/desired-replicas",
        "deployment.kubernetes.io/max-replicas",
        "deprecated.deployment.rollback.to",
    }
)


@dataclasses.dataclass(frozen=True, slots=True)
class _Resource:
    """What a call touches, for RBAC's and 404's messages."""

    resource: str  # as RBAC names it: deployments/scale, horizontalpodautoscalers, ...
    group: str  # its API group ("" for the core group)
    kind: str  # as people name it in a 404: Deployment, HorizontalPodAutoscaler, ...


DEPLOYMENTS = _Resource("deployments", "apps", "Deployment")
SCALE = _Resource("deployments/scale", "apps", "Deployment")
REPLICASETS = _Resource("replicasets", "apps", "ReplicaSet")
AUTOSCALERS = _Resource("horizontalpodautoscalers", "autoscaling", "HorizontalPodAutoscaler")
EVENTS = _Resource("events", "events.k8s.io", "Event")


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Autoscaler:
    """A HorizontalPodAutoscaler whose scaleTargetRef is a Deployment: it owns its replicas."""

    name: str
    min_replicas: int
    max_replicas: int


@dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
class Revision:
    """The pod template a Deployment's rollout had at one revision (its ReplicaSet's)."""

    number: int
    replica_set: str
    template: dict[str, Any]  # without the pod-template-hash label, as a Deployment has it
    annotations: dict[str, str]  # the ReplicaSet's, as a rollback restores them


def restored_annotations(deployment: dict[str, Any], revision: Revision) -> dict[str, str]:
    """The Deployment's annotations once rolled back to `revision`: the revision's, but for
    those that describe the rollout itself, which stay the Deployment's (as kubectl does)."""
    current = deployment["metadata"].get("annotations") or {}
    return {k: v for k, v in current.items() if k in _KEPT_ANNOTATIONS} | {
        k: v for k, v in revision.annotations.items() if k not in _KEPT_ANNOTATIONS
    }


class _TokenFile:
    """The service account token as the kubelet keeps it: read again whenever the file (a
    symlink into a projected volume the kubelet swaps) changed, not once a minute as
    kubernetes-asyncio's own loader does — a revoked token fails every call until then."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: tuple[int, int, int] | None = None
        self.token = ""

    def current(self) -> str:
        try:
            stat = os.stat(self.path)
        except OSError:
            return self.token  # mid-swap: the last one read, until the next call
        seen = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if seen != self._seen:
            self.token = self.path.read_text(encoding="utf-8").strip()
            self._seen = seen
        return self.token

    def forget(self) -> None:
        self._seen = None


class Kubernetes:
    def __init__(
        self,
        api: client.ApiClient | None,
        *,
        unavailable: str | None = None,
        request_timeout: float = 10.0,
        attempts: int = 3,
        backoff: float = 1.0,
        sleep: retries.Sleep = asyncio.sleep,
        token: _TokenFile | None = None,
    ) -> None:
        self._api = api
        self.unavailable = unavailable if api is None else None
        self._timeout = request_timeout
        self._attempts = attempts
        self._backoff = backoff
        self._sleep = sleep
        self._token = token

    @classmethod
    async def connect(
        cls, *, service_account_dir: Path = SERVICE_ACCOUNT_DIR, **options: Any
    ) -> Kubernetes:
        """The pod's service account, else KUBECONFIG or ~/.kube/config, else unavailable."""
        where, problem = _locate_credentials(service_account_dir)
        if problem is not None:
            return cls(None, unavailable=problem, **options)
        from kubernetes_asyncio import client, config
        from kubernetes_asyncio.config.config_exception import ConfigException

        configuration = client.Configuration()
        token = None
        try:
            if where is None:
                token = _in_cluster(configuration, service_account_dir)
            else:
                await config.load_kube_config(config_file=where, client_configuration=configuration)
        except (ConfigException, OSError, ValueError) as e:
            return cls(None, unavailable=f"no Kubernetes access: {e}", **options)
        return cls(client.ApiClient(configuration=configuration), token=token, **options)

    async def close(self) -> None:
        if self._api is not None:
            await self._api.close()

    # -- replicas ----------------------------------------------------------------------------

    async def read_replicas(self, namespace: str, deployments: tuple[str, ...]) -> tuple[str, int]:
        """(name, replicas) of the first of `deployments` that exists in `namespace`."""
        for name in deployments:
            try:
                replicas = await self._retrying(
                    functools.partial(self._read_scale, namespace, name),
                    f"read {namespace}/{name}",
                )
            except _NotFound:
                continue
            return name, replicas[0]
        raise PermanentActionError(
            f"no Deployment {' or '.join(deployments)} in namespace {namespace}"
        )

    async def _read_scale(self, namespace: str, name: str) -> tuple[int, str]:
        """(replicas, resourceVersion) from the scale subresource."""
        scale = await self._call(
            "get",
            SCALE,
            namespace,
            name,
            lambda api: api.AppsV1Api(self._api).read_namespaced_deployment_scale(
                name, namespace, _request_timeout=self._timeout
            ),
        )
        return int(scale.spec.replicas or 0), str(scale.metadata.resource_version)

    async def set_replicas(self, namespace: str, name: str, replicas: int) -> int:
        """Set the replica count through the scale subresource; the count before.

        Optimistic concurrency: the patch carries the resourceVersion just read, so a write
        by someone else in between is a 409, and the read-then-patch is retried.
        """

        async def attempt() -> int:
            before, resource_version = await self._read_scale(namespace, name)
            if before != replicas:
                body = {
                    "metadata": {"resourceVersion": resource_version},
                    "spec": {"replicas": replicas},
                }
                await self._call(
                    "patch",
                    SCALE,
                    namespace,
                    name,
                    lambda api: api.AppsV1Api(self._api).patch_namespaced_deployment_scale(
                        name,
                        namespace,
                        body,
                        _request_timeout=self._timeout,
                        _content_type=MERGE_PATCH,
                    ),
                )
            return before

        return await self._retrying(attempt, f"scale {namespace}/{name}")

    # -- autoscalers -------------------------------------------------------------------------

    async def autoscaler_of(self, namespace: str, deployment: str) -> Autoscaler | None:
        """The HorizontalPodAutoscaler that scales `deployment`, if one does."""

        async def attempt() -> Autoscaler | None:
            listed = await self._raw(
                "list",
                AUTOSCALERS,
                namespace,
                "",
                lambda api: api.AutoscalingV2Api(
                    self._api
                ).list_namespaced_horizontal_pod_autoscaler(
                    namespace, _request_timeout=self._timeout, _preload_content=False
                ),
            )
            for item in listed.get("items") or []:
                target = (item.get("spec") or {}).get("scaleTargetRef") or {}
                if target.get("kind") == "Deployment" and target.get("name") == deployment:
                    return _autoscaler(item)
            return None

        return await self._retrying(attempt, f"find the autoscaler of {namespace}/{deployment}")

    async def autoscaler(self, namespace: str, name: str) -> Autoscaler:
        """The HorizontalPodAutoscaler `name` as it is now."""
        found, _ = await self._retrying(
            functools.partial(self._read_autoscaler, namespace, name), f"read {namespace}/{name}"
        )
        return found

    async def _read_autoscaler(self, namespace: str, name: str) -> tuple[Autoscaler, str]:
        """The autoscaler and its resourceVersion."""
        item = await self._raw(
            "get",
            AUTOSCALERS,
            namespace,
            name,
            lambda api: api.AutoscalingV2Api(self._api).read_namespaced_horizontal_pod_autoscaler(
                name, namespace, _request_timeout=self._timeout, _preload_content=False
            ),
        )
        return _autoscaler(item), str(item["metadata"]["resourceVersion"])

    async def set_min_replicas(self, namespace: str, autoscaler: str, replicas: int) -> int:
        """Set an autoscaler's minReplicas (its controller then scales up to it); the value
        before. Read and patched with its resourceVersion, as replicas are."""

        async def attempt() -> int:
            current, resource_version = await self._read_autoscaler(namespace, autoscaler)
            if current.min_replicas != replicas:
                body = {
                    "metadata": {"resourceVersion": resource_version},
                    "spec": {"minReplicas": replicas},
                }
                await self._call(
                    "patch",
                    AUTOSCALERS,
                    namespace,
                    autoscaler,
                    lambda api: api.AutoscalingV2Api(
                        self._api
                    ).patch_namespaced_horizontal_pod_autoscaler(
                        autoscaler,
                        namespace,
                        body,
                        _request_timeout=self._timeout,
                        _content_type=MERGE_PATCH,
                    ),
                )
            return current.min_replicas

        return await self._retrying(attempt, f"set {namespace}/{autoscaler}'s minReplicas")

    # -- rollouts ----------------------------------------------------------------------------

    async def restart(self, namespace: str, name: str, *, at: str) -> None:
        """What `kubectl rollout restart` does: stamp the pod template, so pods are replaced."""
        body = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: at}}}}}

        async def attempt() -> None:
            await self._call(
                "patch",
                DEPLOYMENTS,
                namespace,
                name,
                lambda api: api.AppsV1Api(self._api).patch_namespaced_deployment(
                    name,
                    namespace,
                    body,
                    _request_timeout=self._timeout,
                    _content_type=STRATEGIC_MERGE_PATCH,
                ),
            )

        await self._retrying(attempt, f"restart {namespace}/{name}")

    async def deployment(self, namespace: str, name: str) -> dict[str, Any]:
        """The Deployment as the API server has it (JSON, every field kept)."""
        return await self._retrying(
            functools.partial(
                self._raw,
                "get",
                DEPLOYMENTS,
                namespace,
                name,
                lambda api: api.AppsV1Api(self._api).read_namespaced_deployment(
                    name, namespace, _request_timeout=self._timeout, _preload_content=False
                ),
            ),
            f"read {namespace}/{name}",
        )

    async def revisions(self, namespace: str, deployment: dict[str, Any]) -> list[Revision]:
        """Every revision of `deployment`'s rollout, newest first: its ReplicaSets (those it
        controls, matched by its selector), by their revision annotation."""
        selector = ",".join(
            f"{key}={value}"
            for key, value in (
                (deployment["spec"].get("selector") or {}).get("matchLabels") or {}
            ).items()
        )
        uid = deployment["metadata"]["uid"]
        listed = await self._retrying(
            functools.partial(
                self._raw,
                "list",
                REPLICASETS,
                namespace,
                "",
                lambda api: api.AppsV1Api(self._api).list_namespaced_replica_set(
                    namespace,
                    label_selector=selector,
                    _request_timeout=self._timeout,
                    _preload_content=False,
                ),
            ),
            f"list the ReplicaSets of {namespace}/{deployment['metadata']['name']}",
        )
        found = []
        for item in listed.get("items") or []:
            meta = item.get("metadata") or {}
            owners = meta.get("ownerReferences") or []
            if not any(o.get("uid") == uid and o.get("controller") for o in owners):
                continue
            annotations = meta.get("annotations") or {}
            try:
                number = int(annotations.get(REVISION, ""))
            except ValueError:
                continue
            template = json.loads(json.dumps(item["spec"]["template"]))
            (template.get("metadata") or {}).get("labels", {}).pop(POD_TEMPLATE_HASH, None)
            found.append(
                Revision(
                    number=number,
                    replica_set=meta["name"],
                    template=template,
                    annotations=annotations,
                )
            )
        return sorted(found, key=lambda r: r.number, reverse=True)

    async def roll_back(
        self, namespace: str, name: str, template: dict[str, Any], annotations: dict[str, str]
    ) -> None:
        """Put `template` (an earlier revision's) back into the Deployment with the
        annotations a rollback restores: what `kubectl rollout undo` patches."""
        patch = [
            {"op": "replace", "path": "/spec/template", "value": template},
            {"op": "replace", "path": "/metadata/annotations", "value": annotations},
        ]

        async def attempt() -> None:
            await self._call(
                "patch",
                DEPLOYMENTS,
                namespace,
                name,
                lambda api: api.AppsV1Api(self._api).patch_namespaced_deployment(
                    name,
                    namespace,
                    patch,
                    _request_timeout=self._timeout,
                    _content_type=JSON_PATCH,
                ),
            )

        await self._retrying(attempt, f"roll back {namespace}/{name}")

    # -- events ------------------------------------------------------------------------------

    async def record_event(
        self,
        namespace: str,
        deployment: str,
        *,
        reason: str,
        action: str,
        note: str,
        warning: bool = False,
    ) -> None:
        """An events.k8s.io/v1 Event regarding the Deployment, as controllers write them
        (`kubectl events --for deployment/NAME` shows it). Once, within EVENT_TIMEOUT:
        raises ActionError, which callers take as best effort."""
        moment = datetime.datetime.now(tz=datetime.UTC)
        body = {
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            # Named as client-go's recorder names them: the object, then the time in hex (a
            # generateName of "NAME." is refused: it must itself be a valid name).
            "metadata": {"name": f"{deployment}.{time.time_ns():x}", "namespace": namespace},
            "eventTime": moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "reportingController": REPORTING_CONTROLLER,
            "reportingInstance": os.environ.get("POD_NAME") or REPORTING_CONTROLLER,
            "action": action,
            "reason": reason,
            "type": "Warning" if warning else "Normal",
            "note": note[:1024],  # the API server refuses a note over 1 kB
            "regarding": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "namespace": namespace,
                "name": deployment,
            },
        }
        await self._call(
            "create",
            EVENTS,
            namespace,
            deployment,
            lambda api: api.EventsV1Api(self._api).create_namespaced_event(
                namespace, body, _request_timeout=EVENT_TIMEOUT
            ),
        )

    # -- plumbing ----------------------------------------------------------------------------

    async def _retrying(self, attempt: Callable[[], Awaitable[T]], what: str) -> T:
        return await retries.retrying(
            attempt, attempts=self._attempts, backoff=self._backoff, sleep=self._sleep, what=what
        )

    async def _raw(
        self,
        verb: str,
        target: _Resource,
        namespace: str,
        name: str,
        call: Callable[[Any], Awaitable[Any]],
    ) -> dict[str, Any]:
        """A call made with _preload_content=False: its JSON as the server sent it (the
        client's models drop what they do not know)."""

        async def read(api: Any) -> Any:
            from kubernetes_asyncio.client.exceptions import ApiException

            response = await call(api)
            try:
                data = await response.read()
            finally:
                response.release()
            if not 200 <= response.status <= 299:  # not raised without preloading
                error = ApiException(status=response.status, reason=response.reason)
                error.body, error.headers = data.decode(errors="replace"), response.headers
                raise error
            return json.loads(data)

        found: dict[str, Any] = await self._call(verb, target, namespace, name, read)
        return found

    async def _call(
        self,
        verb: str,
        target: _Resource,
        namespace: str,
        name: str,
        call: Callable[[Any], Awaitable[Any]],
    ) -> Any:
        if self._api is None:  # unavailable: say so, without loading the client for nothing
            raise PermanentActionError(self.unavailable or "no Kubernetes access")
        from kubernetes_asyncio import client
        from kubernetes_asyncio.client.exceptions import ApiException

        try:
            try:
                return await call(client)
            except ApiException as e:
                if e.status != 401 or self._token is None:
                    raise
                self._token.forget()  # rotated since it was read: read it again, once
                return await call(client)
        except ApiException as e:
            raise _translate(e, verb, target, namespace, name) from None
        except (TimeoutError, aiohttp.ClientError) as e:
            where = f"{namespace}/{name}" if name else namespace
            raise TemporaryActionError(
                f"Kubernetes API: {verb} {target.resource} {where}: {type(e).__name__} {e}".strip()
            ) from None


class _NotFound(PermanentActionError):
    pass


def _autoscaler(item: dict[str, Any]) -> Autoscaler:
    spec = item.get("spec") or {}
    return Autoscaler(
        name=item["metadata"]["name"],
        min_replicas=int(spec.get("minReplicas") or 1),  # the API's default
        max_replicas=int(spec["maxReplicas"]),
    )


def _in_cluster(configuration: Any, directory: Path) -> _TokenFile:
    """The pod's credentials: the API server from KUBERNETES_SERVICE_HOST/PORT, its CA and the
    service account token from `directory`, the token followed as it rotates."""
    from kubernetes_asyncio.config.config_exception import ConfigException

    host, port = (
        os.environ.get("KUBERNETES_SERVICE_HOST"),
        os.environ.get("KUBERNETES_SERVICE_PORT"),
    )
    if not host or not port:
        raise ConfigException("KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set")
    token = _TokenFile(directory / "token")
    if not token.current():
        raise ConfigException(f"the service account token {token.path} is empty")
    ca = directory / "ca.crt"
    if not ca.is_file():
        raise ConfigException(f"no CA certificate at {ca}")
    configuration.host = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
    configuration.ssl_ca_cert = str(ca)

    def refresh(configuration: Any) -> None:
        configuration.api_key["BearerToken"] = f"Bearer {token.current()}"

    refresh(configuration)
    configuration.refresh_api_key_hook = refresh
    return token


def _locate_credentials(service_account_dir: Path) -> tuple[str | None, str | None]:
    """(kubeconfig path or None for in-cluster, problem): where credentials come from."""
    if os.environ.get("KUBERNETES_SERVICE_HOST") and (service_account_dir / "token").exists():
        return None, None
    file = (os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")).split(
        os.pathsep
    )[0]
    if not Path(file).exists():
        return file, (
            f"no Kubernetes access: not in a cluster, and no kubeconfig at {file} (set KUBECONFIG)"
        )
    return file, None


def _translate(
    e: ApiException, verb: str, target: _Resource, namespace: str, name: str
) -> ActionError:
    message = _status_message(e)
    where = f"{target.resource} {namespace}/{name}" if name else f"{target.resource} in {namespace}"
    if e.status == 403:
        group = f"API group {target.group}" if target.group else "the core API group"
        return PermanentActionError(
            f"forbidden: RBAC must allow verb {verb!r} on resource {target.resource!r} ({group})"
            f" in namespace {namespace!r}: {message}"
        )
    if e.status == 404:
        what = f"{target.kind} {name}" if name else f"the {target.resource} API"
        return _NotFound(f"not found: {what} in namespace {namespace}")
    if e.status == 401:
        return PermanentActionError(f"Kubernetes rejected the receiver's credentials: {message}")
    if e.status == 409:
        return TemporaryActionError(f"conflict on {where}: {message}", delay=0.0)
    headers: Any = e.headers or {}  # an HTTPHeaderDict from the client
    retry_after = headers.get("Retry-After")
    return retries.for_status(
        e.status or 0,
        f"Kubernetes API answered {e.status} for {where}: {message}",
        retry_after=retry_after,
    )


def _status_message(e: ApiException) -> str:
    """The `message` of the Status object Kubernetes answers with, else the reason."""
    try:
        status = json.loads(e.body or "")
    except (ValueError, TypeError):
        status = None
    text = status.get("message") if isinstance(status, dict) else None
    return str(text or e.reason or "")[:300]
