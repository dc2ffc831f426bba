"""Pods' containers as processes in the sandbox: what kubelet does, seen through kubectl.

Acceptance for sandbox.runtime: a busybox httpd in one pod answers wget
from another pod (kubectl exec), logs (tail, previous), env from the
downward API, init containers in order, restart policies with restart
counts and CrashLoopBackOff, readiness probes flipping Ready both ways in
time, deletion ending every process of the pod (checked in /proc), and the
pod's own resolv.conf while the host's stays as it was.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.handle import SandboxHandle
from sandbox.runtime import process

pytestmark = [pytest.mark.root, pytest.mark.slow]

BUSYBOX = "/bin/busybox"


def pod(name: str, containers: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": containers, **spec},
    }


def sh(name: str, script: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": "busybox", "command": ["/bin/sh", "-c", script], **extra}


class Pods:
    """Creates pods in the session sandbox and deletes them all afterwards."""

    def __init__(self, sbx: SandboxHandle) -> None:
        self.sbx = sbx
        self.tag = secrets.token_hex(2)
        self.names: list[str] = []

    def name(self, base: str) -> str:
        return f"sbxt-{base}-{self.tag}"

    def create(self, *objs: dict[str, Any]) -> None:
        self.names += [o["metadata"]["name"] for o in objs]
        doc = {"apiVersion": "v1", "kind": "List", "items": list(objs)}
        self.sbx.kubectl("create", "--validate=false", "-f", "-", input=json.dumps(doc))

    def get(self, name: str) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(self.sbx.kubectl("get", "pod", name, "-o", "json"))
        return out

    def wait(self, name: str, cond: str, timeout: float = 30) -> None:
        self.sbx.kubectl("wait", f"--for={cond}", f"pod/{name}", f"--timeout={timeout:g}s")

    def until(self, name: str, pred: Any, timeout: float = 30, what: str = "") -> dict[str, Any]:
        """Poll the pod with a deadline (for conditions kubectl wait cannot express)."""
        deadline = time.monotonic() + timeout
        while True:
            p = self.get(name)
            if pred(p):
                return p
            if time.monotonic() > deadline:
                raise AssertionError(f"{name}: {what or 'condition'} not reached: {p['status']}")
            time.sleep(0.2)

    def exec(self, name: str, *cmd: str, check: bool = True, input: str | None = None) -> str:
        args = ["exec", *(["-i"] if input is not None else []), name, "--", *cmd]
        return self.sbx.kubectl(*args, check=check, input=input)

    def cleanup(self) -> None:
        if self.names:
            self.sbx.kubectl("delete", "pod", *self.names, "--ignore-not-found",
                             "--wait=true", "--timeout=60s")  # fmt: skip


@pytest.fixture
def pods(sandbox: SandboxHandle) -> Iterator[Pods]:
    p = Pods(sandbox)
    try:
        yield p
    finally:
        p.cleanup()


def live_with(marker: str) -> list[int]:
    """Live (non-zombie) processes whose command line contains marker."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmd and process.start_ticks(int(entry.name)) is not None:
            found.append(int(entry.name))
    return found


def test_httpd_answers_wget_from_another_pod(pods: Pods, tmp_path: Path) -> None:
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text(f"hello {pods.tag}\n")
    n1, n2 = (n.name for n in pods.sbx.node_layouts()[:2])
    web, client = pods.name("web"), pods.name("client")
    httpd = {
        "name": "httpd",
        "image": "busybox",
        "command": [BUSYBOX, "httpd", "-f", "-p", "80", "-h", str(www)],
        "ports": [{"name": "http", "containerPort": 80}],
        "readinessProbe": {"httpGet": {"path": "/index.html", "port": "http"}, "periodSeconds": 1},
    }
    pods.create(
        pod(web, [httpd], nodeName=n1), pod(client, [sh("c", "sleep infinity")], nodeName=n2)
    )
    pods.wait(web, "condition=Ready")
    pods.wait(client, "condition=Ready")
    ip = pods.get(web)["status"]["podIP"]
    assert pods.exec(client, "wget", "-qO-", f"http://{ip}/") == f"hello {pods.tag}\n"
    st = pods.get(web)["status"]["containerStatuses"][0]
    assert st["ready"] and st["started"] and "running" in st["state"]
    assert st["containerID"].startswith("kovn-sandbox://") and st["restartCount"] == 0


def test_logs_tail_and_exec_status(pods: Pods) -> None:
    name = pods.name("logs")
    script = "for i in 1 2 3; do echo out$i; done; echo err1 >&2; exec sleep infinity"
    pods.create(pod(name, [sh("c", script)]))
    pods.wait(name, "condition=Ready")
    deadline = time.monotonic() + 10
    while "err1" not in (out := pods.sbx.kubectl("logs", name)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert out.split() == ["out1", "out2", "out3", "err1"]
    assert pods.sbx.kubectl("logs", name, "-c", "c", "--tail", "2").split() == ["out3", "err1"]
    assert pods.exec(name, "cat", input="via stdin\n") == "via stdin\n"
    res = subprocess.run(
        ["kubectl", f"--kubeconfig={pods.sbx.kubeconfig}", "exec", name, "--", "sh", "-c",
         "echo to-stderr >&2; exit 7"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode == 7 and res.stderr.startswith("to-stderr\n"), res


def test_env_from_field_refs(pods: Pods) -> None:
    name = pods.name("env")
    fields = {
        "POD_NAME": "metadata.name",
        "POD_NS": "metadata.namespace",
        "POD_UID": "metadata.uid",
        "POD_IP": "status.podIP",
        "NODE": "spec.nodeName",
        "HOST_IP": "status.hostIP",
    }
    env = [{"name": k, "valueFrom": {"fieldRef": {"fieldPath": v}}} for k, v in fields.items()]
    env += [{"name": "PLAIN", "value": "x-$(POD_NAME)"}]
    pods.create(pod(name, [sh("c", "exec sleep infinity", env=env, workingDir="/tmp")]))
    pods.wait(name, "condition=Ready")
    p = pods.get(name)
    seen = dict(line.split("=", 1) for line in pods.exec(name, "env").splitlines() if "=" in line)
    assert seen["POD_NAME"] == name and seen["POD_NS"] == "default"
    assert seen["POD_UID"] == p["metadata"]["uid"]
    assert seen["POD_IP"] == p["status"]["podIP"]
    assert seen["NODE"] == p["spec"]["nodeName"]
    assert seen["HOST_IP"] == p["status"]["hostIP"]
    assert seen["PLAIN"] == f"x-{name}"
    assert pods.exec(name, "pwd").strip() == "/tmp"


def test_init_containers_run_first_in_order(pods: Pods, tmp_path: Path) -> None:
    name = pods.name("init")
    trail = tmp_path / "trail"
    inits = [sh(f"init{i}", f"echo init{i} >> {trail}; sleep 0.2") for i in (1, 2)]
    app = sh("app", f"echo app >> {trail}; exec sleep infinity")
    pods.create(pod(name, [app], initContainers=inits))
    pods.wait(name, "condition=Ready")
    # Ready comes with the app's start; its first line follows.
    deadline = time.monotonic() + 10
    while len(trail.read_text().split()) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert trail.read_text().split() == ["init1", "init2", "app"]
    st = pods.get(name)["status"]
    assert [s["state"]["terminated"]["reason"] for s in st["initContainerStatuses"]] == [
        "Completed",
        "Completed",
    ]
    conds = {c["type"]: c["status"] for c in st["conditions"]}
    assert conds["Initialized"] == "True" and st["phase"] == "Running"


def test_restart_policies_and_restart_count(pods: Pods) -> None:
    always, never, onfail = pods.name("always"), pods.name("never"), pods.name("onfail")
    pods.create(
        pod(always, [sh("c", "echo run; exit 1")], restartPolicy="Always"),
        pod(never, [sh("c", "exit 3")], restartPolicy="Never"),
        pod(onfail, [sh("c", "exit 0")], restartPolicy="OnFailure"),
    )
    pods.wait(never, "jsonpath={.status.phase}=Failed")
    pods.wait(onfail, "jsonpath={.status.phase}=Succeeded")
    st = pods.get(never)["status"]["containerStatuses"][0]
    assert st["state"]["terminated"]["exitCode"] == 3 and st["restartCount"] == 0
    assert st["state"]["terminated"]["reason"] == "Error"
    st = pods.get(onfail)["status"]["containerStatuses"][0]
    assert st["state"]["terminated"]["reason"] == "Completed" and st["restartCount"] == 0

    def crashlooping(p: dict[str, Any]) -> bool:
        s = p["status"].get("containerStatuses", [{}])[0]
        waiting = s.get("state", {}).get("waiting", {})
        return bool(s.get("restartCount", 0) >= 2 and waiting.get("reason") == "CrashLoopBackOff")

    p = pods.until(always, crashlooping, what="CrashLoopBackOff with 2 restarts")
    s = p["status"]["containerStatuses"][0]
    assert s["lastState"]["terminated"]["exitCode"] == 1
    assert p["status"]["phase"] == "Running"
    assert pods.sbx.kubectl("logs", always, "--previous").strip() == "run"


def test_readiness_probe_takes_pod_out_of_ready_and_back(pods: Pods, tmp_path: Path) -> None:
    name = pods.name("ready")
    flag = tmp_path / "ready"
    flag.touch()
    probe = {"exec": {"command": ["test", "-f", str(flag)]}, "periodSeconds": 1,
             "failureThreshold": 2}  # fmt: skip
    pods.create(pod(name, [sh("c", "exec sleep infinity", readinessProbe=probe)]))
    pods.wait(name, "condition=Ready")
    # period x threshold + 1 s, as the kubelet promises; kubectl wait watches.
    budget = 1 * 2 + 1
    flag.unlink()
    t0 = time.monotonic()
    pods.wait(name, "condition=Ready=false", timeout=budget)
    assert time.monotonic() - t0 <= budget + 0.5
    flag.touch()
    pods.wait(name, "condition=Ready", timeout=budget)
    st = pods.get(name)["status"]
    assert {c["type"]: c["status"] for c in st["conditions"]}["ContainersReady"] == "True"


def test_readiness_gate_holds_ready(pods: Pods) -> None:
    name = pods.name("gate")
    gate = "kovn.io/sbxt-gate"
    pods.create(pod(name, [sh("c", "exec sleep infinity")],
                    readinessGates=[{"conditionType": gate}]))  # fmt: skip
    pods.wait(name, "condition=ContainersReady")
    p = pods.get(name)
    ready = {c["type"]: c for c in p["status"]["conditions"]}["Ready"]
    assert ready["status"] == "False" and ready["reason"] == "ReadinessGatesNotReady"
    patch = {"status": {"conditions": [{"type": gate, "status": "True"}]}}
    pods.sbx.kubectl("patch", "pod", name, "--subresource=status", "--type=strategic",
                     "-p", json.dumps(patch))  # fmt: skip
    pods.wait(name, "condition=Ready")


def test_delete_ends_every_process_of_the_pod(pods: Pods) -> None:
    name = pods.name("del")
    marker = str(4_000_000 + secrets.randbelow(1_000_000))
    # The container ignores SIGTERM: SIGKILL must follow after the grace period.
    script = f"trap '' TERM; sleep {marker}1 & sleep {marker}2 & wait"
    pods.create(pod(name, [sh("c", script)], terminationGracePeriodSeconds=2))
    pods.wait(name, "condition=Ready")
    deadline = time.monotonic() + 10
    while len(live_with(marker)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(live_with(marker)) == 3  # sh and both sleeps
    t0 = time.monotonic()
    pods.sbx.kubectl("delete", "pod", name, "--wait=true", "--timeout=30s")
    assert time.monotonic() - t0 >= 1.5  # the grace period was waited for
    assert live_with(marker) == []


def test_pod_has_its_own_resolv_conf(pods: Pods) -> None:
    host_before = Path("/etc/resolv.conf").read_bytes()
    created = False
    svc = json.loads(pods.sbx.kubectl("get", "service", "-n", "kube-system", "-o", "json"))
    dns = next((s for s in svc["items"] if s["metadata"]["name"] == "kube-dns"), None)
    if dns is None:
        body = {"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "kube-dns", "namespace": "kube-system"},
                "spec": {"ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]}}  # fmt: skip
        pods.sbx.kubectl("create", "-f", "-", input=json.dumps(body))
        created = True
    try:
        dns_ip = json.loads(
            pods.sbx.kubectl("get", "service", "-n", "kube-system", "kube-dns", "-o", "json")
        )["spec"]["clusterIP"]
        first, none, default = pods.name("dns"), pods.name("dnsnone"), pods.name("dnsdef")
        cfg = {"nameservers": ["192.0.2.53"], "searches": ["example.test"],
               "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}  # fmt: skip
        idle = [sh("c", "exec sleep infinity")]
        pods.create(pod(first, idle), pod(none, idle, dnsPolicy="None", dnsConfig=cfg),
                    pod(default, idle, dnsPolicy="Default"))  # fmt: skip
        for n in (first, none, default):
            pods.wait(n, "condition=Ready")
        got = pods.exec(first, "cat", "/etc/resolv.conf")
        assert got.splitlines()[0] == f"nameserver {dns_ip}"
        assert "search default.svc.cluster.local svc.cluster.local cluster.local" in got
        assert "options ndots:5" in got.splitlines()
        assert pods.exec(none, "cat", "/etc/resolv.conf") == (
            "nameserver 192.0.2.53\nsearch example.test\noptions ndots:2 edns0\n"
        )
        host = Path("/etc/resolv.conf").read_text()
        assert pods.exec(default, "cat", "/etc/resolv.conf").split() == [
            w for line in host.splitlines() if not line.startswith("#") for w in line.split()
        ]
        assert Path("/etc/resolv.conf").read_bytes() == host_before
    finally:
        if created:
            pods.sbx.kubectl("delete", "service", "-n", "kube-system", "kube-dns")
    assert Path("/etc/resolv.conf").read_bytes() == host_before


def test_liveness_failure_restarts_the_container(pods: Pods, tmp_path: Path) -> None:
    name = pods.name("live")
    flag = tmp_path / "alive"
    flag.touch()
    probe = {"exec": {"command": ["test", "-f", str(flag)]}, "periodSeconds": 1,
             "failureThreshold": 1}  # fmt: skip
    pods.create(pod(name, [sh("c", "echo started; exec sleep infinity", livenessProbe=probe)]))
    pods.wait(name, "condition=Ready")
    flag.unlink()
    p = pods.until(name, lambda p: p["status"]["containerStatuses"][0]["restartCount"] >= 1,
                   what="a restart after the liveness probe failed")  # fmt: skip
    last = p["status"]["containerStatuses"][0]["lastState"]["terminated"]
    assert last["exitCode"] == 128 + 15  # SIGTERM ended it
    flag.touch()  # healthy again: it stays up
    pods.wait(name, "condition=Ready")
    events = pods.sbx.kubectl("get", "events", "--field-selector",
                              f"involvedObject.name={name}", "-o", "json")  # fmt: skip
    reasons = {e["reason"] for e in json.loads(events)["items"]}
    assert {"Unhealthy", "Killing"} <= reasons


def test_logs_follow_ends_with_the_container(pods: Pods) -> None:
    name = pods.name("follow")
    pods.create(pod(name, [sh("c", "echo a; sleep 1; echo b")], restartPolicy="Never"))
    pods.wait(name, "jsonpath={.status.containerStatuses[0].state.running}")
    assert pods.sbx.kubectl("logs", "-f", name).split() == ["a", "b"]
    pods.wait(name, "jsonpath={.status.phase}=Succeeded")


def test_the_first_steps_people_type(pods: Pods, tmp_path: Path) -> None:
    """`kubectl create deployment web --image=busybox --replicas=3 -- httpd ...`
    exactly as typed: busybox's applets are on a busybox container's PATH,
    the pods spread over both nodes, `kubectl scale` moves them, and a
    command killed by a signal reports 128 + signal as a runtime does."""
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text(f"first steps {pods.tag}\n")
    web, client = pods.name("web"), pods.name("client")
    sbx = pods.sbx
    sbx.kubectl("create", "deployment", web, "--image=busybox", "--replicas=3",
                "--", "httpd", "-f", "-p", "80", "-h", str(www))  # fmt: skip
    try:
        sbx.kubectl("rollout", "status", f"deployment/{web}", "--timeout=60s")
        listing = json.loads(sbx.kubectl("get", "pods", "-l", f"app={web}", "-o", "json"))
        running = [p for p in listing["items"] if p["status"].get("phase") == "Running"]
        assert len(running) == 3
        assert len({p["spec"]["nodeName"] for p in running}) == 2, "not spread over both nodes"
        pods.create(pod(client, [sh("c", "sleep infinity")]))
        pods.wait(client, "condition=Ready")
        for p in running:
            got = pods.exec(client, "busybox", "wget", "-qO-", f"http://{p['status']['podIP']}/")
            assert got == f"first steps {pods.tag}\n"
        for replicas in (5, 1):
            sbx.kubectl("scale", f"deployment/{web}", f"--replicas={replicas}")
            sbx.kubectl("rollout", "status", f"deployment/{web}", "--timeout=60s")
            deploy = json.loads(sbx.kubectl("get", "deployment", web, "-o", "json"))
            assert deploy["status"]["readyReplicas"] == replicas
        res = subprocess.run(
            ["kubectl", f"--kubeconfig={sbx.kubeconfig}", "exec", client, "--",
             "busybox", "sh", "-c", "kill -SEGV $$"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert res.returncode == 139, res.stderr
        assert "exit code 139" in res.stderr
    finally:
        sbx.kubectl("delete", "deployment", web, "--ignore-not-found", "--wait=true")
