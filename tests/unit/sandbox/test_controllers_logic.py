"""The controller stand-ins' pure logic: rollout arithmetic, deletion ranking,
slice packing, selectors, taints and node affinity, as the Kubernetes docs
define them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox.controllers import daemonset, deployment, endpoints, endpointslice, podutil
from sandbox.controllers import job as job_ctl
from sandbox.controllers import replicaset as rsc

Obj = dict[str, Any]
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def stamp(seconds: float) -> str:
    return podutil.ts(T0 + timedelta(seconds=seconds))


def pod(
    name: str,
    *,
    node: str = "n1",
    phase: str = "Running",
    ready: bool = True,
    created: float = 0,
    ready_at: float = 0,
    labels: dict[str, str] | None = None,
    ip: str = "",
    ports: list[Obj] | None = None,
    deleting: bool = False,
) -> Obj:
    conds = [
        {
            "type": "Ready",
            "status": "True" if ready else "False",
            "lastTransitionTime": stamp(ready_at),
        }
    ]
    md: Obj = {
        "name": name,
        "namespace": "ns",
        "uid": f"uid-{name}",
        "creationTimestamp": stamp(created),
        "labels": labels or {"app": "a"},
    }
    if deleting:
        md["deletionTimestamp"] = stamp(100)
    status: Obj = {"phase": phase, "conditions": conds}
    if ip:
        status["podIP"] = ip
        status["podIPs"] = [{"ip": ip}]
    spec: Obj = {"containers": [{"name": "c", "ports": ports or []}]}
    if node:
        spec["nodeName"] = node
    return {"metadata": md, "spec": spec, "status": status}


def rs(name: str, replicas: int, available: int, created: float = 0, rev: int = 1) -> Obj:
    return {
        "metadata": {
            "name": name,
            "creationTimestamp": stamp(created),
            "annotations": {deployment.REVISION: str(rev)},
        },
        "spec": {"replicas": replicas},
        "status": {
            "replicas": replicas,
            "availableReplicas": available,
            "readyReplicas": available,
        },
    }


def deploy(replicas: int, surge: Any = "25%", unavailable: Any = "25%") -> Obj:
    return {
        "metadata": {"name": "d", "generation": 2},
        "spec": {
            "replicas": replicas,
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable},
            },
        },
    }


# -- rollout arithmetic --------------------------------------------------------


def test_fenceposts_round_surge_up_and_unavailability_down() -> None:
    assert deployment.fenceposts(deploy(10)) == (3, 2)
    assert deployment.fenceposts(deploy(3)) == (1, 0)
    assert deployment.fenceposts(deploy(4, 0, 0)) == (0, 1)  # never both zero
    assert deployment.fenceposts(deploy(5, 2, "50%")) == (2, 2)


def test_new_replicaset_grows_within_max_surge() -> None:
    d = deploy(4)  # surge 1, unavailable 1
    old = rs("old", 4, 4)
    assert deployment.new_rs_replicas(d, [old], None) == 1
    new = rs("new", 1, 0)
    assert deployment.new_rs_replicas(d, [old, new], new) == 1  # 5 pods: at the ceiling
    old3 = rs("old", 3, 3)
    assert deployment.new_rs_replicas(d, [old3, new], new) == 2


def test_old_replicasets_scale_down_keeping_min_available() -> None:
    d = deploy(4)  # min available 3
    old, new = rs("old", 4, 4), rs("new", 1, 0)
    # 5 pods, 4 available: one old pod may go (3 stay available)
    assert deployment.old_scale_downs(d, [old, new], new, [old]) == {"old": 3}
    new = rs("new", 1, 1)
    assert deployment.old_scale_downs(d, [old, new], new, [old]) == {"old": 2}


def test_unhealthy_old_pods_go_first() -> None:
    d = deploy(4)
    old, new = rs("old", 4, 1), rs("new", 1, 1)
    # 3 of the old pods are not available: removing them costs nothing, but
    # at most all - minAvailable - (new unavailable) = 2 go in one step
    assert deployment.old_scale_downs(d, [old, new], new, [old]) == {"old": 2}
    # the new pod unavailable too: only one
    assert deployment.old_scale_downs(d, [old, new], rs("new", 1, 0), [old]) == {"old": 3}


def test_template_hash_stable_and_ignores_its_own_label() -> None:
    t = {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c"}]}}
    h = deployment.template_hash(t)
    assert h == deployment.template_hash(t) and h.isalnum()
    assert not set(h) & set("aeiou")
    assert deployment.template_hash(t, 1) != h
    labelled = {"metadata": {"labels": {"app": "a", "pod-template-hash": h}}, "spec": t["spec"]}
    assert deployment.same_template(t, labelled)
    other = {"metadata": t["metadata"], "spec": {"containers": [{"name": "x"}]}}
    assert not deployment.same_template(t, other)


def test_status_complete_rollout_is_new_replicaset_available() -> None:
    d = deploy(3)
    new = rs("d-abc", 3, 3)
    st, wake = deployment.status_for(d, new, [], False, T0)
    assert st["observedGeneration"] == 2
    assert (st["replicas"], st["updatedReplicas"], st["availableReplicas"]) == (3, 3, 3)
    assert st["unavailableReplicas"] == 0
    conds = {c["type"]: c for c in st["conditions"]}
    assert conds["Progressing"]["reason"] == "NewReplicaSetAvailable"
    assert conds["Available"]["status"] == "True"
    assert wake is None


def test_status_in_rollout_counts_old_replicas_and_arms_the_deadline() -> None:
    d = deploy(3)
    st, wake = deployment.status_for(d, rs("new", 1, 0), [rs("old", 3, 3)], True, T0)
    assert (st["replicas"], st["updatedReplicas"], st["availableReplicas"]) == (4, 1, 3)
    conds = {c["type"]: c for c in st["conditions"]}
    assert conds["Progressing"]["reason"] == "NewReplicaSetCreated"
    assert wake == 600.0


# -- ReplicaSet ----------------------------------------------------------------


def test_victims_ranked_as_upstream() -> None:
    pods = [
        pod("old-ready", created=0, ready_at=10),
        pod("new-ready", created=50, ready_at=60),
        pod("not-ready", ready=False),
        pod("pending", phase="Pending", ready=False),
        pod("unscheduled", node="", phase="Pending", ready=False),
    ]
    order = [p["metadata"]["name"] for p in rsc.pick_victims(pods, 5)]
    assert order == ["unscheduled", "pending", "not-ready", "new-ready", "old-ready"]


def test_victims_prefer_crowded_nodes() -> None:
    pods = [pod("a", node="n1"), pod("b", node="n1"), pod("c", node="n2")]
    assert rsc.pick_victims(pods, 1)[0]["metadata"]["name"] in ("a", "b")


def test_replicaset_status_min_ready_seconds() -> None:
    r = {
        "metadata": {"generation": 3},
        "spec": {
            "minReadySeconds": 30,
            "template": {"metadata": {"labels": {"app": "a", "x": "y"}}},
        },
    }
    pods = [
        pod("a", ready_at=0),
        pod("b", ready_at=20),
        pod("c", ready=False, labels={"app": "a", "x": "y"}),
    ]
    st, wake = rsc.status_for(r, pods, T0 + timedelta(seconds=40))
    assert st == {
        "replicas": 3,
        "fullyLabeledReplicas": 1,
        "readyReplicas": 2,
        "availableReplicas": 1,
        "observedGeneration": 3,
    }
    assert wake == 10.0


def test_pod_from_template_is_owned() -> None:
    r = {
        "metadata": {"name": "web-abc", "namespace": "ns", "uid": "u1"},
        "spec": {"template": {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": []}}},
    }
    p = rsc.pod_from_template(r)
    assert p["metadata"]["generateName"] == "web-abc-"
    ref = p["metadata"]["ownerReferences"][0]
    assert ref["kind"] == "ReplicaSet" and ref["uid"] == "u1" and ref["controller"] is True


# -- selectors, taints, affinity -------------------------------------------------


def test_label_selector_expressions() -> None:
    sel = {
        "matchLabels": {"app": "a"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["web", "api"]},
            {"key": "canary", "operator": "DoesNotExist"},
        ],
    }
    assert podutil.selector_matches(sel, {"app": "a", "tier": "web"})
    assert not podutil.selector_matches(sel, {"app": "a", "tier": "db"})
    assert not podutil.selector_matches(sel, {"app": "a", "tier": "web", "canary": "1"})
    assert not podutil.selector_matches(None, {"app": "a"})


def test_daemon_pods_tolerate_standard_taints_only() -> None:
    ds: Obj = {"spec": {"template": {"spec": {"nodeSelector": {"role": "x"}}}}}
    node: Obj = {
        "metadata": {"name": "n1", "labels": {"role": "x"}},
        "spec": {"taints": [{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}]},
    }
    assert daemonset.should_run(ds, node)
    node["spec"]["taints"].append({"key": "dedicated", "value": "gpu", "effect": "NoSchedule"})
    assert not daemonset.should_run(ds, node)
    ds["spec"]["template"]["spec"]["tolerations"] = [{"key": "dedicated", "operator": "Exists"}]
    assert daemonset.should_run(ds, node)
    node["metadata"]["labels"] = {}
    assert not daemonset.should_run(ds, node)


def test_daemon_pod_is_pinned_by_node_affinity() -> None:
    ds = {
        "metadata": {"name": "ds", "namespace": "ns", "uid": "u", "generation": 2},
        "spec": {"template": {"metadata": {"labels": {"app": "d"}}, "spec": {"hostNetwork": True}}},
    }
    p = daemonset.pod_for_node(ds, "n2", "h1")
    assert daemonset.pinned_node(p) == "n2"
    assert podutil.node_affinity_matches(p["spec"], "n2", {})
    assert not podutil.node_affinity_matches(p["spec"], "n1", {})
    keys = {t["key"] for t in p["spec"]["tolerations"]}
    assert "node.kubernetes.io/network-unavailable" in keys  # hostNetwork only
    assert p["metadata"]["labels"]["controller-revision-hash"] == "h1"


# -- endpoints -------------------------------------------------------------------


def svc(ports: list[Obj], publish: bool = False) -> Obj:
    return {
        "metadata": {"name": "s", "namespace": "ns", "uid": "su"},
        "spec": {
            "selector": {"app": "a"},
            "ports": ports,
            "ipFamilies": ["IPv4"],
            "publishNotReadyAddresses": publish,
        },
    }


def test_named_ports_split_slices() -> None:
    s = svc([{"name": "http", "port": 80, "targetPort": "web", "protocol": "TCP"}])
    pods = [
        pod("a", ip="10.0.0.1", ports=[{"name": "web", "containerPort": 8080}]),
        pod("b", ip="10.0.0.2", ports=[{"name": "web", "containerPort": 9090}]),
        pod("c", ip="10.0.0.3", ports=[{"name": "web", "containerPort": 8080}]),
        pod("noip"),
    ]
    want = endpointslice.desired(s, pods)
    creates, updates, deletes = endpointslice.plan([], want, "IPv4")
    assert not updates and not deletes
    by_port = {c[1][0]["port"]: sorted(e["addresses"][0] for e in c[2]) for c in creates}
    assert by_port == {8080: ["10.0.0.1", "10.0.0.3"], 9090: ["10.0.0.2"]}


def test_conditions_ready_serving_terminating() -> None:
    s = svc([{"name": "", "port": 80, "targetPort": 80}])
    eps = {
        e["targetRef"]["name"]: e["conditions"]
        for group in endpointslice.desired(
            s,
            [
                pod("ok", ip="10.0.0.1"),
                pod("nr", ip="10.0.0.2", ready=False),
                pod("term", ip="10.0.0.3", deleting=True),
                pod("done", ip="10.0.0.4", phase="Succeeded"),
            ],
        ).values()
        for e, _ in group.values()
    }
    assert eps == {
        "ok": {"ready": True, "serving": True, "terminating": False},
        "nr": {"ready": False, "serving": False, "terminating": False},
        "term": {"ready": False, "serving": True, "terminating": True},
    }
    published = endpointslice.desired(
        svc(s["spec"]["ports"], publish=True), [pod("nr", ip="10.0.0.2", ready=False)]
    )
    ((e, _),) = next(iter(published.values())).values()
    assert e["conditions"]["ready"] is True


def _slice(name: str, ips: list[str], ports: list[Obj]) -> Obj:
    return {
        "metadata": {"name": name},
        "addressType": "IPv4",
        "ports": ports,
        "endpoints": [
            {
                "addresses": [ip],
                "conditions": {"ready": True, "serving": True, "terminating": False},
            }
            for ip in ips
        ],
    }


def test_packing_keeps_endpoints_in_place_and_caps_slices() -> None:
    ports = [{"name": "", "port": 80, "protocol": "TCP"}]
    s = svc([{"name": "", "port": 80, "targetPort": 80}])
    pods = [pod(f"p{i}", ip=f"10.0.{i // 250}.{i % 250 + 1}") for i in range(150)]
    want = endpointslice.desired(s, pods)
    creates, _, _ = endpointslice.plan([], want, "IPv4")
    assert sorted(len(c[2]) for c in creates) == [50, 100]
    # An existing full slice with unchanged endpoints is not rewritten; the rest go elsewhere.
    first100 = [f"10.0.{i // 250}.{i % 250 + 1}" for i in range(100)]
    existing = [_slice("s-a", first100, ports)]
    # Drop nodeName and targetRef so the existing endpoints compare equal.
    for p in pods:
        p["spec"].pop("nodeName")
    want = endpointslice.desired(s, pods)
    for group in want.values():
        for e, _ in group.values():
            e.pop("targetRef")
    creates, updates, deletes = endpointslice.plan(existing, want, "IPv4")
    assert not updates and not deletes
    assert [len(c[2]) for c in creates] == [50]


def test_placeholder_when_no_endpoints() -> None:
    ports = [{"name": "", "port": 80, "protocol": "TCP"}]
    creates, updates, deletes = endpointslice.plan([_slice("s-a", ["10.0.0.1"], ports)], {}, "IPv4")
    assert creates == [("IPv4", [], [])] and not updates and len(deletes) == 1


def test_endpoints_subsets_ready_and_not_ready() -> None:
    s = svc([{"name": "http", "port": 80, "targetPort": 80}])
    subsets = endpoints.subsets_for(
        s,
        [
            pod("a", ip="10.0.0.2"),
            pod("b", ip="10.0.0.1", ready=False),
            pod("t", ip="10.0.0.3", deleting=True),
        ],
    )
    assert len(subsets) == 1
    assert [a["ip"] for a in subsets[0]["addresses"]] == ["10.0.0.2"]
    assert [a["ip"] for a in subsets[0]["notReadyAddresses"]] == ["10.0.0.1"]
    assert subsets[0]["ports"] == [{"port": 80, "protocol": "TCP", "name": "http"}]


# -- Jobs ------------------------------------------------------------------------


def test_job_parallelism_and_completions() -> None:
    job: Obj = {"spec": {"parallelism": 2, "completions": 5}}
    assert job_ctl.want_active(job, 0, 0) == 2
    assert job_ctl.want_active(job, 4, 1) == 1
    assert job_ctl.done_succeeding(job, 5, 0)
    work_queue: Obj = {"spec": {"parallelism": 3, "completions": None}}
    assert job_ctl.want_active(work_queue, 0, 0) == 3
    assert job_ctl.want_active(work_queue, 1, 2) == 0
    assert not job_ctl.done_succeeding(work_queue, 1, 2)
    assert job_ctl.done_succeeding(work_queue, 1, 0)
    assert job_ctl.want_active({"spec": {}}, 0, 0) == 1


def test_job_backoff_doubles_to_six_minutes() -> None:
    assert [job_ctl.backoff_delay(n) for n in (0, 1, 2, 3)] == [0.0, 10.0, 20.0, 40.0]
    assert job_ctl.backoff_delay(10) == 360.0


def test_job_pod_labels_and_owner() -> None:
    job = {
        "metadata": {"name": "j", "namespace": "ns", "uid": "ju"},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": []}}},
    }
    pod_ = job_ctl.pod_for(job)
    assert pod_["metadata"]["labels"]["batch.kubernetes.io/job-name"] == "j"
    assert pod_["metadata"]["labels"]["controller-uid"] == "ju"
    assert pod_["metadata"]["ownerReferences"][0]["kind"] == "Job"


def _annotated(r: Obj, desired: int, max_replicas: int) -> Obj:
    r["metadata"]["annotations"].update(
        {deployment.DESIRED: str(desired), deployment.MAX_REPLICAS: str(max_replicas)}
    )
    return r


def test_proportional_scaling_as_in_the_docs_example() -> None:
    # 10 replicas, maxSurge 3, maxUnavailable 2, mid-rollout (8 old, 5 new),
    # scaled to 15: the 5 new replicas go 3 to the old and 2 to the new ReplicaSet.
    d = deploy(15, 3, 2)
    old = _annotated(rs("old", 8, 8, created=0), 10, 13)
    new = _annotated(rs("new", 5, 0, created=10), 10, 13)
    assert deployment.is_scaling_event(d, [old, new])
    assert deployment.proportional_sizes(d, new, [old]) == {"old": 11, "new": 7}
    # Scaling down takes from the larger one first.
    d = deploy(5, 3, 2)
    sizes = deployment.proportional_sizes(d, new, [old])
    assert sum(sizes.values()) == 8 and sizes["old"] < 8 and sizes["new"] < 5


def test_scaling_one_active_replicaset_sets_it() -> None:
    d = deploy(5)
    new = _annotated(rs("new", 3, 3), 3, 4)
    old = _annotated(rs("old", 0, 0), 3, 4)
    assert deployment.is_scaling_event(d, [new, old])
    assert deployment.proportional_sizes(d, new, [old]) == {"new": 5}
    assert not deployment.is_scaling_event(deploy(3), [new, old])
