"""kubectl's generator subcommands, which send protobuf bodies, against the embedded server.

`kubectl create namespace|deployment|service|...` and `kubectl run` build a
typed object and POST it as application/vnd.kubernetes.protobuf. Each case
creates one, reads it back with `kubectl get -o json` and checks it holds
everything kubectl's own JSON rendering of the same object (`--dry-run=client
-o json`) holds, plus the fields the case is about.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sandbox.kubeapi.protobuf import wire
from sandbox.kubeapi.protobuf.envelope import wrap

from .test_kubectl import Pair, kubectl, pytestmark  # noqa: F401  (skips without kubectl)

Obj = dict[str, Any]
Check = Callable[[Obj], None]


def contains(actual: Any, expected: Any, path: str = "") -> None:
    """Every value in expected is in actual (nulls in expected are not checked)."""
    if expected is None:
        return
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{path}: {actual!r} is not an object"
        for k, v in expected.items():
            if v is not None:
                assert k in actual, f"{path}.{k} missing from {actual!r}"
                contains(actual[k], v, f"{path}.{k}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), f"{path}: {actual!r}"
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            contains(a, e, f"{path}[{i}]")
    else:
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"


def _deployment(o: Obj) -> None:
    assert o["spec"]["replicas"] == 3
    (c,) = o["spec"]["template"]["spec"]["containers"]
    assert c["image"] == "busybox" and c["command"] == ["httpd", "-f", "-p", "80", "-h", "/tmp"]
    assert o["spec"]["selector"] == {"matchLabels": {"app": "web"}}


def _clusterip(o: Obj) -> None:
    assert o["spec"]["type"] == "ClusterIP" and o["spec"]["clusterIP"]
    (p,) = o["spec"]["ports"]
    assert (p["port"], p["targetPort"], p["protocol"]) == (80, 8080, "TCP")


def _nodeport(o: Obj) -> None:
    (p,) = o["spec"]["ports"]
    assert o["spec"]["type"] == "NodePort" and p["nodePort"] == 30080 and p["targetPort"] == 8080


def _secret(o: Obj) -> None:
    assert base64.b64decode(o["data"]["a"]) == b"b" and o["type"] == "Opaque"


def _job(o: Obj) -> None:
    ps = o["spec"]["template"]["spec"]
    assert ps["restartPolicy"] == "Never" and ps["containers"][0]["command"] == ["true"]


def _role(o: Obj) -> None:
    assert o["rules"] == [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]


def _binding(kind: str, role: str) -> Check:
    def check(o: Obj) -> None:
        assert o["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role}
        assert o["subjects"] == [
            {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "u1"}
        ]

    return check


def _quota(o: Obj) -> None:
    assert o["spec"]["hard"] == {"pods": "10", "cpu": "1"}


def _pdb(o: Obj) -> None:
    assert o["spec"]["minAvailable"] == 1
    assert o["spec"]["selector"] == {"matchLabels": {"app": "web"}}


def _ingress(o: Obj) -> None:
    (rule,) = o["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    assert rule["host"] == "foo.com" and path["path"] == "/bar"
    assert path["backend"] == {"service": {"name": "svc1", "port": {"number": 80}}}


def _no_check(o: Obj) -> None:
    pass


# (kubectl create arguments, what to get, the checks beyond kubectl's own JSON)
CASES: list[tuple[list[str], list[str], Check]] = [
    (["namespace", "foo"], ["namespace", "foo"], lambda o: None),
    (
        [
            *("deployment", "web", "--image=busybox", "--replicas=3"),
            *("--", "httpd", "-f", "-p", "80", "-h", "/tmp"),
        ],
        ["deployment", "web"],
        _deployment,
    ),
    (["service", "clusterip", "svc1", "--tcp=80:8080"], ["service", "svc1"], _clusterip),
    (
        ["service", "nodeport", "np1", "--tcp=80:8080", "--node-port=30080"],
        ["service", "np1"],
        _nodeport,
    ),
    (
        ["configmap", "cm1", "--from-literal=a=b"],
        ["configmap", "cm1"],
        lambda o: None if o["data"] == {"a": "b"} else pytest.fail(str(o)),
    ),
    (["secret", "generic", "s1", "--from-literal=a=b"], ["secret", "s1"], _secret),
    (["job", "j1", "--image=busybox", "--", "true"], ["job", "j1"], _job),
    (["serviceaccount", "sa1"], ["serviceaccount", "sa1"], _no_check),
    (["role", "r1", "--verb=get", "--resource=pods"], ["role", "r1"], _role),
    (
        ["rolebinding", "rb1", "--role=r1", "--user=u1"],
        ["rolebinding", "rb1"],
        _binding("Role", "r1"),
    ),
    (["clusterrole", "cr1", "--verb=get", "--resource=pods"], ["clusterrole", "cr1"], _role),
    (
        ["clusterrolebinding", "crb1", "--clusterrole=cr1", "--user=u1"],
        ["clusterrolebinding", "crb1"],
        _binding("ClusterRole", "cr1"),
    ),
    (
        ["priorityclass", "pc1", "--value=1000", "--description=high"],
        ["priorityclass", "pc1"],
        lambda o: None if (o["value"], o["description"]) == (1000, "high") else pytest.fail(str(o)),
    ),
    (
        ["poddisruptionbudget", "pdb1", "--selector=app=web", "--min-available=1"],
        ["pdb", "pdb1"],
        _pdb,
    ),
    (["quota", "q1", "--hard=pods=10,cpu=1"], ["quota", "q1"], _quota),
    (
        ["cronjob", "cj1", "--image=busybox", "--schedule=*/5 * * * *", "--", "date"],
        ["cronjob", "cj1"],
        lambda o: None if o["spec"]["schedule"] == "*/5 * * * *" else pytest.fail(str(o)),
    ),
    (["ingress", "ing1", "--rule=foo.com/bar=svc1:80"], ["ingress", "ing1"], _ingress),
]


def _dry_run(args: list[str]) -> list[str]:
    """The same create with --dry-run=client -o json (before a `--` command)."""
    flags = ["--dry-run=client", "-o", "json"]
    if "--" in args:
        i = args.index("--")
        return args[:i] + flags + args[i:]
    return args + flags


@pytest.mark.parametrize(("args", "get", "check"), CASES, ids=lambda v: None)
async def test_kubectl_create_generator(
    kapi: Pair, tmp_path: Path, args: list[str], get: list[str], check: Check
) -> None:
    srv, _ = kapi
    rc, out, err = await kubectl(srv, tmp_path, "create", *_dry_run(args))
    assert rc == 0, err
    expected = json.loads(out)
    rc, out, err = await kubectl(srv, tmp_path, "-v=8", "create", *args)
    assert rc == 0, err
    assert "Content-Type: application/vnd.kubernetes.protobuf" in err  # the body kubectl sent
    rc, out, err = await kubectl(srv, tmp_path, "get", *get, "-o", "json")
    assert rc == 0, err
    stored = json.loads(out)
    contains(stored, expected)
    assert stored["metadata"]["uid"] and stored["metadata"]["creationTimestamp"]
    check(stored)


async def test_kubectl_run_and_expose(kapi: Pair, tmp_path: Path) -> None:
    srv, _ = kapi
    rc, out, err = await kubectl(
        srv, tmp_path, "run", "p1", "--image=busybox", "--restart=Never", "--labels=app=p1",
        "--env=K=V", "--port=8080", "--", "sleep", "10",
    )  # fmt: skip
    assert rc == 0, err
    rc, out, err = await kubectl(
        srv, tmp_path, "expose", "pod", "p1", "--port=80", "--target-port=8080"
    )
    assert rc == 0, err
    rc, out, err = await kubectl(srv, tmp_path, "get", "pod/p1", "service/p1", "-o", "json")
    assert rc == 0, err
    pod, svc = json.loads(out)["items"]
    (c,) = pod["spec"]["containers"]
    assert c["args"] == ["sleep", "10"] and c["env"] == [{"name": "K", "value": "V"}]
    assert c["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]
    assert pod["spec"]["restartPolicy"] == "Never"
    assert svc["spec"]["selector"] == {"app": "p1"}
    assert svc["spec"]["ports"][0]["targetPort"] == 8080


LIST = """
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: listed}
  data: {k: v}
- apiVersion: v1
  kind: Service
  metadata: {name: listed}
  spec:
    selector: {app: listed}
    ports: [{port: 80, targetPort: 8080}]
"""


async def test_kubectl_apply_list(kapi: Pair, tmp_path: Path) -> None:
    srv, _ = kapi
    rc, out, err = await kubectl(srv, tmp_path, "apply", "-f", "-", stdin=LIST)
    assert rc == 0, err
    assert "configmap/listed created" in out and "service/listed created" in out
    rc, out, err = await kubectl(srv, tmp_path, "apply", "-f", "-", stdin=LIST)
    assert rc == 0 and "configmap/listed unchanged" in out, err
    rc, out, err = await kubectl(
        srv, tmp_path, "apply", "-f", "-", stdin=LIST.replace("{k: v}", "{k: w}")
    )
    assert rc == 0 and "configmap/listed configured" in out, err
    rc, out, err = await kubectl(
        srv, tmp_path, "get", "configmap/listed", "service/listed", "-o", "json"
    )
    cm, svc = json.loads(out)["items"]
    assert cm["data"] == {"k": "w"} and svc["spec"]["ports"][0]["targetPort"] == 8080
    # kubectl still checks each item names its kind, as against a real server
    bad = LIST.replace("  kind: ConfigMap\n", "")
    rc, out, err = await kubectl(srv, tmp_path, "apply", "-f", "-", stdin=bad)
    assert rc != 0 and "kind not set" in err, (out, err)


async def _post(srv_url: str, path: str, body: bytes) -> tuple[int, Obj]:
    headers = {"Content-Type": "application/vnd.kubernetes.protobuf", "Accept": "application/json"}
    async with (
        aiohttp.ClientSession() as s,
        s.post(srv_url + path, data=body, headers=headers) as r,
    ):
        return r.status, await r.json()


async def test_protobuf_bodies_that_cannot_be_read(kapi: Pair) -> None:
    srv, _ = kapi
    f = wire.encode_field
    code, status = await _post(
        srv.url, "/api/v1/namespaces/default/configmaps", b"k8s\x00\x12\x09x"
    )
    assert code == 400 and status["reason"] == "BadRequest", status
    assert "error decoding protobuf request body" in status["message"]
    assert "runs past the end" in status["message"]

    code, status = await _post(
        srv.url, "/api/v1/namespaces/default/configmaps", wrap("v1", "ConfigMap", f(9, "x"))
    )
    assert code == 415 and status["reason"] == "UnsupportedMediaType", status
    assert "v1 ConfigMap: field 9 of ConfigMap" in status["message"]

    code, status = await _post(
        srv.url, "/api/v1/namespaces/default/configmaps", wrap("v1", "Node", b"")
    )
    assert code == 415 and "v1 Node cannot be decoded" in status["message"], status

    # a body of another kind than the URL's is refused as with JSON
    body = wrap("v1", "Secret", f(1, f(1, "s")))
    code, status = await _post(srv.url, "/api/v1/namespaces/default/configmaps", body)
    assert code == 400 and "does not match the expected kind" in status["message"], status

    ok = wrap("v1", "ConfigMap", f(1, f(1, "made")) + f(2, f(1, "k") + f(2, "v")))
    code, obj = await _post(srv.url, "/api/v1/namespaces/default/configmaps", ok)
    assert code == 201 and obj["data"] == {"k": "v"}, obj


POD = """
apiVersion: v1
kind: Pod
metadata: {name: evicted}
spec:
  nodeName: node-a
  containers: [{name: c, image: busybox}]
"""


async def test_protobuf_eviction(kapi: Pair, tmp_path: Path) -> None:
    """A typed client-go client posts pods/eviction as protobuf (kubectl drain uses JSON)."""
    srv, _ = kapi
    rc, out, err = await kubectl(srv, tmp_path, "apply", "-f", "-", stdin=POD)
    assert rc == 0, err
    f = wire.encode_field
    meta = f(1, "evicted") + f(3, "default")
    body = wrap("policy/v1", "Eviction", f(1, meta) + f(2, f(1, 0)))
    code, status = await _post(srv.url, "/api/v1/namespaces/default/pods/evicted/eviction", body)
    assert code == 201, status
    rc, out, err = await kubectl(srv, tmp_path, "get", "pods", "-o", "name")
    assert rc == 0 and out.strip() == "", (out, err)


async def test_kubectl_create_configmap_with_binary_data(kapi: Pair, tmp_path: Path) -> None:
    srv, _ = kapi
    blob = tmp_path / "blob.bin"
    blob.write_bytes(b"\xff\xfe\x00\x01")
    rc, out, err = await kubectl(srv, tmp_path, "create", "configmap", "bin", f"--from-file={blob}")
    assert rc == 0, err
    rc, out, err = await kubectl(srv, tmp_path, "get", "configmap", "bin", "-o", "json")
    assert rc == 0, err
    cm = json.loads(out)
    assert "data" not in cm
    assert base64.b64decode(cm["binaryData"]["blob.bin"]) == b"\xff\xfe\x00\x01"
