"""kovn services restarted (killed) in the middle of pod churn.

For each of ipam, the controller and a node's dataplane: pods are being
created and deleted when the service is SIGKILLed and started again. Then:
every new pod is served, no address is held twice (API, OVN NB and the ipam
store agree), no port is left for a pod that is gone (node OVSDB, NB), and
two pods that were running all along kept talking: a continuous ping
(50 ms interval) between them never misses two answers in a row. The
"none" case is the same churn without a restart, as the baseline: churn
alone costs an isolated tunnelled packet now and then (see below).
"""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from sandbox import components
from services.api.ipam.v1 import ipam_pb2, ipam_pb2_grpc
from tests.e2e.kovn_env import ContinuousPing, KovnEnv, kovn_sandbox, wait_until

pytestmark = [pytest.mark.root, pytest.mark.slow]

NS = "e2e-churn"
CHURN = 12


@pytest.fixture(scope="module")
def kovn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KovnEnv]:
    with kovn_sandbox(tmp_path_factory.mktemp("kovn") / "state", cooldown=1.0) as env:
        env.namespace(NS)
        n1, n2 = env.nodes[:2]
        env.pod(NS, "anchor-a", n1)
        env.pod(NS, "anchor-b", n2)
        env.wait_ready(NS, "anchor-a", "anchor-b")
        yield env


def _ipam_allocations(env: KovnEnv) -> list[ipam_pb2.Allocation]:
    with grpc.insecure_channel(f"unix:{components.ipam_socket(env.lay)}") as ch:
        stub = ipam_pb2_grpc.IpamStub(ch)  # type: ignore[no-untyped-call]
        reply = stub.ListAllocations(ipam_pb2.ListAllocationsRequest(page_size=5000), timeout=10)
    return list(reply.allocations)


def _live_pods(env: KovnEnv) -> list[dict[str, Any]]:
    return [p for p in env.pods(NS) if not p["metadata"].get("deletionTimestamp")]


def _settled(env: KovnEnv) -> bool:
    """NB, node ports and ipam hold exactly the live pods (deletes are asynchronous)."""
    live = {f"{p['metadata']['name']}.{NS}" for p in env.pods(NS)}
    nb = {k for k in env.nb_pod_ports() if k.endswith(f".{NS}")}
    on_nodes = {k for node in env.nodes for k in env.node_ports(node) if k.endswith(f".{NS}")}
    owners = {f"{a.owner.pod}.{NS}" for a in _ipam_allocations(env) if a.owner.namespace == NS}
    return nb == live and on_nodes == live and owners == live


@pytest.mark.parametrize("service", ["none", "ipam", "controller", "dataplane"])
def test_restart_during_churn_keeps_addresses_ports_and_traffic(
    kovn: KovnEnv, service: str
) -> None:
    n1, n2 = kovn.nodes[:2]
    name = components.dataplane_name(kovn.lay.node(n1)) if service == "dataplane" else service
    old = [str(p["metadata"]["name"]) for p in _live_pods(kovn)]
    old = [p for p in old if p.startswith("churn-")]
    new = [f"churn-{service}-{i}" for i in range(CHURN)]
    ping = ContinuousPing(kovn.pod_netns(NS, "anchor-a"), kovn.pod_ip(NS, "anchor-b"))
    try:
        kovn.apply(*(kovn.pod_obj(NS, p, (n1, n2)[i % 2]) for i, p in enumerate(new)))
        if old:
            kovn.delete_pods(NS, *old, wait=False)
        # The crash lands once the first new pod is served, while the others
        # are being set up and the old ones torn down.
        wait_until(
            lambda: any(p["metadata"]["name"] in new and p.get("status", {}).get("podIP")
                        for p in kovn.pods(NS)),
            timeout=30, what="a first new pod served",
        )  # fmt: skip
        if service != "none":
            components.restart(kovn.lay, name, sig=signal.SIGKILL)
            assert components.health(kovn.lay)[name] in ("SERVING", "NOT_SERVING")
        kovn.wait_ready(NS, *new, timeout=60)
        wait_until(lambda: _settled(kovn), timeout=60, what="NB, nodes and ipam match the pods")
        answered, lost = ping.stop()
    finally:
        ping.kill()
    assert answered > 20
    # Any link change in a node's netns (a pod's veth created or deleted)
    # makes the userspace datapath re-read the kernel routes it uses for
    # Geneve; a tunnelled packet met in that gap is dropped ("native tunnel
    # routing failed"), about 1 per 100 link changes, with or without kovn
    # (measured with plain ovs-vsctl and veths). Churn creates link changes in
    # bursts, so even the "none" case can lose one packet, or two in a row
    # (seen once in an ipam restart, which never touches the datapath). What
    # a restart must not cause is an outage: three losses in a row (150 ms),
    # or more than the odd few.
    outages = [a for a, b, c in zip(lost, lost[1:], lost[2:], strict=False) if c == a + 2]
    assert not outages and len(lost) <= 3, f"anchor ping: no answer to {lost} ({service} restart)"
    # No address held twice: in the API, in the NB and in the ipam store.
    ips = [str(p["status"]["podIP"]) for p in _live_pods(kovn)]
    assert len(ips) == len(set(ips)), Counter(ips).most_common(3)
    nb_ips = [a.split()[1] for k, a in kovn.nb_pod_ports().items() if len(a.split()) > 1]
    assert len(nb_ips) == len(set(nb_ips)), Counter(nb_ips).most_common(3)
    store_ips = [ad.ip for a in _ipam_allocations(kovn) for ad in a.addresses]
    assert len(store_ips) == len(set(store_ips)), Counter(store_ips).most_common(3)
    assert set(ips) <= set(store_ips)
    # The new pods talk, across nodes, once the service is back.
    a_ns = kovn.pod_netns(NS, new[0])
    assert kovn.ping(a_ns, kovn.pod_ip(NS, new[1]))
    assert set(components.health(kovn.lay).values()) == {"SERVING"}
