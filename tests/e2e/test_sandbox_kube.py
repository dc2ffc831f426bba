"""Pods through the sandbox's Kubernetes API: scheduled, plugged by CNI, removed.

Acceptance for the kubelet and scheduler stand-ins, driven with the real
kubectl: a pod created without a node is bound, plugged by the configured
CNI chain (reference bridge + host-local), shows its IP, and deleting it
runs DEL and removes its netns.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import secrets
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from sandbox import cluster, netns
from sandbox.handle import SandboxHandle
from services.common.kube import KubeClient, connect
from tests.e2e.conftest import MakeSandbox

pytestmark = [pytest.mark.root, pytest.mark.slow]


def pod_yaml(name: str, *, node: str = "", host_network: bool = False) -> str:
    spec: dict[str, object] = {"containers": [{"name": "c", "image": "busybox"}]}
    if node:
        spec["nodeName"] = node
    if host_network:
        spec["hostNetwork"] = True
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": spec,
        }
    )


def create_ready(sbx: SandboxHandle, *names_yaml: tuple[str, str]) -> None:
    for _, y in names_yaml:
        sbx.kubectl("create", "-f", "-", input=y)
    pods = [f"pod/{n}" for n, _ in names_yaml]
    sbx.kubectl("wait", "--for=condition=Ready", *pods, "--timeout=30s")


def test_pod_scheduled_plugged_shown_and_deleted(sandbox: SandboxHandle) -> None:
    name = f"sbxt-web-{secrets.token_hex(2)}"
    create_ready(sandbox, (name, pod_yaml(name)))
    pod = json.loads(sandbox.kubectl("get", "pod", name, "-o", "json"))
    node = pod["spec"]["nodeName"]
    ip = pod["status"]["podIP"]
    assert node in {n.name for n in sandbox.node_layouts()}
    bridge = sandbox.layout.cni == "bridge"  # the suite also runs with KOVN_E2E_CNI=kovn
    if bridge:
        assert ipaddress.ip_address(ip) in ipaddress.ip_network(sandbox.layout.node(node).pod_cidr)
    assert pod["status"]["phase"] == "Running"
    wide = sandbox.kubectl("get", "pods", "-o", "wide")
    row = next(line for line in wide.splitlines() if line.startswith(name))
    assert ip in row and node in row and "Running" in row
    # The bridge plugin put the address on eth0 inside the pod's netns.
    pod_ns = sandbox.pod_netns("default", name)
    assert pod_ns is not None and netns.exists(pod_ns)
    addr = sandbox.exec("default", name, ["ip", "-o", "-4", "addr", "show", "eth0"]).stdout
    assert f"{ip}/" in addr

    sandbox.kubectl("delete", "pod", name, "--wait=true", "--timeout=30s")
    assert not netns.exists(pod_ns)
    assert sandbox.pod_netns("default", name) is None
    if bridge:
        # host-local released the address: DEL ran with the right container id.
        ipam_dir = sandbox.layout.node_dir(node) / "cni" / "host-local" / "kovn-sandbox"
        assert not (ipam_dir / ip).exists()
    assert sandbox.kubectl("get", "pods", "--no-headers").count(name) == 0


def test_pods_on_two_nodes_talk_and_host_network_pod_gets_node_ip(
    sandbox: SandboxHandle,
) -> None:
    tag = secrets.token_hex(2)
    n1, n2 = (n.name for n in sandbox.node_layouts()[:2])
    a, b, h = f"sbxt-a-{tag}", f"sbxt-b-{tag}", f"sbxt-h-{tag}"
    create_ready(
        sandbox,
        (a, pod_yaml(a, node=n1)),
        (b, pod_yaml(b, node=n2)),
        (h, pod_yaml(h, node=n2, host_network=True)),
    )
    try:
        ip_b = json.loads(sandbox.kubectl("get", "pod", b, "-o", "json"))["status"]["podIP"]
        ping = sandbox.exec("default", a, ["ping", "-c", "1", "-W", "2", ip_b], check=False)
        assert ping.returncode == 0, ping.stdout
        host = json.loads(sandbox.kubectl("get", "pod", h, "-o", "json"))
        assert host["status"]["podIP"] == sandbox.layout.node(n2).underlay_ip
        assert sandbox.pod_netns("default", h) == sandbox.layout.node(n2).netns
    finally:
        sandbox.kubectl("delete", "pod", a, b, h, "--wait=true", "--timeout=30s")
    # Deleting the hostNetwork pod must not touch the node's namespace.
    assert netns.exists(sandbox.layout.node(n2).netns)


RECORDER = """#!/usr/bin/env python3
# Records what a CNI plugin is given, then passes prevResult through.
import json, os, sys, time
conf = json.load(sys.stdin)
env = {k: v for k, v in os.environ.items() if k.startswith("CNI_")}
rec = os.path.join(os.path.dirname(os.path.realpath(__file__)), "calls")
os.makedirs(rec, exist_ok=True)
with open(os.path.join(rec, "%f-%s.json" % (time.time(), env["CNI_COMMAND"])), "w") as f:
    json.dump({"env": env, "conf": conf}, f)
if env["CNI_COMMAND"] == "ADD":
    json.dump(conf["prevResult"], sys.stdout)
"""


async def event_where(
    sbx: SandboxHandle, pod: str, wanted: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The first Event about `pod` that `wanted` accepts, as listed or as it
    is created or updated later (list, then watch from the list's version)."""
    kube = KubeClient(await connect(str(sbx.kubeconfig)))
    sel = {"fieldSelector": f"involvedObject.name={pod}"}
    try:
        listing = await kube.get("/api/v1/namespaces/default/events", query=sel)
        for item in listing["items"]:
            if wanted(item):
                found: dict[str, Any] = item
                return found
        rv = listing["metadata"]["resourceVersion"]
        async for ev in kube.watch(
            "/api/v1/namespaces/default/events",
            rv,
            timeout_seconds=None,
            bookmarks=False,
            query=sel,
        ):
            if ev["type"] in ("ADDED", "MODIFIED") and wanted(ev["object"]):
                obj: dict[str, Any] = ev["object"]
                return obj
        raise AssertionError("event watch ended")
    finally:
        await kube.close()


async def first_event(sbx: SandboxHandle, pod: str, reason: str) -> dict[str, Any]:
    return await event_where(sbx, pod, lambda e: e.get("reason") == reason)


def test_cni_called_as_containerd_does(make_sandbox: MakeSandbox) -> None:
    sbx = make_sandbox(1)
    node = sbx.node_layouts()[0].name
    bin_dir = sbx.layout.cni_bin_dir(node)
    recorder = bin_dir / "sbxt-recorder"
    recorder.write_text(RECORDER)
    recorder.chmod(recorder.stat().st_mode | stat.S_IXUSR)
    conf_file = sbx.layout.cni_conf_dir(node) / "10-bridge.conflist"
    conf = json.loads(conf_file.read_text())
    conf["plugins"].append({"type": "sbxt-recorder", "marker": 7})
    conf_file.write_text(json.dumps(conf))

    create_ready(sbx, ("rec", pod_yaml("rec")))
    pod = json.loads(sbx.kubectl("get", "pod", "rec", "-o", "json"))
    pod_ns = sbx.pod_netns("default", "rec")
    sbx.kubectl("delete", "pod", "rec", "--wait=true", "--timeout=30s")

    calls = [json.loads(p.read_text()) for p in sorted((bin_dir / "calls").glob("*.json"))]
    assert [c["env"]["CNI_COMMAND"] for c in calls] == ["ADD", "DEL", "DEL"]
    add, del1, del2 = calls
    cid = add["env"]["CNI_CONTAINERID"]
    assert len(cid) == 64
    args = dict(kv.split("=", 1) for kv in add["env"]["CNI_ARGS"].split(";"))
    assert args == {
        "IgnoreUnknown": "1",
        "K8S_POD_NAMESPACE": "default",
        "K8S_POD_NAME": "rec",
        "K8S_POD_INFRA_CONTAINER_ID": cid,
        "K8S_POD_UID": pod["metadata"]["uid"],
    }
    assert add["env"]["CNI_NETNS"] == f"/run/netns/{pod_ns}"
    assert add["env"]["CNI_IFNAME"] == "eth0"
    assert add["env"]["CNI_PATH"] == str(bin_dir)
    # libcni injects name/cniVersion and the previous plugin's result.
    assert add["conf"]["name"] == "kovn-sandbox" and add["conf"]["cniVersion"] == "1.0.0"
    assert add["conf"]["marker"] == 7
    assert add["conf"]["prevResult"]["ips"][0]["address"].startswith(pod["status"]["podIP"] + "/")
    # First DEL: with the netns and the cached result; second: neither.
    assert del1["env"]["CNI_NETNS"] == f"/run/netns/{pod_ns}"
    assert del1["conf"]["prevResult"] == add["conf"]["prevResult"]
    assert del2["env"]["CNI_NETNS"] == ""
    assert "prevResult" not in del2["conf"]
    assert {del1["env"]["CNI_CONTAINERID"], del2["env"]["CNI_CONTAINERID"]} == {cid}
    assert not list(sbx.layout.cni_cache_dir(node).iterdir())


async def test_cni_failure_gives_warning_event_then_retry_succeeds(
    make_sandbox: MakeSandbox,
) -> None:
    sbx = make_sandbox(1)
    node = sbx.node_layouts()[0].name
    conf_file = sbx.layout.cni_conf_dir(node) / "10-bridge.conflist"
    good = conf_file.read_text()
    bad = json.loads(good)
    bad["plugins"][0]["type"] = "sbxt-missing-plugin"
    conf_file.write_text(json.dumps(bad))

    sbx.kubectl("create", "-f", "-", input=pod_yaml("flaky"))
    # The Warning event is the kubelet's answer to the failed ADD.
    ev = await asyncio.wait_for(first_event(sbx, "flaky", "FailedCreatePodSandBox"), 20)
    assert ev["reason"] == "FailedCreatePodSandBox"
    assert ev["type"] == "Warning"
    assert "sbxt-missing-plugin" in ev["message"]
    # The retry fails the same way: the same Event is counted again, not repeated.
    again = await asyncio.wait_for(
        event_where(
            sbx, "flaky", lambda e: e.get("reason") == ev["reason"] and e.get("count", 1) >= 2
        ),
        20,
    )
    assert again["metadata"]["name"] == ev["metadata"]["name"]
    assert again["lastTimestamp"] >= ev["lastTimestamp"]
    listed = json.loads(sbx.kubectl("get", "events", "--field-selector",
                                    "involvedObject.name=flaky", "-o", "json"))  # fmt: skip
    assert [e["reason"] for e in listed["items"]].count("FailedCreatePodSandBox") == 1
    pod = json.loads(sbx.kubectl("get", "pod", "flaky", "-o", "json"))
    assert pod["status"].get("phase", "Pending") == "Pending"
    # Nothing of the failed attempt is left on the node.
    assert [n for n in netns.list_names(sbx.layout.pod_netns_prefix)] == []

    conf_file.write_text(good)
    sbx.kubectl("wait", "--for=condition=Ready", "pod/flaky", "--timeout=30s")
    sbx.kubectl("delete", "pod", "flaky", "--wait=true", "--timeout=30s")


def test_status_and_exec_cli(sandbox: SandboxHandle, capsys: pytest.CaptureFixture[str]) -> None:
    from sandbox import cli

    name = f"sbxt-st-{secrets.token_hex(2)}"
    create_ready(sandbox, (name, pod_yaml(name)))
    try:
        ip = json.loads(sandbox.kubectl("get", "pod", name, "-o", "json"))["status"]["podIP"]
        sd = str(sandbox.state_dir)
        capsys.readouterr()
        assert cli.main(["status", "--name", sandbox.name, "--state-dir", sd]) == 0
        out = capsys.readouterr().out
        row = next(line for line in out.splitlines() if name in line)
        assert ip in row and "Running" in row
        for n in sandbox.node_layouts():
            assert n.name in out and n.underlay_ip in out
        leases = json.loads(sandbox.kubectl("get", "leases", "-n", "kube-node-lease", "-o", "json"))
        holders = {x["spec"]["holderIdentity"] for x in leases["items"]}
        assert holders >= {n.name for n in sandbox.node_layouts()}
        assert cli.main(["kubeconfig", "--name", sandbox.name, "--state-dir", sd]) == 0
        assert capsys.readouterr().out.strip() == str(sandbox.kubeconfig)
        assert Path(sandbox.kubeconfig).is_file()
        assert cli.main(["exec", "--state-dir", sd, "default/nope", "--", "true"]) == 1
        assert "default/nope" in capsys.readouterr().err
        assert cli.main(["exec", "--state-dir", sd, "nowhere", "--", "true"]) == 1
        assert "unknown exec target 'nowhere'" in capsys.readouterr().err
        # What `exec NODE -- ovs-vsctl show` and `exec central -- ovn-nbctl show` run.
        node = sandbox.node_layouts()[0]
        ns, env = cli.exec_target(sandbox.layout, node.name)
        assert ns == node.netns
        res = netns.run(ns, ["ovs-vsctl", "br-exists", "br-phy"], env=env, check=False)
        assert res.returncode == 0, res.stderr
        ns, env = cli.exec_target(sandbox.layout, "central")
        assert "Chassis" in netns.run(ns, ["ovn-sbctl", "show"], env=env).stdout
    finally:
        sandbox.kubectl("delete", "pod", name, "--wait=true", "--timeout=30s")


def _pods_per_node(sbx: SandboxHandle) -> dict[str, int]:
    pods = json.loads(sbx.kubectl("get", "pods", "-o", "json"))["items"]
    counts = {n.name: 0 for n in sbx.node_layouts()}
    for p in pods:
        node = p["spec"].get("nodeName")
        if node in counts and not p["metadata"].get("deletionTimestamp"):
            counts[node] += 1
    return counts


async def test_scheduler_spreads_by_least_pods_and_honours_node_selector(
    sandbox: SandboxHandle,
) -> None:
    tag = secrets.token_hex(2)
    names = [f"sbxt-s{i}-{tag}" for i in range(6)]
    n2 = sandbox.node_layouts()[1].name
    pinned, stuck = f"sbxt-pin-{tag}", f"sbxt-stuck-{tag}"

    def with_selector(name: str, host: str) -> str:
        doc = json.loads(pod_yaml(name))
        doc["spec"]["nodeSelector"] = {"kubernetes.io/hostname": host}
        return json.dumps(doc)

    items = [json.loads(pod_yaml(n)) for n in names]
    try:
        # One kubectl call with all six documents: the scheduler sees a burst.
        sandbox.kubectl("create", "-f", "-", input=yaml.safe_dump_all(items))
        sandbox.kubectl("wait", "--for=condition=Ready", *[f"pod/{n}" for n in names],
                        "--timeout=30s")  # fmt: skip
        counts = _pods_per_node(sandbox)
        assert max(counts.values()) - min(counts.values()) <= 1, counts
        create_ready(sandbox, (pinned, with_selector(pinned, n2)))
        pod = json.loads(sandbox.kubectl("get", "pod", pinned, "-o", "json"))
        assert pod["spec"]["nodeName"] == n2
        sandbox.kubectl("create", "-f", "-", input=with_selector(stuck, "sbxt-no-such-node"))
        ev = await asyncio.wait_for(first_event(sandbox, stuck, "FailedScheduling"), 20)
        assert ev["reason"] == "FailedScheduling" and "nodeSelector" in ev["message"]
        pod = json.loads(sandbox.kubectl("get", "pod", stuck, "-o", "json"))
        assert not pod["spec"].get("nodeName")
    finally:
        sandbox.kubectl("delete", "pod", *names, pinned, stuck, "--ignore-not-found",
                        "--wait=true", "--timeout=30s")  # fmt: skip


def test_agents_restart_keeps_pods_and_cleans_up_deleted_ones(make_sandbox: MakeSandbox) -> None:
    sbx = make_sandbox(1)
    create_ready(sbx, ("keep", pod_yaml("keep")), ("forced", pod_yaml("forced")),
                 ("graceful", pod_yaml("graceful")))  # fmt: skip
    keep_ns, forced_ns = sbx.pod_netns("default", "keep"), sbx.pod_netns("default", "forced")
    graceful_ns = sbx.pod_netns("default", "graceful")
    assert keep_ns and forced_ns and graceful_ns
    keep_before = json.loads(sbx.kubectl("get", "pod", "keep", "-o", "json"))

    cluster.stop_agents(sbx.layout)
    # Removed from the API outright: no kubelet will ever see an event for it.
    sbx.kubectl("delete", "pod", "forced", "--force", "--grace-period=0")
    # Graceful: waits (deletionTimestamp set) for a kubelet to confirm.
    sbx.kubectl("delete", "pod", "graceful", "--wait=false")
    assert netns.exists(forced_ns) and netns.exists(graceful_ns)

    cluster.start_agents(sbx.layout)
    sbx.kubectl("wait", "--for=delete", "pod/graceful", "--timeout=30s")
    assert not netns.exists(graceful_ns)
    # The orphan has no event to wait on: poll its netns with a deadline.
    deadline = time.monotonic() + 20
    while netns.exists(forced_ns) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not netns.exists(forced_ns)
    # The running pod was adopted, not plugged again.
    assert sbx.pod_netns("default", "keep") == keep_ns and netns.exists(keep_ns)
    keep_after = json.loads(sbx.kubectl("get", "pod", "keep", "-o", "json"))
    assert keep_after["status"]["podIP"] == keep_before["status"]["podIP"]
    assert keep_after["metadata"]["resourceVersion"] == keep_before["metadata"]["resourceVersion"]
    with pytest.raises(cluster.SandboxError, match="already running"):
        cluster.start_agents(sbx.layout)


BARRIER = """#!/usr/bin/env python3
# ADD returns only once N ADDs are in flight together: a kubelet that
# plugged pods one at a time would never get there.
import json, os, sys, time
conf = json.load(sys.stdin)
if os.environ["CNI_COMMAND"] != "ADD":
    sys.exit(0)
d = os.path.join(os.path.dirname(os.path.realpath(__file__)), "inflight")
os.makedirs(d, exist_ok=True)
open(os.path.join(d, os.environ["CNI_CONTAINERID"]), "w").close()
deadline = time.monotonic() + 20
while len(os.listdir(d)) < conf["barrier"]:
    if time.monotonic() > deadline:
        print(json.dumps({"cniVersion": "1.0.0", "code": 11, "msg": "barrier not reached"}))
        sys.exit(1)
    time.sleep(0.01)
n = len(os.listdir(d))
print(json.dumps({"cniVersion": "1.0.0", "ips": [{"address": "10.99.0.%d/24" % (n % 250 + 1)}]}))
"""


def test_kubelet_plugs_many_pods_concurrently(make_sandbox: MakeSandbox) -> None:
    sbx = make_sandbox(1)
    node = sbx.node_layouts()[0].name
    count = 12
    plugin = sbx.layout.cni_bin_dir(node) / "sbxt-barrier"
    plugin.write_text(BARRIER)
    plugin.chmod(0o755)
    conf_dir = sbx.layout.cni_conf_dir(node)
    for old in conf_dir.iterdir():
        old.unlink()
    conf = {"cniVersion": "1.0.0", "name": "barrier",
            "plugins": [{"type": "sbxt-barrier", "barrier": count}]}  # fmt: skip
    (conf_dir / "10-barrier.conflist").write_text(json.dumps(conf))
    names = [f"burst{i}" for i in range(count)]
    sbx.kubectl("create", "-f", "-", input=yaml.safe_dump_all([json.loads(pod_yaml(n))
                                                                 for n in names]))  # fmt: skip
    sbx.kubectl("wait", "--for=condition=Ready", *[f"pod/{n}" for n in names], "--timeout=40s")
    assert len(list((sbx.layout.cni_bin_dir(node) / "inflight").iterdir())) == count
