"""A stand-in for the Kubernetes API server: Deployments and their `scale` subresource, with
real state, over real HTTP, for kubernetes-asyncio exactly as production calls it. It refuses
what a real API server refuses, so an adapter that drifts fails here before a cluster.

API behaviours reproduced (the contract our Kubernetes adapter relies on), after the API
reference (kubernetes.io/docs/reference/kubernetes-api/, "API Concepts": patch types, and
"Using RBAC Authorization"):
- Bearer-token authentication: a missing or wrong token → 401 `Status` (reason Unauthorized).
- RBAC, enforced by default: the Roles of `manifests/base/generated/rbac.yaml` (what
  `receiver manifests` renders for the example configuration; `roles_for(config_dir)` for
  another) say which verbs on which
  resources (`deployments`, `deployments/scale`), in which namespaces and, where a rule has
  `resourceNames`, on which Deployments; anything else → 403 `Status` (reason Forbidden) with
  the API server's message naming user, verb, resource, group and namespace. A test opts
  out with `Cluster(roles=None)` or gives its own; `forbid(verb, resource, namespace)` takes
  a permission away.
- `GET /apis/apps/v1/namespaces/{ns}/deployments/{name}` → an `apps/v1` `Deployment`;
  `GET …/scale` → an `autoscaling/v1` `Scale` (spec.replicas, status.replicas,
  status.selector, the Deployment's resourceVersion).
- `PATCH` of either, by its `Content-Type`, each with its own semantics:
  `application/merge-patch+json` (RFC 7386: objects merge, lists are replaced, null
  deletes), `application/strategic-merge-patch+json` (lists with a patch merge key —
  `containers`, `volumes`, `env`, … by `name` — merge entry by entry), and
  `application/json-patch+json` (RFC 6902: a list of add/remove/replace/test operations; a
  failed `test` or a bad path → 422). Any other type → 415 (reason UnsupportedMediaType);
  a body that is not JSON → 400 (reason BadRequest). `PUT …/scale` takes a whole `Scale`
  as `application/json` and requires `metadata.resourceVersion`.
- A body that carries `metadata.resourceVersion` other than the current one → 409 `Status`
  (reason Conflict, the API server's "the object has been modified" message).
  `metadata.resourceVersion` goes up by one on every write and `metadata.generation` when
  the spec changes. A negative `spec.replicas` → 422 (reason Invalid).
- A missing Deployment → 404 `Status` (reason NotFound, `deployments.apps "x" not found`).
- Faults a test injects: `fail(method, suffix, status, times)` answers `status` that many
  times with the reason the API server gives it (429 TooManyRequests with `Retry-After`
  and `details.retryAfterSeconds`, 500 InternalError, 503 ServiceUnavailable, 504 Timeout);
  `conflicts` bumps the resourceVersion behind the client's back after each `GET …/scale`
  that many times (another writer); `delay` seconds before every answer.
- HorizontalPodAutoscalers (autoscaling/v2): `GET …/horizontalpodautoscalers` lists those
  added with `add_autoscaler`; `GET` and merge-`PATCH` of one (resourceVersion checked as for
  Deployments). Where the real HPA controller enforces minReplicas within seconds, the
  stand-in does it at once: a patched minReplicas above its Deployment's replicas scales the
  Deployment up to it.
- Events (events.k8s.io/v1): `POST …/events` stores the Event (with a `metadata.name` made
  from `generateName`) in `events` and answers 201.
- ReplicaSets: `GET /apis/apps/v1/namespaces/{ns}/replicasets?labelSelector=a=b` lists those
  of `replica_sets` whose labels match (a test adds them; nothing makes them by itself).
- RBAC checks the API group of each resource (apps, autoscaling, events.k8s.io); `list` and
  `create` are never narrowed by `resourceNames`, as in Kubernetes.
- Run alone (`python -m tests.kube_standin PORT ns/name=replicas ...`) for the e2e tests and
  the demo; `GET /_standin/state`, `POST /_standin/deployments`, `POST /_standin/roles` (the
  Roles to enforce, e.g. `roles_for` a scenario's configuration) and `POST /_standin/reset`
  control it (outside the API's paths, without authentication).
- `first_call[(method, path)]`: when (time.monotonic) such a request first arrived.
- `write_delay` seconds before a write is applied; a write once begun is applied even if
  its client goes away meanwhile (an orphaned write, as a crashed receiver leaves one).
- Every request is kept in `calls` (with its content type in `content_types`) and every
  applied write in `writes`, as (method, path, JSON body or None), for counting.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
import re
import time
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

TOKEN = "standin-token"
USER = "system:serviceaccount:selfheal:selfheal-receiver"
GENERATED_RBAC = Path(__file__).parent.parent / "manifests" / "base" / "generated" / "rbac.yaml"
_PATH = re.compile(
    r"^/apis/apps/v1/namespaces/(?P<ns>[^/]+)/deployments/(?P<name>[^/]+)(?P<scale>/scale)?$"
)
_AUTOSCALERS = re.compile(
    r"^/apis/autoscaling/v2/namespaces/(?P<ns>[^/]+)/horizontalpodautoscalers(?:/(?P<name>[^/]+))?$"
)
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_EVENTS = re.compile(r"^/apis/events\.k8s\.io/v1/namespaces/(?P<ns>[^/]+)/events$")
_REPLICASETS = re.compile(r"^/apis/apps/v1/namespaces/(?P<ns>[^/]+)/replicasets$")
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
# Lists of a Deployment that a strategic-merge patch merges entry by entry, by this key
# (the patchMergeKey of the API's OpenAPI schema); every other list is replaced.
_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "volumes": "name",
    "env": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "imagePullSecrets": "name",
}
_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


def generated_roles() -> list[dict[str, Any]]:
    """The Roles `receiver manifests` renders for the example configuration."""
    return [
        document
        for document in yaml.safe_load_all(GENERATED_RBAC.read_text())
        if document and document.get("kind") == "Role"
    ]


def roles_for(config_dir: Path) -> list[dict[str, Any]]:
    """The Roles `receiver manifests` renders for `config_dir` (its rules' actions decide
    the verbs: a configuration that restarts gets `deployments` patch, one that scales not)."""
    from receiver import manifests

    text = manifests.render(config_dir, namespace="selfheal")["base/generated/rbac.yaml"]
    return [
        document
        for document in yaml.safe_load_all(text)
        if document and document.get("kind") == "Role"
    ]


@dataclasses.dataclass
class Cluster:
    deployments: dict[tuple[str, str], dict[str, Any]] = dataclasses.field(default_factory=dict)
    calls: list[tuple[str, str, Any]] = dataclasses.field(default_factory=list)
    content_types: list[str] = dataclasses.field(default_factory=list)
    roles: list[dict[str, Any]] | None = dataclasses.field(default_factory=generated_roles)
    forbidden: set[tuple[str, str, str]] = dataclasses.field(default_factory=set)
    faults: list[tuple[str, str, int]] = dataclasses.field(default_factory=list)
    conflicts: int = 0
    delay: float = 0.0
    write_delay: float = 0.0  # before a PATCH or PUT is applied: a client may die meanwhile
    writes: list[tuple[str, str, Any]] = dataclasses.field(default_factory=list)
    first_call: dict[tuple[str, str], float] = dataclasses.field(default_factory=dict)
    autoscalers: dict[tuple[str, str], dict[str, Any]] = dataclasses.field(default_factory=dict)
    events: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    replica_sets: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    _version: int = 1000

    def add_autoscaler(
        self, namespace: str, name: str, *, deployment: str, min_replicas: int, max_replicas: int
    ) -> None:
        self._version += 1
        self.autoscalers[(namespace, name)] = {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "resourceVersion": str(self._version),
            },
            "spec": {
                "scaleTargetRef": {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": deployment,
                },
                "minReplicas": min_replicas,
                "maxReplicas": max_replicas,
            },
        }

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

    def add_revision(self, namespace: str, name: str, number: int, *, image: str) -> None:
        """A ReplicaSet of the Deployment at revision `number` with `image`, as its
        deployment controller would have left it; the newest one becomes its template."""
        deployment = self.deployments[(namespace, name)]
        template = copy.deepcopy(deployment["spec"]["template"])
        template["spec"]["containers"][0]["image"] = image
        template["metadata"]["labels"]["pod-template-hash"] = f"h{number}"
        self.replica_sets.append(
            {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {
                    "name": f"{name}-h{number}",
                    "namespace": namespace,
                    "labels": template["metadata"]["labels"],
                    "annotations": {"deployment.kubernetes.io/revision": str(number)},
                    "ownerReferences": [
                        {"kind": "Deployment", "name": name, "controller": True,
                         "uid": deployment["metadata"]["uid"]}
                    ],
                },
                "spec": {"template": template},
            }
        )  # fmt: skip
        if number == max(
            int(rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"])
            for rs in self.replica_sets
            if rs["metadata"]["ownerReferences"][0]["uid"] == deployment["metadata"]["uid"]
        ):
            current = copy.deepcopy(template)
            del current["metadata"]["labels"]["pod-template-hash"]
            deployment["spec"]["template"] = current
            deployment["metadata"].setdefault("annotations", {})[
                "deployment.kubernetes.io/revision"
            ] = str(number)

    def replicas(self, namespace: str, name: str) -> int:
        replicas: int = self.deployments[(namespace, name)]["spec"]["replicas"]
        return replicas

    def forbid(self, verb: str, resource: str, namespace: str) -> None:
        self.forbidden.add((verb, resource, namespace))

    def fail(self, method: str, suffix: str, status: int, times: int = 1) -> None:
        self.faults.extend([(method, suffix, status)] * times)

    def count(self, method: str, suffix: str = "") -> int:
        return sum(1 for m, path, _ in self.calls if m == method and path.endswith(suffix))

    def scale_writes(self) -> int:
        """Writes applied to a `scale` subresource: how often replicas were set."""
        return sum(1 for _, path, _ in self.writes if path.endswith("/scale"))

    def allows(
        self, verb: str, resource: str, namespace: str, name: str, group: str = "apps"
    ) -> bool:
        if (verb, resource, namespace) in self.forbidden:
            return False
        if self.roles is None:
            return True
        named = verb not in ("list", "create")  # never narrowed by resourceNames
        return any(
            role["metadata"]["namespace"] == namespace
            and group in rule.get("apiGroups", [])
            and resource in rule.get("resources", [])
            and verb in rule.get("verbs", [])
            and (not named or name in rule.get("resourceNames", [name]))
            for role in self.roles
            for rule in role.get("rules", [])
        )

    def _bump(self, deployment: dict[str, Any]) -> None:
        self._version += 1
        deployment["metadata"]["resourceVersion"] = str(self._version)


def _status(
    code: int, message: str, *, headers: dict[str, str] | None = None, **details: Any
) -> web.Response:
    return web.json_response(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": _REASONS.get(code, "Unknown"),
            "details": details,
            "code": code,
        },
        status=code,
        headers=headers,
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


class PatchError(Exception):
    """A patch that cannot be applied: the API server answers 422."""


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON Merge Patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: Any, field: str | None = None) -> Any:
    """Kubernetes' strategic merge patch for the lists a Deployment has (see _MERGE_KEYS)."""
    if isinstance(patch, dict):
        result = copy.deepcopy(target) if isinstance(target, dict) else {}
        for key, value in patch.items():
            if value is None:
                result.pop(key, None)
            else:
                result[key] = strategic_merge_patch(result.get(key), value, key)
        return result
    key = _MERGE_KEYS.get(field or "")
    if isinstance(patch, list) and key is not None and isinstance(target, list):
        merged = copy.deepcopy(target)
        for entry in patch:
            if not isinstance(entry, dict) or key not in entry:
                raise PatchError(f"{field}: every entry needs its merge key {key!r}")
            index = next((i for i, e in enumerate(merged) if e.get(key) == entry[key]), None)
            if index is None:
                merged.append(copy.deepcopy(entry))
            else:
                merged[index] = strategic_merge_patch(merged[index], entry)
        return merged
    return copy.deepcopy(patch)


def json_patch(target: Any, operations: Any) -> Any:
    """RFC 6902 JSON Patch: add, remove, replace and test."""
    if not isinstance(operations, list):
        raise PatchError("a JSON patch is a list of operations")
    document = copy.deepcopy(target)
    for operation in operations:
        if not isinstance(operation, dict) or "path" not in operation:
            raise PatchError(f"not an operation: {operation!r}")
        op, path = operation.get("op"), operation["path"]
        tokens = [t.replace("~1", "/").replace("~0", "~") for t in path.split("/")[1:]]
        if not tokens:
            raise PatchError(f"cannot {op} the whole document")
        parent = document
        for token in tokens[:-1]:
            parent = _child(parent, token, path)
        last = tokens[-1]
        if op == "test":
            if _child(parent, last, path) != operation.get("value"):
                raise PatchError(f"testing value {path} failed")
        elif op in ("add", "replace"):
            if op == "replace":
                _child(parent, last, path)
            if isinstance(parent, list):
                index = len(parent) if last == "-" else int(last)
                if op == "add":
                    parent.insert(index, copy.deepcopy(operation.get("value")))
                else:
                    parent[index] = copy.deepcopy(operation.get("value"))
            else:
                parent[last] = copy.deepcopy(operation.get("value"))
        elif op == "remove":
            _child(parent, last, path)
            if isinstance(parent, list):
                del parent[int(last)]
            else:
                del parent[last]
        else:
            raise PatchError(f"unsupported operation {op!r}")
    return document


def _child(node: Any, token: str, path: str) -> Any:
    try:
        if isinstance(node, list):
            return node[int(token)]
        if isinstance(node, dict):
            return node[token]
    except (KeyError, IndexError, ValueError):
        pass
    raise PatchError(f"no path {path}")


_PATCHES = {
    MERGE_PATCH: merge_patch,
    STRATEGIC_MERGE_PATCH: strategic_merge_patch,
    JSON_PATCH: json_patch,
}

CLUSTER = web.AppKey("cluster", Cluster)


def _conflict(name: str) -> web.Response:
    return _status(
        409,
        f'Operation cannot be fulfilled on deployments.apps "{name}": the object has been'
        " modified; please apply your changes to the latest version and try again",
        name=name,
        group="apps",
        kind="deployments",
    )


def create_app(cluster: Cluster) -> web.Application:
    app = web.Application()
    app[CLUSTER] = cluster

    async def handle(request: web.Request) -> web.Response:
        raw = await request.read()
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        cluster.calls.append((request.method, request.path, body))
        cluster.content_types.append(content_type)
        cluster.first_call.setdefault((request.method, request.path), time.monotonic())
        if cluster.delay:
            await asyncio.sleep(cluster.delay)
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return _status(401, "Unauthorized")
        for pattern, other in (
            (_AUTOSCALERS, autoscalers),
            (_EVENTS, events),
            (_REPLICASETS, replica_sets),
        ):
            if found := pattern.match(request.path):
                return await other(request, found, content_type, body)
        match = _PATH.match(request.path)
        if match is None:
            return _status(404, "the server could not find the requested resource")
        namespace, name, is_scale = match["ns"], match["name"], bool(match["scale"])
        resource = "deployments/scale" if is_scale else "deployments"
        verb = {"GET": "get", "PATCH": "patch", "PUT": "update"}.get(request.method)
        if verb is None:
            return _status(405, f"{request.method} is not supported")
        for index, (method, suffix, code) in enumerate(cluster.faults):
            if method == request.method and request.path.endswith(suffix):
                del cluster.faults[index]
                if code == 429:
                    return _status(
                        429,
                        "Too many requests, please try again later.",
                        headers={"Retry-After": "1"},
                        retryAfterSeconds=1,
                    )
                return _status(code, "injected fault: etcdserver: request timed out")
        if not cluster.allows(verb, resource, namespace, name):
            return _status(
                403,
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
        # Shielded: a write the server has begun is committed even when its client hangs up
        # (aiohttp's test server cancels the handlers of lost clients; etcd does not).
        return await asyncio.shield(write(request, content_type, body, deployment, is_scale))

    async def write(
        request: web.Request,
        content_type: str,
        body: Any,
        deployment: dict[str, Any],
        is_scale: bool,
    ) -> web.Response:
        method, name = request.method, deployment["metadata"]["name"]
        if method == "PATCH" and content_type not in _PATCHES:
            return _status(
                415,
                f"the body of the request was in an unknown format - accepted media types"
                f" include: {', '.join(_PATCHES)}",
            )
        if method == "PUT" and content_type != "application/json":
            return _status(415, f"unsupported media type {content_type!r}")
        if isinstance(body, str) or body is None:
            return _status(400, "error decoding patch: invalid character looking for value")
        current = _scale(deployment) if is_scale else copy.deepcopy(deployment)
        try:
            updated = body if method == "PUT" else _PATCHES[content_type](current, body)
        except PatchError as e:
            return _status(422, f"the server rejected our request due to an error: {e}")
        if not isinstance(updated, dict):
            return _status(400, "the body must be a JSON object")
        wanted = (updated.get("metadata") or {}).get("resourceVersion")
        version = deployment["metadata"]["resourceVersion"]
        if (method == "PUT" and wanted is None) or (wanted is not None and wanted != version):
            return _conflict(name)
        if cluster.write_delay:
            await asyncio.sleep(cluster.write_delay)
            if wanted is not None and wanted != deployment["metadata"]["resourceVersion"]:
                return _conflict(name)
        spec_before = copy.deepcopy(deployment["spec"])
        if is_scale:
            replicas = (updated.get("spec") or {}).get("replicas")
            if not isinstance(replicas, int) or replicas < 0:
                return _status(422, "spec.replicas: Invalid value: must be >= 0")
            cluster.writes.append((method, request.path, body))
            deployment["spec"]["replicas"] = deployment["status"]["replicas"] = replicas
            deployment["status"]["readyReplicas"] = replicas
        else:
            cluster.writes.append((method, request.path, body))
            for key in ("spec", "metadata"):
                if key in updated:
                    deployment[key] = updated[key] | (
                        {"resourceVersion": version} if key == "metadata" else {}
                    )
        cluster._bump(deployment)
        if deployment["spec"] != spec_before:
            deployment["metadata"]["generation"] += 1
        return web.json_response(_scale(deployment) if is_scale else copy.deepcopy(deployment))

    def forbidden(verb: str, resource: str, group: str, namespace: str, name: str) -> web.Response:
        what = f'{resource}.{group} "{name}"' if name else resource
        return _status(
            403,
            f'{what} is forbidden: User "{USER}" cannot {verb} resource "{resource}" in API'
            f' group "{group}" in the namespace "{namespace}"',
            name=name,
            group=group,
            kind=resource,
        )

    async def autoscalers(
        request: web.Request, match: re.Match[str], content_type: str, body: Any
    ) -> web.Response:
        namespace, name = match["ns"], match["name"] or ""
        resource, group = "horizontalpodautoscalers", "autoscaling"
        verb = {"GET": "get" if name else "list", "PATCH": "patch"}.get(request.method)
        if verb is None:
            return _status(405, f"{request.method} is not supported")
        if not cluster.allows(verb, resource, namespace, name, group):
            return forbidden(verb, resource, group, namespace, name)
        if not name:
            items = [
                copy.deepcopy(a) for (ns, _), a in cluster.autoscalers.items() if ns == namespace
            ]
            return web.json_response(
                {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscalerList",
                 "metadata": {"resourceVersion": str(cluster._version)}, "items": items}
            )  # fmt: skip
        autoscaler = cluster.autoscalers.get((namespace, name))
        if autoscaler is None:
            return _status(404, f'horizontalpodautoscalers.autoscaling "{name}" not found')
        if request.method == "GET":
            return web.json_response(copy.deepcopy(autoscaler))
        if content_type != MERGE_PATCH or not isinstance(body, dict):
            return _status(415, f"unsupported patch {content_type!r}")
        wanted = (body.get("metadata") or {}).get("resourceVersion")
        if wanted is not None and wanted != autoscaler["metadata"]["resourceVersion"]:
            return _conflict(name)
        updated = merge_patch(autoscaler, body)
        minimum = updated["spec"].get("minReplicas", 1)
        if not isinstance(minimum, int) or not 1 <= minimum <= updated["spec"]["maxReplicas"]:
            return _status(422, "spec.minReplicas: Invalid value: must be 1..maxReplicas")
        cluster.writes.append((request.method, request.path, body))
        cluster._version += 1
        updated["metadata"]["resourceVersion"] = str(cluster._version)
        cluster.autoscalers[(namespace, name)] = updated
        target = cluster.deployments.get((namespace, updated["spec"]["scaleTargetRef"]["name"]))
        if target is not None and target["spec"]["replicas"] < minimum:  # the HPA controller
            target["spec"]["replicas"] = target["status"]["replicas"] = minimum
            cluster._bump(target)
        return web.json_response(copy.deepcopy(updated))

    async def events(
        request: web.Request, match: re.Match[str], content_type: str, body: Any
    ) -> web.Response:
        namespace = match["ns"]
        if request.method != "POST":
            return _status(405, f"{request.method} is not supported")
        if not cluster.allows("create", "events", namespace, "", "events.k8s.io"):
            return forbidden("create", "events", "events.k8s.io", namespace, "")
        if not isinstance(body, dict) or not body.get("reason") or not body.get("regarding"):
            return _status(422, "Event is invalid: reason and regarding are required")
        meta = body.get("metadata") or {}
        # As the API server validates it: a name (or a generateName) that is itself a valid
        # subdomain; "carts-primary." is not.
        if not all(_SUBDOMAIN.match(meta[k]) for k in ("name", "generateName") if k in meta):
            return _status(422, f"Event is invalid: metadata.name: Invalid value: {meta}")
        event = copy.deepcopy(body)
        event["metadata"].setdefault(
            "name", f"{meta.get('generateName', 'event.')}{len(cluster.events)}"
        )
        cluster.events.append(event)
        return web.json_response(event, status=201)

    async def replica_sets(
        request: web.Request, match: re.Match[str], content_type: str, body: Any
    ) -> web.Response:
        namespace = match["ns"]
        if not cluster.allows("list", "replicasets", namespace, ""):
            return forbidden("list", "replicasets", "apps", namespace, "")
        wanted = dict(
            part.split("=", 1) for part in request.query.get("labelSelector", "").split(",") if part
        )
        items = [
            copy.deepcopy(rs)
            for rs in cluster.replica_sets
            if rs["metadata"]["namespace"] == namespace
            and wanted.items() <= (rs["metadata"].get("labels") or {}).items()
        ]
        return web.json_response(
            {"apiVersion": "apps/v1", "kind": "ReplicaSetList", "items": items}
        )

    async def state(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "deployments": {
                    f"{ns}/{name}": d["spec"]["replicas"]
                    for (ns, name), d in cluster.deployments.items()
                },
                "restarted_at": {
                    f"{ns}/{name}": (
                        d["spec"]["template"]["metadata"].get("annotations") or {}
                    ).get("kubectl.kubernetes.io/restartedAt")
                    for (ns, name), d in cluster.deployments.items()
                },
                "writes": [[method, path] for method, path, _ in cluster.writes],
            }
        )

    async def put_deployment(request: web.Request) -> web.Response:
        body = await request.json()
        cluster.add_deployment(body["namespace"], body["name"], replicas=body.get("replicas", 1))
        return web.json_response({"ok": True})

    async def put_roles(request: web.Request) -> web.Response:
        cluster.roles = await request.json()
        return web.json_response({"ok": True})

    async def reset(request: web.Request) -> web.Response:
        cluster.roles = generated_roles()
        cluster.deployments.clear()
        cluster.calls.clear()
        cluster.writes.clear()
        cluster.first_call.clear()
        cluster.autoscalers.clear()
        cluster.events.clear()
        cluster.replica_sets.clear()
        return web.json_response({"ok": True})

    # Control endpoints for tests and the demo, outside the Kubernetes API paths.
    app.router.add_get("/_standin/state", state)
    app.router.add_post("/_standin/deployments", put_deployment)
    app.router.add_post("/_standin/reset", reset)
    app.router.add_post("/_standin/roles", put_roles)
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
