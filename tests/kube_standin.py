"""A stand-in for the Kubernetes API server: Deployments and their `scale` subresource, with
real state, over real HTTP, for kubernetes-asyncio exactly as production calls it.

API behaviours reproduced (the contract our Kubernetes adapter relies on):
- Bearer-token authentication: a missing or wrong token → 401 `Status` (reason Unauthorized).
- `GET /apis/apps/v1/namespaces/{ns}/deployments/{name}` → an `apps/v1` `Deployment`.
- `PATCH` of the same path (strategic-merge or merge patch: a deep merge of the body) →
  the updated Deployment; `metadata.resourceVersion` goes up by one on every write and
  `metadata.generation` when the spec changes.
- `GET …/deployments/{name}/scale` → an `autoscaling/v1` `Scale` (spec.replicas,
  status.replicas, status.selector, the Deployment's resourceVersion).
- `PATCH …/scale` (merge of `spec.replicas`) and `PUT …/scale` (a whole `Scale`). A body that
  carries `metadata.resourceVersion` other than the current one → 409 `Status` (reason
  Conflict, the API server's "the object has been modified" message); `PUT` requires it.
- A missing Deployment → 404 `Status` (reason NotFound, `deployments.apps "x" not found`).
- RBAC: `forbid(verb, resource, namespace)` makes matching requests 403 `Status` (reason
  Forbidden) with the API server's message naming user, verb, resource, group and namespace.
- Faults a test injects: `fail(method, suffix, status, times)` answers `status` (e.g. 500)
  that many times; `conflicts` bumps the resourceVersion behind the client's back after each
  `GET …/scale` that many times (another writer); `delay` seconds before every answer.
- Run alone (`python -m tests.kube_standin PORT ns/name=replicas ...`) for the e2e tests and
  the demo; `GET /_standin/state`, `POST /_standin/deployments` and `POST /_standin/reset`
  control it (outside the API's paths, without authentication).
- `first_call[(method, path)]`: when (time.monotonic) such a request first arrived.
- `write_delay` seconds before a write is applied (the handler is not cancelled when the
  client goes away, as aiohttp's default is). Every request is kept in `calls` and every
  applied write in `writes`, as (method, path, JSON body or None), for counting.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import re
import time
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

TOKEN = "standin-token"
USER = "system:serviceaccount:selfheal:selfheal-receiver"
_PATH = re.compile(
    r"^/apis/apps/v1/namespaces/(?P<ns>[^/]+)/deployments/(?P<name>[^/]+)(?P<scale>/scale)?$"
)


@dataclasses.dataclass
class Cluster:
    deployments: dict[tuple[str, str], dict[str, Any]] = dataclasses.field(default_factory=dict)
    calls: list[tuple[str, str, Any]] = dataclasses.field(default_factory=list)
    forbidden: set[tuple[str, str, str]] = dataclasses.field(default_factory=set)
    faults: list[tuple[str, str, int]] = dataclasses.field(default_factory=list)
    conflicts: int = 0
    delay: float = 0.0
    write_delay: float = 0.0  # before a PATCH or PUT is applied: a client may die meanwhile
    writes: list[tuple[str, str, Any]] = dataclasses.field(default_factory=list)
    first_call: dict[tuple[str, str], float] = dataclasses.field(default_factory=dict)
    _version: int = 1000

    def add_deployment(self, namespace: str, name: str, *, replicas: int = 1) -> None:
        self._version += 1
        self.deployments[(namespace, name)] = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": f"uid-{namespace}-{name}",
                "resourceVersion": str(self._version),
                "generation": 1,
                "creationTimestamp": "2026-11-28T00:00:00Z",
            },
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": name, "image": "carts"}]},
                },
            },
            "status": {"replicas": replicas, "readyReplicas": replicas},
        }

    def replicas(self, namespace: str, name: str) -> int:
        replicas: int = self.deployments[(namespace, name)]["spec"]["replicas"]
        return replicas

    def forbid(self, verb: str, resource: str, namespace: str) -> None:
        self.forbidden.add((verb, resource, namespace))

    def fail(self, method: str, suffix: str, status: int, times: int = 1) -> None:
        self.faults.extend([(method, suffix, status)] * times)

    def count(self, method: str, suffix: str = "") -> int:
        return sum(1 for m, path, _ in self.calls if m == method and path.endswith(suffix))

    def _bump(self, deployment: dict[str, Any]) -> None:
        self._version += 1
        deployment["metadata"]["resourceVersion"] = str(self._version)


def _status(code: int, reason: str, message: str, **details: Any) -> web.Response:
    return web.json_response(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "details": details,
            "code": code,
        },
        status=code,
    )


def _scale(deployment: dict[str, Any]) -> dict[str, Any]:
    meta = deployment["metadata"]
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
        },
        "spec": {"replicas": deployment["spec"]["replicas"]},
        "status": {"replicas": deployment["status"]["replicas"], "selector": f"app={meta['name']}"},
    }


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        elif value is None:
            target.pop(key, None)
        else:
            target[key] = copy.deepcopy(value)


CLUSTER = web.AppKey("cluster", Cluster)


def create_app(cluster: Cluster) -> web.Application:
    app = web.Application()
    app[CLUSTER] = cluster

    async def handle(request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else None
        cluster.calls.append((request.method, request.path, body))
        cluster.first_call.setdefault((request.method, request.path), time.monotonic())
        if cluster.delay:
            await asyncio.sleep(cluster.delay)
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return _status(401, "Unauthorized", "Unauthorized")
        match = _PATH.match(request.path)
        if match is None:
            return _status(404, "NotFound", "the server could not find the requested resource")
        namespace, name, is_scale = match["ns"], match["name"], bool(match["scale"])
        resource = "deployments/scale" if is_scale else "deployments"
        verb = {"GET": "get", "PATCH": "patch", "PUT": "update"}.get(request.method)
        if verb is None:
            return _status(405, "MethodNotAllowed", f"{request.method} is not supported")
        for index, (method, suffix, code) in enumerate(cluster.faults):
            if method == request.method and request.path.endswith(suffix):
                del cluster.faults[index]
                return _status(
                    code, "InternalError", "injected fault: etcdserver: request timed out"
                )
        if (verb, resource, namespace) in cluster.forbidden:
            return _status(
                403,
                "Forbidden",
                f'deployments.apps "{name}" is forbidden: User "{USER}" cannot {verb}'
                f' resource "{resource}" in API group "apps" in the namespace'
                f' "{namespace}"',
                name=name,
                group="apps",
                kind="deployments",
            )
        deployment = cluster.deployments.get((namespace, name))
        if deployment is None:
            return _status(
                404,
                "NotFound",
                f'deployments.apps "{name}" not found',
                name=name,
                group="apps",
                kind="deployments",
            )
        if request.method == "GET":
            answer = _scale(deployment) if is_scale else copy.deepcopy(deployment)
            if is_scale and cluster.conflicts:
                cluster.conflicts -= 1
                cluster._bump(deployment)  # another writer, right after this read
            return web.json_response(answer)
        if not isinstance(body, dict):
            return _status(400, "BadRequest", "the body must be a JSON object")
        wanted = (body.get("metadata") or {}).get("resourceVersion")
        if (request.method == "PUT" and wanted is None) or (
            wanted is not None and wanted != deployment["metadata"]["resourceVersion"]
        ):
            return _status(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on deployments.apps "{name}": the'
                " object has been modified; please apply your changes to the latest"
                " version and try again",
                name=name,
                group="apps",
                kind="deployments",
            )
        if cluster.write_delay:
            await asyncio.sleep(cluster.write_delay)
            if wanted is not None and wanted != deployment["metadata"]["resourceVersion"]:
                return _status(
                    409,
                    "Conflict",
                    f"Operation cannot be fulfilled on"
                    f' deployments.apps "{name}": the object has been modified',
                )
        cluster.writes.append((request.method, request.path, body))
        spec_before = copy.deepcopy(deployment["spec"])
        if is_scale:
            replicas = (body.get("spec") or {}).get("replicas")
            if not isinstance(replicas, int) or replicas < 0:
                return _status(422, "Invalid", "spec.replicas: Invalid value: must be >= 0")
            deployment["spec"]["replicas"] = deployment["status"]["replicas"] = replicas
            deployment["status"]["readyReplicas"] = replicas
        else:
            _merge(deployment, {k: v for k, v in body.items() if k != "metadata"})
        cluster._bump(deployment)
        if deployment["spec"] != spec_before:
            deployment["metadata"]["generation"] += 1
        return web.json_response(_scale(deployment) if is_scale else copy.deepcopy(deployment))

    async def state(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "deployments": {
                    f"{ns}/{name}": d["spec"]["replicas"]
                    for (ns, name), d in cluster.deployments.items()
                },
                "writes": [[method, path] for method, path, _ in cluster.writes],
            }
        )

    async def put_deployment(request: web.Request) -> web.Response:
        body = await request.json()
        cluster.add_deployment(body["namespace"], body["name"], replicas=body.get("replicas", 1))
        return web.json_response({"ok": True})

    async def reset(request: web.Request) -> web.Response:
        cluster.deployments.clear()
        cluster.calls.clear()
        cluster.writes.clear()
        cluster.first_call.clear()
        return web.json_response({"ok": True})

    # Control endpoints for tests and the demo, outside the Kubernetes API paths.
    app.router.add_get("/_standin/state", state)
    app.router.add_post("/_standin/deployments", put_deployment)
    app.router.add_post("/_standin/reset", reset)
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


if __name__ == "__main__":
    import sys

    standalone = Cluster()
    for spec in sys.argv[2:]:  # namespace/name=replicas
        where, _, count = spec.partition("=")
        namespace, _, deployment = where.partition("/")
        standalone.add_deployment(namespace, deployment, replicas=int(count or 1))
    web.run_app(
        create_app(standalone), host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None
    )


def write_kubeconfig(path: Path, url: str, *, token: str = TOKEN) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "standin",
                "clusters": [{"name": "standin", "cluster": {"server": url}}],
                "users": [{"name": "receiver", "user": {"token": token}}],
                "contexts": [
                    {"name": "standin", "context": {"cluster": "standin", "user": "receiver"}}
                ],
            }
        )
    )
    return path
