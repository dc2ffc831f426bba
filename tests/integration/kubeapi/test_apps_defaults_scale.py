"""Workloads as kubectl users meet them: the scale subresource, the
defaults of apps/v1 and batch/v1, and the columns of `kubectl get`."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client

from sandbox.kubeapi import KubeApiServer

from .test_kubectl import kubectl

Pair = tuple[KubeApiServer, client.ApiClient]

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")

APPS = "/apis/apps/v1/namespaces/default"

DAEMONSET = """
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      nodeSelector: {kubernetes.io/os: linux}
      containers:
      - name: a
        image: busybox:1.36
        ports: [{containerPort: 9000}]
        readinessProbe: {httpGet: {port: 9000}}
"""


async def _req(
    srv: KubeApiServer, method: str, path: str, body: Any = None, ctype: str = "application/json"
) -> tuple[int, Any]:
    data = body if isinstance(body, (bytes, str)) or body is None else json.dumps(body)
    headers = {"Content-Type": ctype} if data is not None else {}
    async with (
        aiohttp.ClientSession() as s,
        s.request(method, srv.url + path, data=data, headers=headers) as r,
    ):
        return r.status, await r.json()


async def _deployment(srv: KubeApiServer, tmp: Path, name: str = "web", n: int = 2) -> Any:
    rc, _, err = await kubectl(
        srv, tmp, "create", "deployment", name, "--image=nginx:1.27", f"--replicas={n}"
    )
    assert rc == 0, err
    code, d = await _req(srv, "GET", f"{APPS}/deployments/{name}")
    assert code == 200
    return d


async def test_kubectl_scale_writes_the_deployment_and_a_watch_sees_it(
    kapi: Pair, tmp_path: Path
) -> None:
    srv, _ = kapi
    d = await _deployment(srv, tmp_path)
    assert d["metadata"]["generation"] == 1
    async with aiohttp.ClientSession() as s:
        params = {"watch": "1", "resourceVersion": d["metadata"]["resourceVersion"]}
        async with s.get(f"{srv.url}{APPS}/deployments", params=params) as w:
            rc, out, err = await kubectl(srv, tmp_path, "scale", "deployment/web", "--replicas=5")
            assert rc == 0, err
            assert "deployment.apps/web scaled" in out
            ev = json.loads(await asyncio.wait_for(w.content.readline(), 5))
    assert ev["type"] == "MODIFIED"
    assert ev["object"]["spec"]["replicas"] == 5
    _, now = await _req(srv, "GET", f"{APPS}/deployments/web")
    assert now["spec"]["replicas"] == 5
    assert now["metadata"]["generation"] == 2
    assert int(now["metadata"]["resourceVersion"]) > int(d["metadata"]["resourceVersion"])
    # With a precondition kubectl reads the Scale and PUTs it back.
    rc, _, err = await kubectl(
        srv, tmp_path, "scale", "deployment/web", "--current-replicas=5", "--replicas=3"
    )
    assert rc == 0, err
    rc, _, err = await kubectl(
        srv, tmp_path, "scale", "deployment/web", "--current-replicas=5", "--replicas=1"
    )
    assert rc != 0 and "Expected replicas to be 5, was 3" in err
    rc, out, err = await kubectl(srv, tmp_path, "get", "deployment/web", "--subresource=scale")
    assert rc == 0, err
    assert out.split() == ["NAME", "DESIRED", "AVAILABLE", "web", "3", "0"]


async def test_get_scale_and_its_discovery(kapi: Pair, tmp_path: Path) -> None:
    srv, _ = kapi
    d = await _deployment(srv, tmp_path)
    code, scale = await _req(srv, "GET", f"{APPS}/deployments/web/scale")
    assert code == 200
    assert (scale["apiVersion"], scale["kind"]) == ("autoscaling/v1", "Scale")
    meta = d["metadata"]
    assert scale["metadata"] == {
        k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
    }
    assert scale["spec"] == {"replicas": 2}
    assert scale["status"] == {"replicas": 0, "selector": "app=web"}

    code, doc = await _req(srv, "GET", "/apis/apps/v1")
    subs = {r["name"]: r for r in doc["resources"] if r["name"].endswith("/scale")}
    assert set(subs) == {"deployments/scale", "replicasets/scale", "statefulsets/scale"}
    assert subs["deployments/scale"]["kind"] == "Scale"
    assert subs["deployments/scale"]["group"] == "autoscaling"
    assert subs["deployments/scale"]["version"] == "v1"
    assert sorted(subs["deployments/scale"]["verbs"]) == ["get", "patch", "update"]
    accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    async with (
        aiohttp.ClientSession() as s,
        s.get(f"{srv.url}/apis", headers={"Accept": accept}) as r,
    ):
        agg = await r.json()
    (apps,) = [g for g in agg["items"] if g["metadata"].get("name") == "apps"]
    (deploy,) = [r for r in apps["versions"][0]["resources"] if r["resource"] == "deployments"]
    (sc,) = [x for x in deploy["subresources"] if x["subresource"] == "scale"]
    assert sc["responseKind"] == {"group": "autoscaling", "version": "v1", "kind": "Scale"}

    # A set-based selector in its string form; a scale of another kind.
    sts = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "db"},
        "spec": {
            "selector": {
                "matchLabels": {"app": "db"},
                "matchExpressions": [
                    {"key": "tier", "operator": "In", "values": ["b", "a"]},
                    {"key": "canary", "operator": "DoesNotExist"},
                ],
            },
            "template": {
                "metadata": {"labels": {"app": "db", "tier": "a"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
        },
    }
    code, _ = await _req(srv, "POST", f"{APPS}/statefulsets", sts)
    assert code == 201
    code, scale = await _req(srv, "GET", f"{APPS}/statefulsets/db/scale")
    assert scale["spec"] == {"replicas": 1}  # defaulted
    assert scale["status"]["selector"] == "app=db,!canary,tier in (a,b)"
    code, _ = await _req(srv, "GET", f"{APPS}/daemonsets/x/scale")
    assert code == 404


async def test_put_and_patch_scale(kapi: Pair, tmp_path: Path) -> None:
    srv, _ = kapi
    await _deployment(srv, tmp_path)
    url = f"{APPS}/deployments/web/scale"
    _, scale = await _req(srv, "GET", url)
    stale = scale["metadata"]["resourceVersion"]

    scale["spec"]["replicas"] = 4
    code, out = await _req(srv, "PUT", url, scale)
    assert code == 200 and out["spec"]["replicas"] == 4
    assert int(out["metadata"]["resourceVersion"]) > int(stale)

    scale["spec"]["replicas"] = 6  # still carries the old resourceVersion
    code, out = await _req(srv, "PUT", url, scale)
    assert code == 409 and out["reason"] == "Conflict"
    assert 'Operation cannot be fulfilled on deployments.apps "web"' in out["message"]

    scale["metadata"].pop("resourceVersion")  # no precondition: last write wins
    code, out = await _req(srv, "PUT", url, scale)
    assert code == 200 and out["spec"]["replicas"] == 6

    scale["spec"]["replicas"] = -1
    code, out = await _req(srv, "PUT", url, scale)
    assert code == 422 and "spec.replicas: Invalid value: -1" in out["message"]

    patches = [
        ("application/merge-patch+json", {"spec": {"replicas": 7}}, 7),
        ("application/strategic-merge-patch+json", {"spec": {"replicas": 8}}, 8),
        (
            "application/json-patch+json",
            [{"op": "replace", "path": "/spec/replicas", "value": 9}],
            9,
        ),
    ]
    for ctype, body, want in patches:
        code, out = await _req(srv, "PATCH", url, body, ctype)
        assert code == 200 and out["spec"]["replicas"] == want, (ctype, out)
    code, out = await _req(
        srv,
        "PATCH",
        url + "?fieldManager=test",
        "apiVersion: autoscaling/v1\nkind: Scale\nmetadata: {name: web}\nspec: {replicas: 2}\n",
        "application/apply-patch+yaml",
    )
    assert code == 200 and out["spec"]["replicas"] == 2
    code, out = await _req(
        srv,
        "PATCH",
        url,
        {"spec": {"replicas": 3}, "metadata": {"resourceVersion": stale}},
        "application/merge-patch+json",
    )
    assert code == 409

    code, d = await _req(srv, "GET", f"{APPS}/deployments/web")
    assert d["spec"]["replicas"] == 2
    # Each change of replicas was a change of spec.
    assert d["metadata"]["generation"] == 7
    code, _ = await _req(srv, "DELETE", url)
    assert code == 405


async def test_defaults_of_kubectl_created_workloads(kapi: Pair, tmp_path: Path) -> None:
    srv, _ = kapi
    d = await _deployment(srv, tmp_path)
    spec = d["spec"]
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
    }
    assert (spec["revisionHistoryLimit"], spec["progressDeadlineSeconds"]) == (10, 600)
    pod = spec["template"]["spec"]
    assert {k: pod[k] for k in pod if k != "containers"} == {
        "restartPolicy": "Always",
        "dnsPolicy": "ClusterFirst",
        "terminationGracePeriodSeconds": 30,
        "schedulerName": "default-scheduler",
        "securityContext": {},
    }
    (c,) = pod["containers"]
    assert c["imagePullPolicy"] == "IfNotPresent"  # a tag other than latest
    assert c["terminationMessagePath"] == "/dev/termination-log"
    assert c["terminationMessagePolicy"] == "File"

    rc, _, err = await kubectl(srv, tmp_path, "create", "job", "once", "--image=busybox")
    assert rc == 0, err
    _, job = await _req(srv, "GET", "/apis/batch/v1/namespaces/default/jobs/once")
    js, uid = job["spec"], job["metadata"]["uid"]
    assert (js["parallelism"], js["completions"], js["backoffLimit"]) == (1, 1, 6)
    assert (js["completionMode"], js["suspend"]) == ("NonIndexed", False)
    assert js["podReplacementPolicy"] == "TerminatingOrFailed"
    assert js["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    assert js["template"]["metadata"]["labels"] == {
        "batch.kubernetes.io/controller-uid": uid,
        "batch.kubernetes.io/job-name": "once",
        "controller-uid": uid,
        "job-name": "once",
    }
    tpl = js["template"]["spec"]
    assert tpl["restartPolicy"] == "Never" and tpl["dnsPolicy"] == "ClusterFirst"
    assert tpl["containers"][0]["imagePullPolicy"] == "Always"  # no tag
    assert job["status"] == {}

    rc, _, err = await kubectl(srv, tmp_path, "apply", "-f", "-", stdin=DAEMONSET)
    assert rc == 0, err
    _, ds = await _req(srv, "GET", f"{APPS}/daemonsets/agent")
    assert ds["spec"]["updateStrategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0},
    }
    assert ds["spec"]["revisionHistoryLimit"] == 10
    (c,) = ds["spec"]["template"]["spec"]["containers"]
    assert c["ports"] == [{"containerPort": 9000, "protocol": "TCP"}]
    assert c["readinessProbe"] == {
        "httpGet": {"port": 9000, "path": "/", "scheme": "HTTP"},
        "timeoutSeconds": 1,
        "periodSeconds": 10,
        "successThreshold": 1,
        "failureThreshold": 3,
    }
    assert ds["status"]["numberReady"] == 0
    rc, out, err = await kubectl(
        srv, tmp_path, "rollout", "status", "daemonset/agent", "--watch=false"
    )
    assert rc == 0, err
    assert "only available for RollingUpdate" not in out + err
    # Reapplied (an update), the defaults stay and nothing changes.
    rc, out, err = await kubectl(srv, tmp_path, "apply", "-f", "-", stdin=DAEMONSET)
    assert rc == 0 and "unchanged" in out, (out, err)


async def test_job_completions_parallelism_and_manual_selector(kapi: Pair) -> None:
    srv, _ = kapi
    jobs = "/apis/batch/v1/namespaces/default/jobs"

    def job(name: str, **spec: Any) -> Any:
        tpl = {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "b"}]}}
        return {"metadata": {"name": name}, "spec": {"template": tpl, **spec}}

    _, j = await _req(srv, "POST", jobs, job("c3", completions=3))
    assert (j["spec"]["completions"], j["spec"]["parallelism"]) == (3, 1)
    _, j = await _req(srv, "POST", jobs, job("p4", parallelism=4))
    assert j["spec"]["parallelism"] == 4 and "completions" not in j["spec"]  # a work queue
    _, j = await _req(
        srv,
        "POST",
        jobs,
        job("idx", completionMode="Indexed", completions=2, backoffLimitPerIndex=1),
    )
    assert j["spec"]["backoffLimit"] == 2147483647
    manual = job("man", manualSelector=True, selector={"matchLabels": {"app": "x"}})
    manual["spec"]["template"]["metadata"] = {"labels": {"app": "x"}}
    _, j = await _req(srv, "POST", jobs, manual)
    assert j["spec"]["selector"] == {"matchLabels": {"app": "x"}}
    assert j["spec"]["template"]["metadata"]["labels"] == {"app": "x"}
    bad = job("always")
    bad["spec"]["template"]["spec"].pop("restartPolicy")
    code, out = await _req(srv, "POST", jobs, bad)
    assert code == 422
    assert 'spec.template.spec.restartPolicy: Unsupported value: "Always"' in out["message"]


async def test_kubectl_get_workload_columns(kapi: Pair, tmp_path: Path) -> None:
    srv, _ = kapi
    await _deployment(srv, tmp_path)
    rs = {
        "metadata": {"name": "web-1"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}]},
            },
        },
    }
    assert (await _req(srv, "POST", f"{APPS}/replicasets", rs))[0] == 201
    rc, _, err = await kubectl(srv, tmp_path, "apply", "-f", "-", stdin=DAEMONSET)
    assert rc == 0, err
    rc, _, err = await kubectl(srv, tmp_path, "create", "job", "once", "--image=busybox")
    assert rc == 0, err
    status = {
        "status": {
            "succeeded": 1,
            "startTime": "2026-01-01T00:00:00Z",
            "completionTime": "2026-01-01T00:00:42Z",
            "conditions": [{"type": "Complete", "status": "True"}],
        }
    }
    code, _ = await _req(
        srv,
        "PATCH",
        "/apis/batch/v1/namespaces/default/jobs/once/status",
        status,
        "application/merge-patch+json",
    )
    assert code == 200
    code, _ = await _req(
        srv,
        "PATCH",
        f"{APPS}/deployments/web/status",
        {"status": {"readyReplicas": 1, "updatedReplicas": 2, "availableReplicas": 1}},
        "application/merge-patch+json",
    )
    assert code == 200

    rc, out, err = await kubectl(srv, tmp_path, "get", "deploy,rs,ds,job")
    assert rc == 0, err
    blocks = [b.splitlines() for b in out.strip().split("\n\n")]
    heads = {b[1].split()[0]: (b[0].split(), b[1].split()) for b in blocks}
    assert heads["deployment.apps/web"] == (
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        ["deployment.apps/web", "1/2", "2", "1", heads["deployment.apps/web"][1][4]],
    )
    assert heads["replicaset.apps/web-1"][0] == ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
    assert heads["replicaset.apps/web-1"][1][1:4] == ["2", "0", "0"]
    assert heads["daemonset.apps/agent"][0] == [
        "NAME",
        "DESIRED",
        "CURRENT",
        "READY",
        "UP-TO-DATE",
        "AVAILABLE",
        "NODE",
        "SELECTOR",
        "AGE",
    ]
    assert heads["daemonset.apps/agent"][1][1:7] == [
        "0",
        "0",
        "0",
        "0",
        "0",
        "kubernetes.io/os=linux",
    ]
    assert heads["job.batch/once"][0] == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    assert heads["job.batch/once"][1][1:4] == ["Complete", "1/1", "42s"]

    rc, out, err = await kubectl(srv, tmp_path, "get", "deploy", "-o", "wide")
    assert rc == 0, err
    head, row = (line.split() for line in out.splitlines()[:2])
    assert head[5:] == ["CONTAINERS", "IMAGES", "SELECTOR"]
    assert row[5:] == ["nginx", "nginx:1.27", "app=web"]

    es = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": "web-abc"},
        "addressType": "IPv4",
        "ports": [{"port": 80, "protocol": "TCP"}],
        "endpoints": [{"addresses": [f"10.0.0.{i}"]} for i in range(1, 6)],
    }
    code, _ = await _req(
        srv, "POST", "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices", es
    )
    assert code == 201
    rc, out, err = await kubectl(srv, tmp_path, "get", "endpointslices")
    assert rc == 0, err
    head, row = out.splitlines()[:2]
    assert head.split() == ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
    assert "10.0.0.1,10.0.0.2,10.0.0.3 + 2 more..." in row
