# ruff: noqa: E501  (messages quote the real API server word for word)
"""meta.k8s.io/v1 Table rendering, which `kubectl get` asks for.

kubectl prints whatever columns the server sends, so the columns and cell
formats here are the real server's: pods (NAME READY STATUS RESTARTS AGE,
and IP/NODE with -o wide), nodes, namespaces, services, the workloads
(deployments, replicasets, daemonsets, statefulsets, jobs, cronjobs, and
the scale subresource), endpoints and slices, CRD
additionalPrinterColumns, and Name/Age for everything else.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .resources import Obj, ResourceType
from .selectors import selector_string

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


def human_duration(s: int) -> str:
    """Go's duration.HumanDuration, whole seconds."""
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
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
    if d < 365 * 8:
        return f"{d // 365}y{d % 365}d" if d % 365 else f"{d // 365}y"
    return f"{d // 365}y"


def _parse_ts(ts: str) -> datetime | None:
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return None


def human_age(ts: str | None) -> str:
    if not ts:
        return "<unknown>"
    t = _parse_ts(ts)
    if t is None:
        return "<invalid>"
    return human_duration(int((datetime.now(UTC) - t).total_seconds()))


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


def _at_most_3(items: list[str], empty: str) -> str:
    """Go's listWithMoreString over three items."""
    if not items:
        return empty
    return ",".join(items[:3]) + (f" + {len(items) - 3} more..." if len(items) > 3 else "")


def _slice_row(es: Obj) -> list[Any]:
    ports = [
        str(p["port"]) if p.get("port") is not None else str(p.get("name") or "*")
        for p in es.get("ports") or []
    ]
    addrs = [str(a) for e in es.get("endpoints") or [] for a in e.get("addresses") or []]
    return [
        es["metadata"]["name"],
        es.get("addressType", ""),
        _at_most_3(ports, "<unset>"),
        _at_most_3(addrs, "<unset>"),
        _age(es),
    ]


# -- workloads (apps/v1, batch/v1), as kubectl prints them -----------------------


def _containers(template: Any) -> list[str]:
    """The CONTAINERS and IMAGES cells of a pod template."""
    spec = (template or {}).get("spec") or {}
    cs = [c for c in spec.get("containers") or [] if isinstance(c, dict)]
    return [
        ",".join(str(c.get("name", "")) for c in cs),
        ",".join(str(c.get("image", "")) for c in cs),
    ]


def _int(d: Obj, key: str) -> int:
    return int(d.get(key) or 0)


_WIDE = [
    _col("Containers", priority=1, desc="Names of each container in the template."),
    _col("Images", priority=1, desc="Images referenced by each container in the template."),
]
_SELECTOR = _col("Selector", priority=1, desc="The label selector of the pods this object selects.")


def _deploy_row(d: Obj) -> list[Any]:
    spec, st = d.get("spec") or {}, d.get("status") or {}
    return [
        d["metadata"]["name"],
        f"{_int(st, 'readyReplicas')}/{_int(spec, 'replicas')}",
        _int(st, "updatedReplicas"),
        _int(st, "availableReplicas"),
        _age(d),
        *_containers(spec.get("template")),
        selector_string(spec.get("selector")),
    ]


DEPLOY_COLS = [
    NAME,
    _col("Ready", desc="Number of the pod with ready state"),
    _col(
        "Up-to-date",
        desc="Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
    ),
    _col(
        "Available",
        desc="Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
    ),
    AGE,
    *_WIDE,
    _SELECTOR,
]


def _rs_row(rs: Obj) -> list[Any]:
    spec, st = rs.get("spec") or {}, rs.get("status") or {}
    return [
        rs["metadata"]["name"],
        _int(spec, "replicas"),
        _int(st, "replicas"),
        _int(st, "readyReplicas"),
        _age(rs),
        *_containers(spec.get("template")),
        selector_string(spec.get("selector")),
    ]


RS_COLS = [
    NAME,
    _col("Desired", "integer", desc="Replicas is the number of desired replicas."),
    _col("Current", "integer", desc="Replicas is the most recently observed number of replicas."),
    _col("Ready", "integer", desc="The number of ready replicas for this replica set."),
    AGE,
    *_WIDE,
    _SELECTOR,
]


def _ds_row(ds: Obj) -> list[Any]:
    spec, st = ds.get("spec") or {}, ds.get("status") or {}
    node_sel = ((spec.get("template") or {}).get("spec") or {}).get("nodeSelector") or {}
    return [
        ds["metadata"]["name"],
        _int(st, "desiredNumberScheduled"),
        _int(st, "currentNumberScheduled"),
        _int(st, "numberReady"),
        _int(st, "updatedNumberScheduled"),
        _int(st, "numberAvailable"),
        ",".join(f"{k}={v}" for k, v in sorted(node_sel.items())) or "<none>",
        _age(ds),
        *_containers(spec.get("template")),
        selector_string(spec.get("selector")),
    ]


DS_COLS = [
    NAME,
    _col(
        "Desired",
        "integer",
        desc="The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod).",
    ),
    _col(
        "Current",
        "integer",
        desc="The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod.",
    ),
    _col(
        "Ready",
        "integer",
        desc="The number of nodes that should be running the daemon pod and have one or more of the daemon pod running with a Ready Condition.",
    ),
    _col(
        "Up-to-date",
        "integer",
        desc="The total number of nodes that are running updated daemon pod",
    ),
    _col(
        "Available",
        "integer",
        desc="The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)",
    ),
    _col(
        "Node Selector",
        desc="NodeSelector is a selector which must be true for the pod to fit on a node. Selector which must match a node's labels for the pod to be scheduled on that node.",
    ),
    AGE,
    *_WIDE,
    _SELECTOR,
]


def _sts_row(sts: Obj) -> list[Any]:
    spec, st = sts.get("spec") or {}, sts.get("status") or {}
    return [
        sts["metadata"]["name"],
        f"{_int(st, 'readyReplicas')}/{_int(spec, 'replicas')}",
        _age(sts),
        *_containers(spec.get("template")),
    ]


STS_COLS = [NAME, _col("Ready", desc="Number of the pod with ready state"), AGE, *_WIDE]


def _true(conditions: Any, kind: str) -> bool:
    return any(
        isinstance(c, dict) and c.get("type") == kind and c.get("status") == "True"
        for c in conditions or []
    )


def _job_status(job: Obj) -> str:
    conds = (job.get("status") or {}).get("conditions")
    if _true(conds, "Complete"):
        return "Complete"
    if _true(conds, "Failed"):
        return "Failed"
    if job["metadata"].get("deletionTimestamp"):
        return "Terminating"
    for kind in ("Suspended", "FailureTarget", "SuccessCriteriaMet"):
        if _true(conds, kind):
            return kind
    return "Running"


def _job_row(job: Obj) -> list[Any]:
    spec, st = job.get("spec") or {}, job.get("status") or {}
    succeeded = _int(st, "succeeded")
    if spec.get("completions") is not None:
        completions = f"{succeeded}/{spec['completions']}"
    elif _int(spec, "parallelism") > 1:
        completions = f"{succeeded}/1 of {spec['parallelism']}"
    else:
        completions = f"{succeeded}/1"
    start = _parse_ts(st["startTime"]) if st.get("startTime") else None
    end = _parse_ts(st["completionTime"]) if st.get("completionTime") else None
    duration = ""
    if start is not None:
        until = end if end is not None else datetime.now(UTC)
        duration = human_duration(int((until - start).total_seconds()))
    return [
        job["metadata"]["name"],
        _job_status(job),
        completions,
        duration,
        _age(job),
        *_containers(spec.get("template")),
        selector_string(spec.get("selector")),
    ]


JOB_COLS = [
    NAME,
    _col("Status", desc="Status of the job."),
    _col("Completions", desc="The number of pods which reached phase Succeeded."),
    _col("Duration", desc="Time required to complete the job."),
    AGE,
    *_WIDE,
    _SELECTOR,
]


def _cronjob_row(cj: Obj) -> list[Any]:
    spec, st = cj.get("spec") or {}, cj.get("status") or {}
    suspend = spec.get("suspend")
    template = ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template")
    last = st.get("lastScheduleTime")
    return [
        cj["metadata"]["name"],
        spec.get("schedule", ""),
        spec.get("timeZone") or "<none>",
        "<unset>" if suspend is None else ("True" if suspend else "False"),
        len(st.get("active") or []),
        human_age(last) if last else "<none>",
        _age(cj),
        *_containers(template),
        selector_string(((spec.get("jobTemplate") or {}).get("spec") or {}).get("selector")),
    ]


CRONJOB_COLS = [
    NAME,
    _col("Schedule", desc="The schedule in Cron format."),
    _col("Timezone", desc="The time zone name for the given schedule."),
    _col("Suspend", desc="This flag tells the controller to suspend subsequent executions."),
    _col("Active", "integer", desc="A list of pointers to currently running jobs."),
    _col(
        "Last Schedule",
        desc="Information when was the last time the job was successfully scheduled.",
    ),
    AGE,
    *_WIDE,
    _SELECTOR,
]

SCALE_COLS = [
    NAME,
    _col("Desired", "integer", desc="Number of desired replicas"),
    _col("Available", "integer", desc="Number of actual replicas"),
]


def scale_table(scale: Obj, include: str | None, list_meta: Obj) -> Obj:
    """The Table of a scale subresource (`kubectl get --subresource=scale`)."""
    row: Obj = {
        "cells": [
            scale["metadata"]["name"],
            int((scale.get("spec") or {}).get("replicas") or 0),
            int((scale.get("status") or {}).get("replicas") or 0),
        ]
    }
    if include == "Object":
        row["object"] = scale
    elif include != "None":
        row["object"] = partial_metadata(scale)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": SCALE_COLS,
        "rows": [row],
    }


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
    ("apps", "deployments"): (DEPLOY_COLS, _deploy_row),
    ("apps", "replicasets"): (RS_COLS, _rs_row),
    ("apps", "daemonsets"): (DS_COLS, _ds_row),
    ("apps", "statefulsets"): (STS_COLS, _sts_row),
    ("batch", "jobs"): (JOB_COLS, _job_row),
    ("batch", "cronjobs"): (CRONJOB_COLS, _cronjob_row),
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
