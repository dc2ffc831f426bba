"""The dataplane's OVSDB work: bridge bootstrap, plugging and unplugging pod
ports, QoS rows, reading attachments back, waiting for ovn-installed.

Each operation is one OVSDB transaction built in the IDL thread
(`services.common.ovsdb`), so a port appears with all of its external_ids
and QoS at once, or not at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.common.ovsdb import Ovsdb
from services.dataplane import attachment as att
from services.dataplane.attachment import Attachment

TABLES: dict[str, list[str] | None] = {
    "Open_vSwitch": ["bridges", "external_ids", "other_config"],
    "Bridge": ["name", "ports", "datapath_type", "external_ids", "fail_mode", "other_config"],
    "Port": ["name", "interfaces", "external_ids", "qos"],
    "Interface": ["name", "type", "external_ids", "mac", "ofport", "error"],
    "QoS": ["type", "other_config", "queues", "external_ids"],
    "Queue": ["other_config", "external_ids"],
}


async def connect(remote: str, timeout: float) -> Ovsdb:
    return await Ovsdb.connect(remote, "Open_vSwitch", TABLES, timeout=timeout)


def _find(tables: Mapping[str, Any], table: str, name: str) -> Any:
    for row in tables[table].rows.values():
        if row.name == name:
            return row
    return None


def _root(tables: Mapping[str, Any]) -> Any:
    for row in tables["Open_vSwitch"].rows.values():
        return row
    return None


async def bootstrap(
    db: Ovsdb,
    *,
    bridge: str,
    datapath_type: str,
    external_ids: Mapping[str, str],
    other_config: Mapping[str, str],
) -> None:
    """br-int with its datapath type, and the Open_vSwitch keys ovn-controller reads."""

    def txn_fn(txn: Any, tables: Mapping[str, Any]) -> None:
        root = _root(tables)
        if root is None:
            # A database nobody initialised yet (no `ovs-vsctl init`). Rows
            # inserted in this transaction have no values to read back: set
            # whole columns.
            root = txn.insert(tables["Open_vSwitch"])
            root.external_ids = dict(external_ids)
            root.other_config = dict(other_config)
        else:
            for key, value in external_ids.items():
                if root.external_ids.get(key) != value:
                    root.setkey("external_ids", key, value)
            for key, value in other_config.items():
                if root.other_config.get(key) != value:
                    root.setkey("other_config", key, value)
        br = _find(tables, "Bridge", bridge)
        if br is None:
            iface = txn.insert(tables["Interface"])
            iface.name = bridge
            iface.type = "internal"
            port = txn.insert(tables["Port"])
            port.name = bridge
            port.interfaces = [iface]
            br = txn.insert(tables["Bridge"])
            br.name = bridge
            br.ports = [port]
            br.fail_mode = "secure"
            br.datapath_type = datapath_type
            br.other_config = {"disable-in-band": "true"}
            root.addvalue("bridges", br.uuid)
        elif br.datapath_type != datapath_type:
            br.datapath_type = datapath_type

    await db.transact(txn_fn)


async def bridge_exists(db: Ovsdb, bridge: str) -> bool:
    return bool(await db.read(lambda t: _find(t, "Bridge", bridge) is not None))


async def plug(
    db: Ovsdb,
    bridge: str,
    a: Attachment,
    *,
    ingress_rate_bps: int = 0,
    internal: bool = False,
    mac: str = "",
    timeout: float = 10.0,
) -> None:
    """Add the port and its Interface (external_ids, QoS) in one transaction."""

    def txn_fn(txn: Any, tables: Mapping[str, Any]) -> None:
        br = _find(tables, "Bridge", bridge)
        if br is None:
            raise LookupError(f"bridge {bridge} does not exist")
        if _find(tables, "Port", a.host_ifname) is not None:
            _remove_port(tables, br, a.host_ifname)
        iface = txn.insert(tables["Interface"])
        iface.name = a.host_ifname
        if internal:
            iface.type = "internal"
        if mac:
            iface.mac = [mac]
        iface.external_ids = a.external_ids()
        port = txn.insert(tables["Port"])
        port.name = a.host_ifname
        port.interfaces = [iface]
        if ingress_rate_bps:
            rate = str(ingress_rate_bps)
            queue = txn.insert(tables["Queue"])
            queue.other_config = {"max-rate": rate}
            queue.external_ids = {att.CONTAINER: a.container_id}
            qos = txn.insert(tables["QoS"])
            qos.type = "linux-htb"
            qos.other_config = {"max-rate": rate}
            qos.queues = {0: queue}
            qos.external_ids = {att.CONTAINER: a.container_id}
            port.qos = [qos]
        br.addvalue("ports", port.uuid)

    # Concurrent ADDs share transactions (group commit): each only adds its
    # own rows and mutates Bridge.ports.
    await db.transact(txn_fn, timeout=timeout, batch=True)


def _remove_port(tables: Mapping[str, Any], br: Any, name: str) -> bool:
    port = _find(tables, "Port", name)
    if port is None:
        return False
    for bridge in tables["Bridge"].rows.values():
        if port in bridge.ports:
            bridge.delvalue("ports", port.uuid)
    qoses = list(port.qos)
    if qoses:
        # Port is not a root table: the IDL leaves its removal to garbage
        # collection, which happens after the server checks references, so
        # the QoS row must be unreferenced explicitly before it is deleted.
        port.qos = []
        for qos in qoses:
            for queue in qos.queues.values():
                queue.delete()
            qos.delete()
    else:
        port.delete()
    return True


async def unplug(db: Ovsdb, names: list[str], *, timeout: float = 10.0) -> int:
    """Remove these ports (and their QoS rows); missing ones are fine."""

    def txn_fn(txn: Any, tables: Mapping[str, Any]) -> int:
        return sum(_remove_port(tables, None, name) for name in names)

    removed: int = await db.transact(txn_fn, timeout=timeout, batch=True)
    return removed


async def mark_acked(db: Ovsdb, host: str, *, timeout: float = 10.0) -> None:
    """Record that ADD answered success for this port (restart keeps only these)."""

    def txn_fn(txn: Any, tables: Mapping[str, Any]) -> None:
        iface = _find(tables, "Interface", host)
        if iface is None:
            raise LookupError(f"interface {host} vanished")
        iface.setkey("external_ids", att.ACKED, "true")

    await db.transact(txn_fn, timeout=timeout, batch=True)


async def attachments(db: Ovsdb) -> list[Attachment]:
    """Every kovn attachment recorded in this node's OVSDB."""

    def scan(tables: Mapping[str, Any]) -> list[Attachment]:
        out = []
        for iface in tables["Interface"].rows.values():
            found = Attachment.from_external_ids(iface.name, dict(iface.external_ids))
            if found is not None:
                out.append(found)
        return out

    found: list[Attachment] = await db.read(scan)
    return found


async def find_host(db: Ovsdb, host: str) -> Attachment | None:
    """The attachment recorded on the Interface named host, if any.

    ADD's lookup: only names are compared, so only one row's external_ids
    (which hold the whole CNI result) are converted and parsed.
    """

    def get(tables: Mapping[str, Any]) -> Attachment | None:
        iface = _find(tables, "Interface", host)
        if iface is None:
            return None
        return Attachment.from_external_ids(host, dict(iface.external_ids))

    result: Attachment | None = await db.read(get)
    return result


async def owner_of(db: Ovsdb, netns: str, ifname: str) -> str | None:
    """The container whose attachment put ifname into netns, if recorded."""

    def scan(tables: Mapping[str, Any]) -> str | None:
        for iface in tables["Interface"].rows.values():
            ids = iface.external_ids
            if ids.get(att.NETNS) == netns and ids.get(att.IFNAME) == ifname:
                return str(ids.get(att.CONTAINER, "")) or None
        return None

    result: str | None = await db.read(scan)
    return result


async def find(db: Ovsdb, container_id: str, ifname: str) -> Attachment | None:
    def scan(tables: Mapping[str, Any]) -> Attachment | None:
        for iface in tables["Interface"].rows.values():
            ids = iface.external_ids
            if ids.get(att.CONTAINER) == container_id and ids.get(att.IFNAME) == ifname:
                return Attachment.from_external_ids(iface.name, dict(ids))
        return None

    result: Attachment | None = await db.read(scan)
    return result


async def wait_installed(db: Ovsdb, host: str, timeout: float) -> None:
    """Return once ovn-controller set ovn-installed on the Interface; TimeoutError if not."""

    def match(row: Any) -> bool:
        return bool(row.name == host and row.external_ids.get(att.OVN_INSTALLED) == "true")

    await db.wait_for("Interface", match, timeout=timeout)


async def port_state(db: Ovsdb, host: str) -> dict[str, Any] | None:
    """Interface facts CHECK compares: external_ids, ofport, error; None if absent."""

    def get(tables: Mapping[str, Any]) -> dict[str, Any] | None:
        iface = _find(tables, "Interface", host)
        if iface is None or _find(tables, "Port", host) is None:
            return None
        return {
            "external_ids": dict(iface.external_ids),
            "ofport": list(iface.ofport),
            "error": list(iface.error),
        }

    result: dict[str, Any] | None = await db.read(get)
    return result


async def plug_internal(
    db: Ovsdb, bridge: str, name: str, mac: str, external_ids: Mapping[str, str]
) -> None:
    """An internal port (e.g. kovn0), replaced if it exists."""

    def txn_fn(txn: Any, tables: Mapping[str, Any]) -> None:
        br = _find(tables, "Bridge", bridge)
        if br is None:
            raise LookupError(f"bridge {bridge} does not exist")
        iface = _find(tables, "Interface", name)
        if iface is not None and _find(tables, "Port", name) is not None:
            if dict(iface.external_ids) == dict(external_ids) and list(iface.mac) == [mac]:
                return
            _remove_port(tables, br, name)
        iface = txn.insert(tables["Interface"])
        iface.name = name
        iface.type = "internal"
        if mac:
            iface.mac = [mac]
        iface.external_ids = dict(external_ids)
        port = txn.insert(tables["Port"])
        port.name = name
        port.interfaces = [iface]
        br.addvalue("ports", port.uuid)

    await db.transact(txn_fn)


async def wait_ofport(db: Ovsdb, name: str, timeout: float) -> int:
    """Wait until vswitchd gave the interface an OpenFlow port number."""

    def match(row: Any) -> int:
        if row.name == name and row.ofport and row.ofport[0] > 0:
            return int(row.ofport[0])
        return 0

    ofport: int = await db.wait_for("Interface", match, timeout=timeout)
    return ofport
