# ruff: noqa: E501  (messages quote the real API server word for word)
"""meta.k8s.io/v1 Table rendering, which `kubectl get` asks for.

kubectl prints whatever columns the server sends, so the columns and cell
formats here are the real server's: pods (NAME READY STATUS RESTARTS AGE,
and IP/NODE with -o wide), nodes, namespaces, services, CRD
additionalPrinterColumns, and Name/Age for everything else.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .resources import Obj, ResourceType

Row = Callable[[Obj], list[Any]]


def _col(name: str, typ: str = "string", priority: int = 0, fmt: str = "", desc: str = "") -> Obj:
    return {
        "name": name,
        "type": typ,
        "format": fmt,
        "description": desc or name,
        "priority": priority,
    }


NAME = _col("Name", fmt="name", desc="Name must be unique within a namespace.")
AGE = _col(
    "Age",
    desc="CreationTimestamp is a timestamp representing the server time when this object was created.",
)


def human_age(ts: str | None) -> str:
    if not ts:
        return "<unknown>"
    try:
        t = datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return "<invalid>"
    s = int((datetime.now(UTC) - t).total_seconds())
    if s < 0:
        return "<invalid>"
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = m // 60
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    d = h // 24
    if d < 8:
        return f"{d}d{h % 24}h" if h % 24 else f"{d}d"
    if d < 365 * 2:
        return f"{d}d"
    return f"{d // 365}y{d % 365}d" if d % 365 else f"{d // 365}y"


def _pod_row(pod: Obj) -> list[Any]:
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    total = len(spec.get("containers") or [])
    cstat = status.get("containerStatuses") or []
    ready = sum(1 for c in cstat if c.get("ready"))
    restarts = sum(int(c.get("restartCount", 0)) for c in cstat)
    reason = status.get("reason") or status.get("phase") or "Pending"
    for c in cstat:
        st = c.get("state") or {}
        if (st.get("waiting") or {}).get("reason"):
            reason = st["waiting"]["reason"]
        elif (st.get("terminated") or {}).get("reason"):
            reason = st["terminated"]["reason"]
    if pod["metadata"].get("deletionTimestamp"):
        reason = "Terminating"
    gates = spec.get("readinessGates") or []
    return [
        pod["metadata"]["name"],
        f"{ready}/{total}",
        reason,
        str(restarts),
        human_age(pod["metadata"].get("creationTimestamp")),
        status.get("podIP") or "<none>",
        spec.get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>",
        f"{len(gates)}" if gates else "<none>",
    ]


POD_COLS = [
    NAME,
    _col("Ready", desc="The aggregate readiness state of this pod for accepting traffic."),
    _col("Status", desc="The aggregate status of the containers in this pod."),
    _col(
        "Restarts",
        "string",
        desc="The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
    ),
    AGE,
    _col(
        "IP",
        priority=1,
        desc="IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.",
    ),
    _col(
        "Node", priority=1, desc="NodeName is a request to schedule this pod onto a specific node."
    ),
    _col(
        "Nominated Node",
        priority=1,
        desc="nominatedNodeName is set only when this pod preempts other pods on the node.",
    ),
    _col(
        "Readiness Gates",
        priority=1,
        desc="If specified, all readiness gates will be evaluated for pod readiness.",
    ),
]


def _node_row(node: Obj) -> list[Any]:
    status, spec = node.get("status") or {}, node.get("spec") or {}
    cond = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    ready = cond.get("Ready")
    state = "Ready" if ready == "True" else "NotReady" if ready == "False" else "Unknown"
    if spec.get("unschedulable"):
        state += ",SchedulingDisabled"
    labels = node["metadata"].get("labels") or {}
    roles = sorted(
        k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/")
    ) or (["<none>"])
    addrs = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
    info = status.get("nodeInfo") or {}
    return [
        node["metadata"]["name"],
        state,
        ",".join(roles),
        human_age(node["metadata"].get("creationTimestamp")),
        info.get("kubeletVersion", ""),
        addrs.get("InternalIP") or "<none>",
        addrs.get("ExternalIP") or "<none>",
        info.get("osImage") or "<unknown>",
        info.get("kernelVersion") or "<unknown>",
        info.get("containerRuntimeVersion") or "<unknown>",
    ]


NODE_COLS = [
    NAME,
    _col("Status", desc="The status of the node"),
    _col("Roles", desc="The roles of the node"),
    AGE,
    _col("Version", desc="Kubelet Version reported by the node."),
    _col("Internal-IP", priority=1),
    _col("External-IP", priority=1),
    _col("OS-Image", priority=1),
    _col("Kernel-Version", priority=1),
    _col("Container-Runtime", priority=1),
]


def _svc_row(svc: Obj) -> list[Any]:
    spec = svc.get("spec") or {}
    ports = (
        ",".join(
            f"{p.get('port')}"
            + (f":{p['nodePort']}" if p.get("nodePort") else "")
            + f"/{p.get('protocol', 'TCP')}"
            for p in spec.get("ports") or []
        )
        or "<none>"
    )
    ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    ext = (
        ",".join(i.get("ip") or i.get("hostname", "") for i in ingress)
        or ",".join(spec.get("externalIPs") or [])
        or ("<pending>" if spec.get("type") == "LoadBalancer" else "<none>")
    )
    if spec.get("type") == "ExternalName":
        ext = spec.get("externalName", "<none>")
    sel = ",".join(f"{k}={v}" for k, v in sorted((spec.get("selector") or {}).items())) or "<none>"
    return [
        svc["metadata"]["name"],
        spec.get("type", ""),
        spec.get("clusterIP") or "<none>",
        ext,
        ports,
        human_age(svc["metadata"].get("creationTimestamp")),
        sel,
    ]


SVC_COLS = [
    NAME,
    _col("Type"),
    _col("Cluster-IP"),
    _col("External-IP"),
    _col("Port(s)"),
    AGE,
    _col("Selector", priority=1),
]


def _ns_row(ns: Obj) -> list[Any]:
    return [
        ns["metadata"]["name"],
        (ns.get("status") or {}).get("phase", ""),
        human_age(ns["metadata"].get("creationTimestamp")),
    ]


NS_COLS = [NAME, _col("Status", desc="The status of the namespace"), AGE]


def _crd_row(crd: Obj) -> list[Any]:
    return [crd["metadata"]["name"], crd["metadata"].get("creationTimestamp", "")]


CRD_COLS = [NAME, _col("Created At", "date", desc="Creation time of the CRD.")]


def _event_row(ev: Obj) -> list[Any]:
    when = ev.get("lastTimestamp") or ev.get("eventTime") or ev["metadata"].get("creationTimestamp")
    inv = ev.get("involvedObject") or {}
    obj = f"{str(inv.get('kind', '')).lower()}/{inv.get('name', '')}"
    return [human_age(when), ev.get("type", ""), ev.get("reason", ""), obj, ev.get("message", "")]


EVENT_COLS = [
    _col("Last Seen"),
    _col("Type"),
    _col("Reason"),
    _col("Object"),
    _col("Message"),
]


def _age(o: Obj) -> str:
    return human_age(o["metadata"].get("creationTimestamp"))


def _endpoints_row(ep: Obj) -> list[Any]:
    addrs = [
        f"{a.get('ip')}:{p.get('port')}" if p else str(a.get("ip"))
        for s in ep.get("subsets") or []
        for a in s.get("addresses") or []
        for p in (s.get("ports") or [None])
    ]
    shown = ",".join(addrs[:3]) + (f" + {len(addrs) - 3} more..." if len(addrs) > 3 else "")
    return [ep["metadata"]["name"], shown or "<none>", _age(ep)]


def _slice_row(es: Obj) -> list[Any]:
    ports = ",".join(str(p.get("port", "")) for p in es.get("ports") or []) or "<unset>"
    addrs = [a for e in es.get("endpoints") or [] for a in e.get("addresses") or []]
    shown = ",".join(addrs[:3]) + (f" + {len(addrs) - 3} more..." if len(addrs) > 3 else "")
    return [es["metadata"]["name"], es.get("addressType", ""), ports, shown or "<unset>", _age(es)]


def _netpol_row(np: Obj) -> list[Any]:
    sel = ((np.get("spec") or {}).get("podSelector") or {}).get("matchLabels") or {}
    shown = ",".join(f"{k}={v}" for k, v in sorted(sel.items())) or "<none>"
    return [np["metadata"]["name"], shown, _age(np)]


def _lease_row(lease: Obj) -> list[Any]:
    return [
        lease["metadata"]["name"],
        (lease.get("spec") or {}).get("holderIdentity", ""),
        _age(lease),
    ]


def _cm_row(cm: Obj) -> list[Any]:
    return [
        cm["metadata"]["name"],
        len(cm.get("data") or {}) + len(cm.get("binaryData") or {}),
        _age(cm),
    ]


_BUILTIN: dict[tuple[str, str], tuple[list[Obj], Row]] = {
    ("", "endpoints"): ([NAME, _col("Endpoints"), AGE], _endpoints_row),
    ("discovery.k8s.io", "endpointslices"): (
        [NAME, _col("AddressType"), _col("Ports"), _col("Endpoints"), AGE],
        _slice_row,
    ),
    ("networking.k8s.io", "networkpolicies"): ([NAME, _col("Pod-Selector"), AGE], _netpol_row),
    ("coordination.k8s.io", "leases"): ([NAME, _col("Holder"), AGE], _lease_row),
    ("", "configmaps"): ([NAME, _col("Data", "integer"), AGE], _cm_row),
    ("apiextensions.k8s.io", "customresourcedefinitions"): (CRD_COLS, _crd_row),
    ("", "events"): (EVENT_COLS, _event_row),
    ("", "pods"): (POD_COLS, _pod_row),
    ("", "nodes"): (NODE_COLS, _node_row),
    ("", "services"): (SVC_COLS, _svc_row),
    ("", "namespaces"): (NS_COLS, _ns_row),
}

_PATH_TOKEN = re.compile(
    r"\.([A-Za-z0-9_\-$]+)|\[(\d+)\]|\[\?\(@\.([A-Za-z0-9_.\-]+)\s*==\s*['\"]([^'\"]*)['\"]\)\]"
)


def jsonpath(obj: Any, path: str) -> Any:
    """The subset of JSONPath CRD printer columns use."""
    cur: list[Any] = [obj]
    path = path.strip().removeprefix("{").removesuffix("}")
    pos = 0
    while pos < len(path):
        m = _PATH_TOKEN.match(path, pos)
        if not m:
            return None
        pos = m.end()
        nxt: list[Any] = []
        for c in cur:
            if m.group(1) is not None and isinstance(c, dict) and m.group(1) in c:
                nxt.append(c[m.group(1)])
            elif m.group(2) is not None and isinstance(c, list) and int(m.group(2)) < len(c):
                nxt.append(c[int(m.group(2))])
            elif m.group(3) is not None and isinstance(c, list):
                for item in c:
                    if isinstance(item, dict) and str(jsonpath(item, "." + m.group(3))) == m.group(
                        4
                    ):
                        nxt.append(item)
        cur = nxt
    if not cur:
        return None
    return cur[0] if len(cur) == 1 else cur


def _custom(rt: ResourceType) -> tuple[list[Obj], Row]:
    cols = [NAME]
    specs = list(rt.printer_columns)
    for c in specs:
        cols.append(
            _col(
                c.get("name", ""),
                c.get("type", "string"),
                int(c.get("priority", 0)),
                c.get("format", ""),
                c.get("description", ""),
            )
        )

    def row(obj: Obj) -> list[Any]:
        cells: list[Any] = [obj["metadata"]["name"]]
        for c in specs:
            v = jsonpath(obj, c.get("jsonPath", ""))
            if v is None:
                cells.append(None)
            elif c.get("type") == "date":
                cells.append(human_age(v) if isinstance(v, str) else v)
            elif isinstance(v, (dict, list)):
                cells.append(json.dumps(v, separators=(",", ":")))
            else:
                cells.append(v)
        return cells

    return cols, row


def columns_for(rt: ResourceType) -> tuple[list[Obj], Row]:
    if rt.gr in _BUILTIN:
        return _BUILTIN[rt.gr]
    if rt.custom and rt.printer_columns:
        return _custom(rt)
    return [NAME, AGE], lambda o: [
        o["metadata"]["name"],
        human_age(o["metadata"].get("creationTimestamp")),
    ]


def partial_metadata(obj: Obj) -> Obj:
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj["metadata"],
    }


def table(rt: ResourceType, objs: list[Obj], include: str, list_meta: Obj | None = None) -> Obj:
    cols, row = columns_for(rt)
    rows = []
    for o in objs:
        r: Obj = {"cells": row(o)}
        if include == "Object":
            r["object"] = o
        elif include != "None":
            r["object"] = partial_metadata(o)
        rows.append(r)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta or {},
        "columnDefinitions": cols,
        "rows": rows,
    }
