"""Rows many parents share, through the owner-keyed sync, on a real NB.

Load balancers named by several switches, port groups naming ports and
holding their own ACLs, address sets: created, shared, updated and removed
by their owners, with no orphan and no dangling reference left, and a fresh
client's resync over them writing nothing.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.controller.nb.client import NbClient
from services.controller.nb.rows import DesiredRow
from services.controller.nb.sync import NbSync
from services.controller.nb.writer import NbWriter
from services.controller.subnet_spec import internal_subnet
from services.controller.topology import names
from services.controller.topology.ports import NicAddress, pod_port_row
from services.controller.topology.subnet import cluster_rows, subnet_rows
from tests.integration.controller.nbdb import nb_server, nbctl

POLICY = "policy/default/web"
SERVICE = "service/default/web"


@pytest.fixture
async def nb(tmp_path: Path) -> AsyncIterator[tuple[NbSync, str]]:
    with nb_server(tmp_path / "nb") as remote:
        client = NbClient(remote)
        await client.connect()
        writer = NbWriter(client)
        try:
            yield NbSync(client, writer), remote
        finally:
            await writer.stop()
            await client.close()


def _switch(name: str, cidr: str, lbs: list[str]) -> list[DesiredRow]:
    rows = subnet_rows(internal_subnet(name, cidr))
    switch = rows[0]
    rows[0] = DesiredRow(
        switch.table,
        switch.name,
        switch.owner,
        columns={**switch.columns, "load_balancer": lbs},
        labels=switch.labels,
    )
    return rows


def _pod(i: int, switch: str, prefix: str) -> DesiredRow:
    addr = NicAddress(f"0a:00:00:00:00:{i:02x}", (f"{prefix}.{i + 2}/24",))
    return pod_port_row("default", f"web{i}", "", switch, addr, "node1")


def _lb(vip: str) -> DesiredRow:
    return DesiredRow(
        "Load_Balancer",
        "kovn-lb-web-tcp",
        SERVICE,
        columns={"vips": {vip: "10.1.0.2:80,10.2.0.2:80"}, "protocol": "tcp"},
        parent=names.LB_GROUP,
    )


def _acl(name: str, priority: int, match: str, action: str) -> DesiredRow:
    """An ACL held by the policy's port group, not by a switch."""
    return DesiredRow(
        "ACL",
        name,
        POLICY,
        columns={
            "direction": "to-lport",
            "priority": priority,
            "match": f"outport == @kovn_web && {match}",
            "action": action,
        },
        parent="kovn_web",
        parent_table="Port_Group",
    )


def _policy(ports: list[str], allowed: list[str]) -> list[DesiredRow]:
    return [
        DesiredRow("Address_Set", "kovn_web_peers", POLICY, columns={"addresses": allowed}),
        DesiredRow("Port_Group", "kovn_web", POLICY, columns={"ports": ports}),
        _acl("web/allow-peers", 2001, "ip4.src == $kovn_web_peers", "allow-related"),
        _acl("web/deny", 2000, "ip4", "drop"),
    ]


def _rows(remote: str, table: str, column: str) -> list[str]:
    return nbctl(remote, "--bare", f"--columns={column}", "list", table).split()


def _json(remote: str, table: str, record: str, column: str) -> object:
    return json.loads(nbctl(remote, "--format=json", "get", table, record, column) or "null")


async def test_shared_rows_created_updated_removed_without_orphans(
    nb: tuple[NbSync, str], tmp_path: Path
) -> None:
    sync, remote = nb
    for row in cluster_rows():
        await sync.sync(row.owner, [row])
    lb = "kovn-lb-web-tcp"
    # The switches of two subnets name one load balancer; the LB exists first
    # or in the same batch: the client resolves names once every row exists.
    await sync.sync(SERVICE, [_lb("10.96.0.10:80")])
    await sync.sync("subnet/a", _switch("a", "10.1.0.0/24", [lb]))
    await sync.sync("subnet/b", _switch("b", "10.2.0.0/24", [lb]))
    for i in range(3):
        await sync.sync(names.pod_owner("default", f"web{i}"), [_pod(i, "a", "10.1.0")])
    ports = [names.pod_port_name("default", f"web{i}") for i in range(3)]
    await sync.sync(POLICY, _policy(ports[:2], ["10.2.0.0/24"]))

    lb_uuid = nbctl(remote, "--bare", "--columns=_uuid", "find", "Load_Balancer", f"name={lb}")
    for switch in ("a", "b"):
        assert nbctl(remote, "get", "Logical_Switch", switch, "load_balancer").strip() == (
            f"[{lb_uuid.strip()}]"
        )
    pg_ports = nbctl(remote, "--bare", "--columns=ports", "find", "Port_Group", "name=kovn_web")
    assert len(pg_ports.split()) == 2
    acl_matches = nbctl(remote, "--bare", "--columns=match", "list", "ACL")
    assert "@kovn_web" in acl_matches
    # The ACLs live in the port group, not in a switch.
    assert nbctl(remote, "get", "Logical_Switch", "a", "acls").strip() == "[]"
    assert len(_rows(remote, "ACL", "_uuid")) == 2

    group = nbctl(remote, "--bare", "--columns=load_balancer", "find", "Load_Balancer_Group",
                  f"name={names.LB_GROUP}")  # fmt: skip
    assert group.split() == [lb_uuid.strip()]
    # A fresh client over the same rows: a resync writes nothing.
    desired = [
        *cluster_rows(),
        _lb("10.96.0.10:80"),
        *_switch("a", "10.1.0.0/24", [lb]),
        *_switch("b", "10.2.0.0/24", [lb]),
        *(_pod(i, "a", "10.1.0") for i in range(3)),
        *_policy(ports[:2], ["10.2.0.0/24"]),
    ]
    fresh_client = NbClient(remote)
    await fresh_client.connect()
    fresh = NbSync(fresh_client, NbWriter(fresh_client))
    try:
        result = await fresh.resync(desired)
        assert (result.ensured, result.removed, result.written) == (0, 0, 0)
    finally:
        await fresh.writer.stop()
        await fresh_client.close()

    # Updates: the group gains a port and drops an ACL; the LB moves its VIP.
    policy = _policy(ports, ["10.2.0.0/24", "10.3.0.0/24"])
    await sync.sync(POLICY, policy[:-1])
    await sync.sync(SERVICE, [_lb("10.96.0.11:80")])
    assert len(nbctl(remote, "--bare", "--columns=ports", "find", "Port_Group",
                     "name=kovn_web").split()) == 3  # fmt: skip
    assert _rows(remote, "ACL", "priority") == ["2001"]
    assert "10.96.0.11:80" in nbctl(remote, "get", "Load_Balancer", lb_uuid.strip(), "vips")
    # A pod that goes takes its port out of the group (a weak reference).
    await sync.remove(names.pod_owner("default", "web2"))
    assert len(nbctl(remote, "--bare", "--columns=ports", "find", "Port_Group",
                     "name=kovn_web").split()) == 2  # fmt: skip

    # Removal: the service's LB goes while switch b still names it; the
    # switch's reference goes with it instead of blocking the transaction.
    await sync.remove(SERVICE)
    assert _rows(remote, "Load_Balancer", "_uuid") == []
    assert (
        nbctl(remote, "--bare", "--columns=load_balancer", "list", "Load_Balancer_Group").strip()
        == ""
    )
    for switch in ("a", "b"):
        assert nbctl(remote, "get", "Logical_Switch", switch, "load_balancer").strip() == "[]"
    await sync.remove(POLICY)
    for table in ("Port_Group", "Address_Set", "ACL"):
        assert _rows(remote, table, "_uuid") == [], table
    for owner in ("subnet/a", "subnet/b", *(names.pod_owner("default", f"web{i}") for i in (0, 1))):
        await sync.remove(owner)
    assert _rows(remote, "Logical_Switch", "name") == []
    assert _rows(remote, "Logical_Switch_Port", "name") == []
    assert _rows(remote, "Logical_Router_Port", "name") == []
    assert len(sync) == 2  # only the router and the LB group are left, and known
    assert _rows(remote, "Logical_Router", "name") == [names.CLUSTER_ROUTER]
    assert _rows(remote, "Load_Balancer_Group", "name") == [names.LB_GROUP]
