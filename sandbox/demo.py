"""`kovn sandbox up --demo`: a small workload that shows kovn doing its job.

Two namespaces, a second Subnet bound to one of them, pods spread over the
nodes (one with a fixed IP and MAC), a web Deployment of three `httpd`
processes behind a Service, then tables of what kovn made of it and two
matrices measured with real packets: one ping from every pod's network
namespace (and every node's kovn0) to every pod, and one HTTP request from
every pod to the web Service by name (cluster DNS, then its ClusterIP
through an OVN load balancer). Applying the demo is idempotent (`kubectl
apply`), so running it against a sandbox that is already up just prints
the tables again.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox import cluster, components, netns
from sandbox.layout import Layout

NAMESPACES = ("demo-a", "demo-b")
SUBNET = "demo-b"
SUBNET_CIDR = "10.17.0.0/24"
FIXED_IP = "10.16.0.200"
FIXED_MAC = "0a:58:0a:10:00:c8"
READY_TIMEOUT = 60
#: The web Deployment and its Service (in demo-a), reached by name from every pod.
WEB = "web"
WEB_REPLICAS = 3
WEB_URL = f"http://{WEB}.demo-a.svc.cluster.local/"


@dataclass
class DemoPod:
    namespace: str
    name: str
    node_index: int  # 1-based, wrapped onto the sandbox's nodes
    annotations: dict[str, str]


def demo_pods() -> list[DemoPod]:
    fixed = {"kovn.io/ip_address": FIXED_IP, "kovn.io/mac_address": FIXED_MAC}
    return [
        DemoPod("demo-a", "web-1", 1, {}),
        DemoPod("demo-a", "web-2", 2, {}),
        DemoPod("demo-a", "fixed", 2, fixed),
        DemoPod("demo-b", "db-1", 1, {}),
        DemoPod("demo-b", "db-2", 2, {}),
    ]


def manifest(lay: Layout) -> list[dict[str, Any]]:
    objs: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}} for ns in NAMESPACES
    ]
    objs.append(
        {
            "apiVersion": "kovn.io/v1",
            "kind": "Subnet",
            "metadata": {"name": SUBNET},
            "spec": {"cidrBlock": SUBNET_CIDR, "namespaces": ["demo-b"]},
        }
    )
    for p in demo_pods():
        node = lay.nodes[(p.node_index - 1) % len(lay.nodes)].name
        objs.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": p.name,
                    "namespace": p.namespace,
                    "labels": {"app": "kovn-demo"},
                    "annotations": p.annotations,
                },
                "spec": {
                    "nodeName": node,
                    "containers": [{"name": "main", "image": "busybox"}],
                },
            }
        )
    objs.extend(web_objects(lay))
    return objs


def web_root(lay: Layout) -> Path:
    """The directory the web pods serve: containers run on the host's files."""
    root = lay.dir / "demo-www"
    root.mkdir(parents=True, exist_ok=True)
    (root / "index.html").write_text("kovn demo: served by a web pod\n")
    return root


def web_objects(lay: Layout) -> list[dict[str, Any]]:
    labels = {"app": WEB}
    container = {
        "name": "httpd",
        "image": "busybox",
        "command": ["busybox", "httpd", "-f", "-p", "80", "-h", str(web_root(lay))],
        "ports": [{"name": "http", "containerPort": 80}],
        "readinessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 2},
    }
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": WEB, "namespace": "demo-a", "labels": labels},
            "spec": {
                "replicas": WEB_REPLICAS,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": WEB, "namespace": "demo-a"},
            "spec": {
                "selector": labels,
                "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
            },
        },
    ]


def kubectl(lay: Layout, *args: str, input: str | None = None) -> str:
    res = subprocess.run(
        ["kubectl", f"--kubeconfig={lay.kubeconfig}", *args],
        capture_output=True,
        text=True,
        input=input,
        timeout=READY_TIMEOUT + 30,
    )
    if res.returncode != 0:
        raise cluster.SandboxError(f"kubectl {' '.join(args)}: {res.stderr.strip()}")
    return res.stdout


def apply(lay: Layout) -> None:
    """Create (or leave as is) the demo objects and wait until every demo pod is Ready."""
    objs = manifest(lay)
    doc = {"apiVersion": "v1", "kind": "List", "items": objs}
    kubectl(lay, "apply", "--validate=false", "-f", "-", input=json.dumps(doc))
    for ns in NAMESPACES:
        kubectl(
            lay, "wait", "-n", ns, "--for=condition=Ready", "pod", "-l", "app=kovn-demo",
            f"--timeout={READY_TIMEOUT}s",
        )  # fmt: skip
    kubectl(lay, "rollout", "status", "-n", "demo-a", f"deployment/{WEB}",
            f"--timeout={READY_TIMEOUT}s")  # fmt: skip


# -- what kovn made of it ------------------------------------------------------------


@dataclass
class PodView:
    namespace: str
    name: str
    node: str
    ip: str
    mac: str
    subnet: str
    netns: str

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"


def pods(lay: Layout) -> list[PodView]:
    listing = json.loads(kubectl(lay, "get", "pods", "-A", "-l", "app=kovn-demo", "-o", "json"))
    records = {
        (r.get("namespace"), r.get("name")): str(r.get("netns") or "")
        for r in cluster.pod_records(lay)
    }
    out = []
    for p in listing["items"]:
        md, ann = p["metadata"], p["metadata"].get("annotations") or {}
        out.append(
            PodView(
                namespace=md["namespace"],
                name=md["name"],
                node=p["spec"].get("nodeName", ""),
                ip=p.get("status", {}).get("podIP", ""),
                mac=ann.get("kovn.io/mac_address", ""),
                subnet=ann.get("kovn.io/logical_switch", ""),
                netns=records.get((md["namespace"], md["name"]), ""),
            )
        )
    out.sort(key=lambda v: (v.namespace, v.name))
    return out


def _ping(ns: str, ip: str) -> bool:
    if not ns or not ip:
        return False
    res = netns.run(ns, ["ping", "-c", "1", "-W", "1", "-q", ip], check=False, timeout=10)
    return res.returncode == 0


def reachability(lay: Layout, views: Sequence[PodView]) -> dict[tuple[str, str], bool]:
    """(source, destination pod) -> one ping answered; sources are pods and nodes' kovn0."""
    sources = [(v.ref, v.netns) for v in views]
    sources += [(f"node {n.name}", n.netns) for n in lay.nodes]
    jobs = [(s, ns, d) for s, ns in sources for d in views if s != d.ref]
    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(lambda j: _ping(j[1], j[2].ip), jobs))
    return {(s, d.ref): ok for (s, _, d), ok in zip(jobs, answers, strict=True)}


def _http(lay: Layout, v: PodView) -> str:
    """One GET of the web Service by name from inside the pod (its own
    resolv.conf and network): the answering pod's name, or why not."""
    res = subprocess.run(
        ["kubectl", f"--kubeconfig={lay.kubeconfig}", "exec", "-n", v.namespace, v.name, "--",
         "busybox", "wget", "-qO-", WEB_URL],
        capture_output=True, text=True, timeout=20,
    )  # fmt: skip
    return "ok" if res.returncode == 0 and "kovn demo" in res.stdout else "FAIL"


def workloads(lay: Layout) -> list[tuple[str, ...]]:
    deploy = json.loads(kubectl(lay, "get", "deployment", "-n", "demo-a", WEB, "-o", "json"))
    status = deploy.get("status") or {}
    slices = json.loads(
        kubectl(lay, "get", "endpointslices", "-n", "demo-a",
                "-l", f"kubernetes.io/service-name={WEB}", "-o", "json")
    )  # fmt: skip
    ready = [
        addr
        for sl in slices["items"]
        for ep in sl.get("endpoints") or []
        if (ep.get("conditions") or {}).get("ready") is not False
        for addr in ep.get("addresses") or []
    ]
    svc = json.loads(kubectl(lay, "get", "service", "-n", "demo-a", WEB, "-o", "json"))
    return [
        (
            f"demo-a/{WEB}",
            f"{status.get('readyReplicas', 0)}/{deploy['spec'].get('replicas', 0)} ready",
            str(svc["spec"].get("clusterIP", "")),
            ",".join(sorted(ready)) or "-",
        )
    ]


def table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def _subnets(lay: Layout, views: Sequence[PodView]) -> list[tuple[str, ...]]:
    st = components.Settings.load(lay)
    # The controller counts usage a moment after pods get addresses: wait
    # (on a watch, briefly) until it covers the demo's pods of each subnet.
    for name in sorted({v.subnet for v in views} - {"ovn-default", ""}):
        want = sum(1 for v in views if v.subnet == name)
        with contextlib.suppress(cluster.SandboxError, subprocess.TimeoutExpired):
            kubectl(lay, "wait", f"subnet/{name}", "--timeout=5s",
                    f"--for=jsonpath={{.status.v4UsingIPs}}={want}")  # fmt: skip
    default = ("ovn-default", st.default_subnet_cidr, "(default)", "pods without a subnet")
    rows: list[tuple[str, ...]] = [default]
    listing = json.loads(kubectl(lay, "get", "subnets", "-o", "json"))
    for s in listing["items"]:
        spec, status = s.get("spec", {}), s.get("status", {})
        rows.append(
            (
                s["metadata"]["name"],
                spec.get("cidrBlock", ""),
                ",".join(spec.get("namespaces", [])) or "-",
                (
                    f"{status['v4UsingIPs']} used, {status.get('v4AvailableIPs', '?')} free"
                    if "v4UsingIPs" in status
                    else "(usage not counted yet)"
                ),
            )
        )
    rows.append(("join", st.join_cidr, "(nodes)", "one kovn0 per node"))
    return rows


def report(lay: Layout) -> bool:
    """Print nodes, subnets, pods and the reachability matrix; True when all green."""
    views = pods(lay)
    health = components.health(lay)
    joins = components.node_addresses(lay)
    print("NODES")
    rows: list[tuple[str, ...]] = [("NODE", "UNDERLAY IP", "KOVN0 (JOIN)", "DATAPLANE")]
    for n in lay.nodes:
        rows.append(
            (n.name, n.underlay_ip, joins[n.name] or "-",
             health.get(components.dataplane_name(n), "?"))
        )  # fmt: skip
    print(table(rows))
    print("\nSERVICES")
    rows = [("SERVICE", "HEALTH")]
    rows += [(k, v) for k, v in health.items() if not k.startswith("dataplane-")]
    print(table(rows))
    print("\nSUBNETS")
    print(table([("SUBNET", "CIDR", "NAMESPACES", "USAGE"), *_subnets(lay, views)]))
    print("\nPODS")
    rows = [("POD", "NODE", "IP", "MAC", "SUBNET")]
    rows += [(v.ref, v.node, v.ip, v.mac, v.subnet) for v in views]
    print(table(rows))
    print("\nWORKLOADS (a Deployment behind a Service; endpoints from its EndpointSlices)")
    print(table([("DEPLOYMENT", "READY", "CLUSTER-IP", "READY ENDPOINTS"), *workloads(lay)]))
    matrix = reachability(lay, views)
    print("\nREACHABILITY (one ping from each row to each column; ok = answered)")
    cols = [v.ref for v in views]
    srcs = cols + [f"node {n.name}" for n in lay.nodes]
    rows = [("FROM \\ TO", *cols)]
    for s in srcs:
        rows.append((s, *("-" if s == c else ("ok" if matrix[(s, c)] else "FAIL") for c in cols)))
    print(table(rows))
    with ThreadPoolExecutor(max_workers=8) as pool:
        http = dict(
            zip((v.ref for v in views), pool.map(lambda v: _http(lay, v), views), strict=True)
        )
    print(f"\nHTTP TO THE SERVICE BY NAME (wget {WEB_URL} from each pod: DNS, ClusterIP, OVN LB)")
    print(table([("FROM", "ANSWER"), *((ref, ok) for ref, ok in http.items())]))
    answered = sum(matrix.values()) + sum(ok == "ok" for ok in http.values())
    total = len(matrix) + len(http)
    green = answered == total
    print(
        f"\n{answered}/{total} checks answered ({len(matrix)} pings, {len(http)} HTTP)"
        + (" - all green" if green else " - SOME FAILED")
    )
    return green


def _tool(name: str) -> str:
    """`name` if the shell finds it, else its path next to this interpreter (the venv)."""
    if shutil.which(name):
        return name
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else name


def next_steps(lay: Layout) -> str:
    d = components.describe(lay)
    name = "" if lay.name == "kovn" else f" --name {lay.name}"
    kovn, grpcurl = _tool("kovn"), _tool("grpcurl")
    kc = f"kubectl --kubeconfig {lay.kubeconfig}"
    return "\n".join(
        [
            "",
            "The cluster keeps running. Next commands to try:",
            f"  {kc} get pods -A -o wide",
            f"  {kc} get subnets",
            f"  {kc} get deployments,services,endpointslices -n demo-a",
            f"  {kc} exec -n demo-a web-1 -- busybox wget -qO- {WEB_URL}",
            f"  {kc} logs -n demo-a deployment/{WEB}",
            f"  {kovn} sandbox exec{name} demo-a/web-1 -- ping -c2 {FIXED_IP}",
            f"  {kovn} sandbox exec{name} demo-b/db-1 -- ip addr show eth0",
            f"  {kovn} sandbox status{name}",
            f"  {grpcurl} -plaintext {d['controller']} list",
            f"  {grpcurl} -plaintext {d['ipam']} grpc.health.v1.Health/Check",
            f"  {grpcurl} -plaintext -unix {d['dataplanes'][lay.nodes[0].name]} "
            "kovn.dataplane.v1.Dataplane/ListAttachments",
            f"  logs: {d['logs']}/*.log",
            f"  {kovn} sandbox down{name}",
        ]
    )


def run(lay: Layout) -> bool:
    apply(lay)
    green = report(lay)
    print(next_steps(lay))
    return green
