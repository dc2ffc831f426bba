"""The sandbox's network fabric carries real traffic between nodes over Geneve.

Acceptance for the sandbox: a logical switch made through the NB with one
port on each node carries ping and TCP between namespaces plugged on
different nodes, through the nodes' Geneve tunnel over the underlay.
"""

from __future__ import annotations

import re
import secrets
import subprocess
from collections.abc import Iterator

import pytest

from sandbox import attach, netns
from sandbox.handle import SandboxHandle
from tests.tcp_transfer import tcp_transfer

pytestmark = [pytest.mark.root, pytest.mark.slow]


def _tunnel_decap_packets(sbx: SandboxHandle, node: str) -> int:
    """Packets the node's datapath took out of Geneve (tnl_pop flows)."""
    flows = sbx.nodes[node].appctl("ovs-vswitchd", "dpctl/dump-flows")
    total = 0
    for line in flows.splitlines():
        m = re.search(r"packets:(\d+),.*actions:tnl_pop\(", line)
        if m:
            total += int(m.group(1))
    return total


@pytest.fixture
def two_ports(sandbox: SandboxHandle) -> Iterator[list[attach.Attachment]]:
    tag = secrets.token_hex(2)
    ls = f"sbxt-ls{tag}"
    n1, n2 = (n.name for n in sandbox.node_layouts()[:2])
    ports = [(f"sbxt-{tag}-a", "0a:00:00:5b:00:01", "10.98.0.1"),
             (f"sbxt-{tag}-b", "0a:00:00:5b:00:02", "10.98.0.2")]  # fmt: skip
    args = ["ls-add", ls]
    for lsp, mac, ip in ports:
        args += ["--", "lsp-add", ls, lsp, "--", "lsp-set-addresses", lsp, f"{mac} {ip}"]
    sandbox.central.nbctl(*args)
    made: list[tuple[str, attach.Attachment]] = []
    try:
        for node, (lsp, mac, ip) in zip((n1, n2), ports, strict=True):
            att = attach.plug(sandbox.nodes[node], f"{sandbox.name}-{lsp}", lsp, mac, f"{ip}/24")
            made.append((node, att))
        # Every chassis has the other's port binding before traffic starts.
        sandbox.central.nbctl("--wait=hv", "sync")
        yield [a for _, a in made]
    finally:
        for node, att in made:
            attach.unplug(sandbox.nodes[node], att)
        sandbox.central.nbctl("--if-exists", "ls-del", ls)


def test_ping_and_tcp_across_nodes_over_geneve(
    sandbox: SandboxHandle, two_ports: list[attach.Attachment]
) -> None:
    a, b = two_ports
    n2 = sandbox.node_layouts()[1].name
    # The first packet may go while the tunnel's next hop is being resolved.
    netns.run(a.netns, ["ping", "-c", "1", "-W", "2", b.ip], check=False)
    ping = netns.run(a.netns, ["ping", "-c", "3", "-i", "0.2", "-W", "2", b.ip], check=False)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert " 0% packet loss" in ping.stdout

    assert tcp_transfer(b.netns, a.netns, b.ip, 4_000_000)[0] == 4_000_000
    # The packets came in through node 2's Geneve tunnel, not some other path.
    assert _tunnel_decap_packets(sandbox, n2) > 100


def test_nodes_reach_central_and_external_host_on_the_underlay(sandbox: SandboxHandle) -> None:
    lay = sandbox.layout
    node = lay.nodes[0]
    for target in (lay.central_ip, lay.external_ip, lay.nodes[-1].underlay_ip):
        res = sandbox.node_exec(node.name, ["ping", "-c", "1", "-W", "2", target], check=False)
        assert res.returncode == 0, f"{node.name} -> {target}: {res.stdout}{res.stderr}"
    # Each node registered as a chassis with its underlay IP as Geneve endpoint.
    for n in lay.nodes:
        ip = sandbox.central.sbctl(
            "--bare", "--columns=ip", "find", "Encap", f"chassis_name={n.name}"
        )
        assert ip == n.underlay_ip
    # The underlay addresses exist only inside the sandbox's namespaces.
    root = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True).stdout
    assert lay.central_ip not in root
