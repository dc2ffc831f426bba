"""The embedded API's protobuf body decoder, on hand-built bytes."""

from __future__ import annotations

import contextlib
import json
import random

import pytest

from sandbox.kubeapi import protobuf
from sandbox.kubeapi.protobuf import wire
from sandbox.kubeapi.protobuf.envelope import unwrap, wrap
from sandbox.kubeapi.protobuf.table import MESSAGES

f = wire.encode_field


def msg(*fields: bytes) -> bytes:
    return b"".join(fields)


def meta(name: str, **extra: bytes) -> bytes:
    """An ObjectMeta as the Go client writes it: every non-pointer field, zero or not."""
    return msg(
        f(1, name), f(2, ""), f(3, ""), f(4, ""), f(5, ""), f(6, ""), f(7, 0), f(8, b""),
        *extra.values(),
    )  # fmt: skip


def entry(key: str, value: bytes | str) -> bytes:
    return f(1, key) + f(2, value)


def test_varints_and_signed_values() -> None:
    for v in (0, 1, 127, 128, 300, 2**31 - 1, 2**63):
        assert wire.read_varint(wire.encode_varint(v), 0) == (v, len(wire.encode_varint(v)))
    # a negative int32 goes on the wire sign-extended to 64 bits (10 bytes)
    neg = wire.encode_varint(-5)
    assert len(neg) == 10
    assert wire.signed(wire.read_varint(neg, 0)[0], 32) == -5
    with pytest.raises(wire.WireError, match="out of range for int32"):
        wire.signed(2**40, 32)


def test_fields_of_every_wire_type() -> None:
    buf = f(1, 150) + f(2, "hi") + bytes([3 << 3 | 1]) + b"\x01" * 8 + bytes([4 << 3 | 5]) + b"abcd"
    assert list(wire.fields(buf)) == [
        (1, 0, 150),
        (2, 2, b"hi"),
        (3, 1, b"\x01" * 8),
        (4, 5, b"abcd"),
    ]


def test_envelope_round_trip() -> None:
    env = unwrap(wrap("apps/v1", "Deployment", b"\x0a\x00"))
    assert (env.api_version, env.kind, env.raw) == ("apps/v1", "Deployment", b"\x0a\x00")
    assert env.content_encoding == env.content_type == ""


def test_namespace_as_kubectl_sends_it() -> None:
    body = wrap("v1", "Namespace", f(1, meta("foo")) + f(2, b"") + f(3, f(1, b"")))
    assert protobuf.decode(body) == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "foo", "creationTimestamp": None},
        "spec": {},
        "status": {},
    }


def test_deployment_pointers_maps_and_pod_template() -> None:
    labels = f(11, entry("app", "web"))
    container = msg(
        f(1, "c"),
        f(2, "busybox"),
        *(f(3, a) for a in ("httpd", "-f")),
        f(5, ""),
        f(6, f(3, 80) + f(4, "TCP")),
        f(7, f(1, "K") + f(2, "V")),
        f(8, f(1, entry("cpu", f(1, "100m"))) + f(2, entry("memory", f(1, "64Mi")))),
        f(14, "IfNotPresent"),
        f(16, 0),
    )
    pod_spec = msg(f(2, container), f(3, "Always"), f(11, 0), f(25, 0))
    spec = msg(
        f(1, 0),  # replicas: a pointer, so an explicit 0 is kept
        f(2, f(1, entry("app", "web"))),
        f(3, f(1, meta("", labels=labels)) + f(2, pod_spec)),
        f(4, f(1, "RollingUpdate") + f(2, f(1, f(1, 1) + f(3, "25%")) + f(2, f(2, 1)))),
        f(5, 0),
    )
    obj = protobuf.decode(wrap("apps/v1", "Deployment", f(1, meta("web")) + f(2, spec)))
    s = obj["spec"]
    assert s["replicas"] == 0 and "minReadySeconds" not in s
    assert s["selector"] == {"matchLabels": {"app": "web"}}
    assert s["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": 1},
    }
    assert s["template"]["metadata"] == {"creationTimestamp": None, "labels": {"app": "web"}}
    ps = s["template"]["spec"]
    assert ps["restartPolicy"] == "Always" and "hostNetwork" not in ps
    assert ps["priority"] == 0  # *int32 set to 0
    (c,) = ps["containers"]
    assert c == {
        "name": "c",
        "image": "busybox",
        "command": ["httpd", "-f"],
        "ports": [{"containerPort": 80, "protocol": "TCP"}],
        "env": [{"name": "K", "value": "V"}],
        "resources": {"limits": {"cpu": "100m"}, "requests": {"memory": "64Mi"}},
        "imagePullPolicy": "IfNotPresent",
    }
    assert obj["status"] == {}  # absent struct values are written empty, as Go does


def test_secret_bytes_become_base64_and_times_rfc3339() -> None:
    ts = f(1, 1700000000)
    body = wrap(
        "v1", "Secret", f(1, meta("s", ts=f(9, ts))) + f(2, entry("a", b"\x00b")) + f(3, "Opaque")
    )
    obj = protobuf.decode(body)
    assert obj["data"] == {"a": "AGI="}
    assert obj["type"] == "Opaque"
    assert obj["metadata"]["deletionTimestamp"] == "2023-11-14T22:13:20Z"


def test_service_int_or_string_and_repeated_empty_strings() -> None:
    port = msg(f(1, "http"), f(2, "TCP"), f(3, 80), f(4, f(1, 0) + f(2, 8080) + f(3, "")), f(5, 0))
    svc = protobuf.decode(
        wrap("v1", "Service", f(1, meta("s")) + f(2, f(1, port) + f(4, "NodePort")))
    )
    assert svc["spec"]["ports"] == [
        {"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080}
    ]
    role = protobuf.decode(
        wrap("rbac.authorization.k8s.io/v1", "Role", f(1, meta("r")) + f(2, f(1, "get") + f(2, "")))
    )
    assert role["rules"] == [{"verbs": ["get"], "apiGroups": [""]}]


def test_packed_repeated_numbers() -> None:
    groups = wire.encode_varint(1) + wire.encode_varint(2000)
    psc = f(4, groups)  # supplementalGroups, packed
    pod = protobuf.decode(wrap("v1", "Pod", f(1, meta("p")) + f(2, f(14, psc))))
    assert pod["spec"]["securityContext"] == {"supplementalGroups": [1, 2000]}
    assert pod["spec"]["containers"] is None  # a nil []Container without omitempty


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{}", "does not start with the protobuf envelope's magic"),
        (b"k8s\x00\x12\x05ab", "length 5 runs past the end"),
        (b"k8s\x00\x08", "truncated varint"),
        (wrap("v1", "ConfigMap", f(1, f(1, 7))), "metadata.name: wire type varint"),
        (wrap("v1", "ConfigMap", f(1, f(1, b"\xff"))), "metadata.name: string is not valid UTF-8"),
        (b"k8s\x00" + bytes([1 << 3 | 3]), "unsupported wire type 3"),
    ],
)
def test_malformed_bodies_are_wire_errors(body: bytes, message: str) -> None:
    with pytest.raises(wire.WireError, match=message):
        protobuf.decode(body)


def test_unknown_kind_and_unknown_field_are_named() -> None:
    with pytest.raises(protobuf.Unsupported, match="v1 Node cannot be decoded"):
        protobuf.decode(wrap("v1", "Node", b""))
    spec = f(99, 1)
    with pytest.raises(
        protobuf.Unsupported, match=r"apps/v1 Deployment: field 99 of DeploymentSpec \(at spec\)"
    ):
        protobuf.decode(wrap("apps/v1", "Deployment", f(2, spec)))
    nested = f(6, f(2, f(2, f(1, "c") + f(90, "x"))))
    with pytest.raises(
        protobuf.Unsupported,
        match=r"field 90 of Container \(at spec.template.spec.containers\[0\]\)",
    ):
        protobuf.decode(wrap("batch/v1", "Job", f(2, nested)))


def test_eviction_delete_options() -> None:
    opts = f(1, 0) + f(2, f(1, "u-1")) + f(4, "Foreground")
    ev = protobuf.decode(wrap("policy/v1", "Eviction", f(1, meta("p", ns=f(3, "d"))) + f(2, opts)))
    assert ev["metadata"] == {"name": "p", "namespace": "d", "creationTimestamp": None}
    assert ev["deleteOptions"] == {
        "gracePeriodSeconds": 0,
        "preconditions": {"uid": "u-1"},
        "propagationPolicy": "Foreground",
    }


def test_tables_are_consistent() -> None:
    for name in protobuf.OBJECTS.values():
        assert name in MESSAGES
        assert MESSAGES[name].fields[1].name == "metadata"


def test_unknown_envelope_field() -> None:
    with pytest.raises(protobuf.Unsupported, match=r"field 6 of runtime\.Unknown"):
        protobuf.decode(wrap("v1", "ConfigMap", b"") + f(6, "x"))


def test_mutated_bodies_raise_only_the_two_documented_errors() -> None:
    rng = random.Random(7)
    spec = f(2, f(1, f(1, "p") + f(3, 80) + f(4, f(1, 1) + f(3, "http"))) + f(2, entry("a", "b")))
    good = wrap("v1", "Service", f(1, meta("s", labels=f(11, entry("k", "v")))) + spec)
    for _ in range(3000):
        b = bytearray(good)
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(protobuf.envelope.MAGIC), len(b))
            b[i] = rng.randrange(256)
        with contextlib.suppress(protobuf.WireError, protobuf.Unsupported):
            json.dumps(protobuf.decode(bytes(b)))
