"""The Kubernetes adapter: read and patch a Deployment's `scale` subresource, restart it.

Access: the in-cluster service account, else `KUBECONFIG` / `~/.kube/config`. Without either
the adapter is `unavailable` with the reason, and every call fails permanently saying so.

Foreign errors become ours here, once: 403 → permanent, naming the verb, resource and
namespace RBAC must allow; 404 → permanent, naming what is missing; 409 → temporary with no
delay (re-read and retry); 429, 5xx, timeouts and connection errors → temporary.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
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
IN_CLUSTER_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
# Said, not left to the client's guess: a merge patch replaces spec.replicas with the
# resourceVersion as precondition; the restart stamps the pod template as kubectl does.
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"


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
    ) -> None:
        self._api = api
        self.unavailable = unavailable if api is None else None
        self._apps: client.AppsV1Api | None = None
        if api is not None:
            from kubernetes_asyncio import client

            self._apps = client.AppsV1Api(api)
        self._timeout = request_timeout
        self._attempts = attempts
        self._backoff = backoff
        self._sleep = sleep

    @classmethod
    async def connect(cls, **options: Any) -> Kubernetes:
        """In-cluster credentials, else KUBECONFIG or ~/.kube/config, else unavailable."""
        where, problem = _locate_credentials()
        if problem is not None:
            return cls(None, unavailable=problem, **options)
        from kubernetes_asyncio import client, config
        from kubernetes_asyncio.config.config_exception import ConfigException

        configuration = client.Configuration()
        try:
            if where is None:
                config.load_incluster_config(  # type: ignore[no-untyped-call]  # untyped upstream
                    client_configuration=configuration
                )
            else:
                await config.load_kube_config(config_file=where, client_configuration=configuration)
        except (ConfigException, OSError, ValueError) as e:
            return cls(None, unavailable=f"no Kubernetes access: {e}", **options)
        return cls(client.ApiClient(configuration=configuration), **options)

    async def close(self) -> None:
        if self._api is not None:
            await self._api.close()

    # -- calls -----------------------------------------------------------------------------

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
            "deployments/scale",
            namespace,
            name,
            lambda: self._apps_api().read_namespaced_deployment_scale(
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
                    "deployments/scale",
                    namespace,
                    name,
                    # The stub leaves out _content_type, which the client takes (all_params).
                    lambda: self._apps_api().patch_namespaced_deployment_scale(  # type: ignore[call-arg]
                        name,
                        namespace,
                        body,
                        _request_timeout=self._timeout,
                        _content_type=MERGE_PATCH,
                    ),
                )
            return before

        return await self._retrying(attempt, f"scale {namespace}/{name}")

    async def restart(self, namespace: str, name: str, *, at: str) -> None:
        """What `kubectl rollout restart` does: stamp the pod template, so pods are replaced."""
        body = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: at}}}}}

        async def attempt() -> None:
            await self._call(
                "patch",
                "deployments",
                namespace,
                name,
                lambda: self._apps_api().patch_namespaced_deployment(  # type: ignore[call-arg]
                    name,
                    namespace,
                    body,
                    _request_timeout=self._timeout,
                    _content_type=STRATEGIC_MERGE_PATCH,
                ),
            )

        await self._retrying(attempt, f"restart {namespace}/{name}")

    # -- plumbing ----------------------------------------------------------------------------

    def _apps_api(self) -> client.AppsV1Api:
        if self._apps is None:
            raise PermanentActionError(self.unavailable or "no Kubernetes access")
        return self._apps

    async def _retrying(self, attempt: Callable[[], Awaitable[T]], what: str) -> T:
        return await retries.retrying(
            attempt, attempts=self._attempts, backoff=self._backoff, sleep=self._sleep, what=what
        )

    async def _call(
        self,
        verb: str,
        resource: str,
        namespace: str,
        name: str,
        call: Callable[[], Awaitable[Any]],
    ) -> Any:
        self._apps_api()  # unavailable: say so, without loading the client for nothing
        from kubernetes_asyncio.client.exceptions import ApiException

        try:
            return await call()
        except ApiException as e:
            raise _translate(e, verb, resource, namespace, name) from None
        except (TimeoutError, aiohttp.ClientError) as e:
            raise TemporaryActionError(
                f"Kubernetes API: {verb} {resource} {namespace}/{name}: "
                f"{type(e).__name__} {e}".strip()
            ) from None


class _NotFound(PermanentActionError):
    pass


def _locate_credentials() -> tuple[str | None, str | None]:
    """(kubeconfig path or None for in-cluster, problem): where credentials come from."""
    if os.environ.get("KUBERNETES_SERVICE_HOST") and IN_CLUSTER_TOKEN.exists():
        return None, None
    file = (os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")).split(
        os.pathsep
    )[0]
    if not Path(file).exists():
        return file, (
            f"no Kubernetes access: not in a cluster, and no kubeconfig at {file} (set KUBECONFIG)"
        )
    return file, None


def _translate(e: ApiException, verb: str, resource: str, namespace: str, name: str) -> ActionError:
    message = _status_message(e)
    where = f"{resource} {namespace}/{name}"
    if e.status == 403:
        return PermanentActionError(
            f"forbidden: RBAC must allow verb {verb!r} on resource {resource!r} (API group apps)"
            f" in namespace {namespace!r}: {message}"
        )
    if e.status == 404:
        return _NotFound(f"not found: Deployment {name} in namespace {namespace}")
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
