"""A real Kubernetes control plane on loopback, as controller-runtime's envtest runs one: etcd,
kube-apiserver and kube-controller-manager, built by scripts/kube-binaries from the Go
modules of one release (tests/kube/*/go.mod). No kubelet or scheduler: Deployments get real
ReplicaSets and revisions from the deployment controller, HorizontalPodAutoscalers are
reconciled by the HPA controller (which enforces minReplicas and maxReplicas without
metrics), and pods stay Pending.

What the receiver meets in a real pod is here: TLS with a CA of the fixture's own, the RBAC
authorizer, ServiceAccount tokens issued by the TokenRequest API and bound to an object
(delete the object and the token stops being valid, as a rotated token does), field
validation, admission, resourceVersion conflicts and the real Status bodies.

Each binary's log is kept in the fixture's directory (and named when a test fails to start
one). Certificates are made with openssl: a CA, the API server's serving certificate for
127.0.0.1, an admin client certificate (system:masters) and the service account signing key.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests import processes

ROOT = Path(__file__).resolve().parent.parent
ISSUER = "https://kubernetes.default.svc.cluster.local"
RECEIVER = "selfheal-receiver"  # the ServiceAccount the rendered RoleBinding names


def binaries() -> Path:
    """The folder of the built binaries: SELFHEAL_KUBE_BINARIES (scripts/test sets it), else
    whatever scripts/kube-binaries prints (it builds them first if they are not cached)."""
    given = os.environ.get("SELFHEAL_KUBE_BINARIES")
    if given:
        return Path(given)
    built = subprocess.run(
        [str(ROOT / "scripts" / "kube-binaries")], capture_output=True, text=True, check=False
    )
    if built.returncode != 0:
        raise RuntimeError(f"scripts/kube-binaries failed:\n{built.stderr[-3000:]}")
    return Path(built.stdout.strip().splitlines()[-1])


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_certificates(directory: Path) -> None:
    """ca, apiserver (serving 127.0.0.1), admin (client, system:masters), sa (signing)."""
    directory.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
             "ca.crt", "-days", "2", "-subj", "/CN=selfheal-test-ca", cwd=directory)  # fmt: skip
    for name, subject, extensions in (
        (
            "apiserver",
            "/CN=kube-apiserver",
            "subjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.0.0.1,DNS:kubernetes.default.svc"
            "\nextendedKeyUsage=serverAuth",
        ),
        ("admin", "/O=system:masters/CN=admin", "extendedKeyUsage=clientAuth"),
    ):
        (directory / f"{name}.ext").write_text(extensions + "\n")
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
                 f"{name}.csr", "-subj", subject, cwd=directory)  # fmt: skip
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile",
                 f"{name}.ext", cwd=directory)  # fmt: skip
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=directory)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=directory)


def kubeconfig(path: Path, *, server: str, ca: Path, **user: str) -> Path:
    """A kubeconfig for `server`: a client certificate (client-certificate, client-key) or a
    token."""
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "test", "cluster": {"server": server, "certificate-authority": str(ca)}}
        ],
        "users": [{"name": "test", "user": user}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
        "current-context": "test",
    }
    path.write_text(json.dumps(document))
    return path


@dataclasses.dataclass
class ControlPlane:
    home: Path
    bin: Path
    port: int = dataclasses.field(default_factory=processes.free_port)
    processes: dict[str, subprocess.Popen[bytes]] = dataclasses.field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca(self) -> Path:
        return self.home / "pki" / "ca.crt"

    @property
    def admin(self) -> Path:
        """The admin kubeconfig (system:masters)."""
        return self.home / "admin.kubeconfig"

    def log(self, name: str) -> Path:
        return self.home / f"{name}.log"

    # -- life cycle --------------------------------------------------------------------------

    def start(self) -> None:
        pki = self.home / "pki"
        make_certificates(pki)
        kubeconfig(
            self.admin,
            server=self.url,
            ca=self.ca,
            **{"client-certificate": str(pki / "admin.crt"), "client-key": str(pki / "admin.key")},
        )
        client, peer = processes.free_port(), processes.free_port()
        self._spawn("etcd", [
            "--name=test", f"--data-dir={self.home / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{client}",
            f"--advertise-client-urls=http://127.0.0.1:{client}",
            f"--listen-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-cluster=test=http://127.0.0.1:{peer}",
            "--unsafe-no-fsync",  # a test's data: nothing to keep across a power loss
            "--log-level=warn",
        ])  # fmt: skip
        self._spawn("kube-apiserver", [
            f"--etcd-servers=http://127.0.0.1:{client}",
            "--advertise-address=127.0.0.1", "--bind-address=127.0.0.1",
            f"--secure-port={self.port}",
            f"--cert-dir={pki}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={self.ca}",
            "--authorization-mode=RBAC",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--allow-privileged=true",
            f"--service-account-issuer={ISSUER}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
        ])  # fmt: skip
        self._wait_ready()
        self._spawn("kube-controller-manager", [
            f"--kubeconfig={self.admin}",
            "--controllers=deployment-controller,replicaset-controller,"
            "horizontal-pod-autoscaler-controller,serviceaccount-controller,"
            "garbage-collector-controller,namespace-controller",
            "--leader-elect=false",
            "--secure-port=0",
            "--horizontal-pod-autoscaler-sync-period=1s",
            "--horizontal-pod-autoscaler-downscale-stabilization=0s",
        ])  # fmt: skip

    def _spawn(self, name: str, args: list[str]) -> None:
        with self.log(name).open("ab") as output:
            self.processes[name] = subprocess.Popen(
                [str(self.bin / name), *args], stdout=output, stderr=subprocess.STDOUT
            )

    def _wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(
                        f"{name} exited with {process.returncode}: see {self.log(name)}"
                    )
            if self.kubectl("get", "--raw=/readyz", check=False).returncode == 0:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"kube-apiserver not ready in {timeout} s: see {self.log('kube-apiserver')}"
                )
            time.sleep(0.2)

    def stop(self) -> None:
        for process in reversed(list(self.processes.values())):
            process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    # -- using it ----------------------------------------------------------------------------

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        kubeconfig: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(self.bin / "kubectl"), f"--kubeconfig={kubeconfig or self.admin}", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {done.stderr or done.stdout}")
        return done

    def apply(self, *documents: dict[str, Any]) -> None:
        self.kubectl("apply", "-f", "-", input="\n---\n".join(json.dumps(d) for d in documents))

    def get(self, kind: str, name: str, namespace: str) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(
            self.kubectl("get", kind, name, "-n", namespace, "-o", "json").stdout
        )
        return found

    def token(
        self, namespace: str, account: str, *, bound_to: str | None = None, seconds: int = 3600
    ) -> str:
        """A ServiceAccount token from the TokenRequest API, as the kubelet gets one for a
        pod; `bound_to`: a Secret the token is bound to (deleting it revokes the token)."""
        args = ["create", "token", account, "-n", namespace, f"--duration={seconds}s"]
        if bound_to is not None:
            args += ["--bound-object-kind=Secret", f"--bound-object-name={bound_to}"]
        return self.kubectl(*args).stdout.strip()

    def service_account_files(self, directory: Path, namespace: str, token: str) -> Path:
        """What the kubelet mounts at /var/run/secrets/kubernetes.io/serviceaccount: token,
        ca.crt and namespace; written as the kubelet writes a projected volume (the files
        behind a `..data` symlink swapped at once), so a rotation is one rename."""
        directory.mkdir(parents=True, exist_ok=True)
        stamp = f"..{time.monotonic_ns()}"
        (directory / stamp).mkdir()
        (directory / stamp / "token").write_text(token)
        (directory / stamp / "ca.crt").write_bytes(self.ca.read_bytes())
        (directory / stamp / "namespace").write_text(namespace)
        temporary = directory / "..data_tmp"
        temporary.unlink(missing_ok=True)
        temporary.symlink_to(stamp)
        temporary.rename(directory / "..data")
        for name in ("token", "ca.crt", "namespace"):
            link = directory / name
            if not link.is_symlink():
                link.symlink_to(f"..data/{name}")
        return directory

    def install_receiver(self, config_dir: Path, directory: Path) -> tuple[dict[str, str], str]:
        """The receiver as users install it, for `config_dir`: its namespace and
        ServiceAccount, the RBAC `receiver manifests` renders (applied with kubectl), and a
        token of that ServiceAccount bound to a Secret, in the service account files at
        `directory`. The environment of its pod, and the Secret's name (deleting it revokes
        the token)."""
        from receiver import manifests

        self.apply(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "selfheal"}},
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": RECEIVER, "namespace": "selfheal"},
            },
        )
        rbac = manifests.render(config_dir, namespace="selfheal")["base/generated/rbac.yaml"]
        self.kubectl("apply", "-f", "-", input=rbac)  # what users apply, nothing more
        secret = f"token-{secrets.token_hex(4)}"
        self.kubectl("create", "secret", "generic", secret, "-n", "selfheal")
        token = self.token("selfheal", RECEIVER, bound_to=secret)
        return self.in_pod_env(self.service_account_files(directory, "selfheal", token)), secret

    def in_pod_env(self, directory: Path) -> dict[str, str]:
        """The environment a pod's containers get for this cluster, with the service account
        files at `directory` instead of /var/run/secrets/kubernetes.io/serviceaccount."""
        return {
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": str(self.port),
            "RECEIVER_KUBERNETES_SERVICE_ACCOUNT_DIR": str(directory),
        }

    def events(self, namespace: str, deployment: str) -> list[dict[str, Any]]:
        listed = self.kubectl(
            "get", "events.events.k8s.io", "-n", namespace, "-o", "json",
            f"--field-selector=regarding.name={deployment}",
        )  # fmt: skip
        items: list[dict[str, Any]] = json.loads(listed.stdout)["items"]
        return items


def deployment(
    namespace: str, name: str, *, replicas: int = 1, image: str = "carts:1"
) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
        },
    }


@contextlib.contextmanager
def running(home: Path) -> Iterator[ControlPlane]:
    plane = ControlPlane(home=home, bin=binaries())
    try:
        plane.start()
        yield plane
    finally:
        plane.stop()
