"""A connection to the OVN Northbound database through ovsdbapp's IDL.

ovsdbapp keeps one IDL replica and commits one transaction at a time on its
own thread; this module runs kovn's two operations on that thread, so they
see a consistent replica: `snapshot` (the rows kovn owns) and `apply` (create,
fix or remove many rows in ONE transaction). Both are awaited from asyncio
through a worker thread.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ovsdbapp.backend.ovs_idl import command, connection, idlutils
from ovsdbapp.schema.ovn_northbound import impl_idl

from services.controller.nb.rows import (
    HASH_KEY,
    MANAGED_COLUMNS,
    NAME_KEY,
    NAMED_IN_IDS,
    OWNER_KEY,
    PARENT_COLUMN,
    PARENT_KEY,
    DesiredRow,
    OwnedRow,
    RowKey,
    row_digest,
)

_STAMPS = (OWNER_KEY, HASH_KEY, PARENT_KEY, NAME_KEY)


def row_name(table: str, row: Any) -> str:
    """kovn's name of a row: its `name`, or the one kept in external_ids."""
    if table in NAMED_IN_IDS:
        return str(row.external_ids.get(NAME_KEY, ""))
    return str(row.name)


def _actual_parent(table: str, row: Any, parents: dict[str, dict[Any, str]]) -> str:
    """Name of the row that really holds `row` (not what its stamp claims)."""
    if table not in PARENT_COLUMN:
        return ""
    return parents[table].get(row.uuid, "")


def _parent_index(api: Any) -> dict[str, dict[Any, str]]:
    index: dict[str, dict[Any, str]] = {}
    for child, (parent_table, column) in PARENT_COLUMN.items():
        holders: dict[Any, str] = {}
        for holder in api.tables[parent_table].rows.values():
            for member in getattr(holder, column):
                holders[member.uuid] = row_name(parent_table, holder)
        index[child] = holders
    return index


def actual_digest(table: str, row: Any, parent: str) -> str:
    """The digest `row` would have if kovn had written its current content."""
    ids = dict(row.external_ids)
    columns = {}
    for column, empty in MANAGED_COLUMNS[table].items():
        value = getattr(row, column)
        if isinstance(empty, list):
            value = list(value)
        elif isinstance(empty, dict):
            value = dict(value)
        elif isinstance(value, list):  # optional scalar columns come back as lists
            value = value[0] if value else empty
        columns[column] = value
    labels = {k: v for k, v in ids.items() if k not in _STAMPS}
    return row_digest(table, row_name(table, row), ids.get(OWNER_KEY, ""), parent, columns, labels)


#: The columns kovn reads or writes, per table. Monitoring only these keeps
#: the replica (and the initial download at start-up) small.
COLUMNS: dict[str, list[str]] = {
    "Logical_Switch": ["name", "ports", "acls", "external_ids"],
    "Logical_Switch_Port": ["name", "type", "addresses", "port_security", "options",
                            "external_ids"],
    "Logical_Router": ["name", "ports", "policies", "static_routes", "external_ids"],
    "Logical_Router_Port": ["name", "mac", "networks", "external_ids"],
    "ACL": ["name", "direction", "priority", "match", "action", "external_ids"],
    "Address_Set": ["name", "addresses", "external_ids"],
    "Logical_Router_Policy": ["priority", "match", "action", "nexthops", "external_ids"],
    "Logical_Router_Static_Route": ["ip_prefix", "nexthop", "external_ids"],
}  # fmt: skip
TABLES = tuple(COLUMNS)


class _Snapshot(command.BaseCommand):  # type: ignore[misc]
    """Collects kovn-owned rows; runs on the IDL thread under its lock."""

    READ_ONLY = True

    def run_idl(self, txn: Any) -> None:
        found: dict[RowKey, OwnedRow] = {}
        parents = _parent_index(self.api)
        for table in TABLES:
            for row in self.api.tables[table].rows.values():
                ids = row.external_ids
                owner = ids.get(OWNER_KEY)
                if owner is None:
                    continue
                parent = _actual_parent(table, row, parents)
                name = row_name(table, row)
                found[(table, name)] = OwnedRow(
                    table=table,
                    name=name,
                    owner=owner,
                    digest=actual_digest(table, row, parent),
                    parent=parent,
                )
        self.result = found


class _RouterUuid(command.BaseCommand):  # type: ignore[misc]
    """The uuid of kovn's cluster router, "" when absent (a cheap NB identity)."""

    READ_ONLY = True

    def __init__(self, api: Any, name: str) -> None:
        super().__init__(api)
        self.name = name

    def run_idl(self, txn: Any) -> None:
        row = idlutils.row_by_value(self.api.idl, "Logical_Router", "name", self.name, None)
        self.result = str(row.uuid) if row is not None else ""


class _Apply(command.BaseCommand):  # type: ignore[misc]
    """Creates/fixes `ensure` rows and removes `remove` rows in one txn.

    Rows are looked up by name on the IDL's index at commit time; an ensure
    whose row carries the wanted hash stamp is skipped (a full reconcile
    compares real column content first, see `_Snapshot`, and sends such a
    row with `force`). The result is the number of rows actually changed.
    """

    def __init__(
        self, api: Any, ensure: list[DesiredRow], remove: list[OwnedRow], force: set[RowKey]
    ) -> None:
        super().__init__(api)
        self.ensure = ensure
        self.remove = remove
        self.force = force
        self._by_ids: dict[RowKey, Any] | None = None

    def _lookup(self, table: str, name: str, created: dict[RowKey, Any]) -> Any:
        row = created.get((table, name))
        if row is not None:
            return row
        if table in NAMED_IN_IDS:
            if self._by_ids is None:
                self._by_ids = {
                    (t, row_name(t, r)): r
                    for t in NAMED_IN_IDS
                    for r in self.api.tables[t].rows.values()
                    if NAME_KEY in r.external_ids
                }
            return self._by_ids.get((table, name))
        return idlutils.row_by_value(self.api.idl, table, "name", name, None)

    def run_idl(self, txn: Any) -> None:
        created: dict[RowKey, Any] = {}
        changed = 0
        # Parents first so that children created in the same txn can attach.
        ordered = sorted(self.ensure, key=lambda r: r.table in PARENT_COLUMN)
        for want in ordered:
            row = self._lookup(want.table, want.name, created)
            ids = want.external_ids()
            if row is not None:
                forced = (want.table, want.name) in self.force
                if not forced and row.external_ids.get(HASH_KEY) == ids[HASH_KEY]:
                    continue
                if OWNER_KEY not in row.external_ids:
                    # Never take over a row someone else created.
                    raise RuntimeError(
                        f"{want.table} {want.name!r} exists and is not owned by kovn"
                    )
                old_parent = row.external_ids.get(PARENT_KEY, "")
                if want.table in PARENT_COLUMN and (forced or old_parent != want.parent):
                    self._reparent(want.table, old_parent, want.parent, row, created)
            else:
                row = txn.insert(self.api.tables[want.table])
                if want.table not in NAMED_IN_IDS:
                    row.name = want.name
                created[(want.table, want.name)] = row
                if want.table in PARENT_COLUMN:
                    self._attach(want.table, want.parent, row, created)
            for column, value in want.full_columns().items():
                setattr(row, column, value)
            row.external_ids = ids
            changed += 1
        for gone in self.remove:
            row = self._lookup(gone.table, gone.name, {})
            if row is None or row.external_ids.get(OWNER_KEY) != gone.owner:
                continue
            if gone.table in PARENT_COLUMN:
                self._detach(gone.table, row.external_ids.get(PARENT_KEY, ""), row, created)
            row.delete()
            changed += 1
        self.result = changed

    def _attach(self, table: str, parent: str, row: Any, created: dict[RowKey, Any]) -> None:
        parent_table, column = PARENT_COLUMN[table]
        holder = self._lookup(parent_table, parent, created)
        if holder is None:
            raise RuntimeError(
                f"{table} {row_name(table, row)!r}: parent {parent_table} {parent!r} missing"
            )
        holder.addvalue(column, row)

    def _reparent(
        self, table: str, old: str, new: str, row: Any, created: dict[RowKey, Any]
    ) -> None:
        parent_table, column = PARENT_COLUMN[table]
        holder = self._lookup(parent_table, new, created)
        if holder is not None and row in getattr(holder, column):
            return
        self._detach(table, "", row, created)
        self._attach(table, new, row, created)

    def _detach(self, table: str, parent: str, row: Any, created: dict[RowKey, Any]) -> None:
        parent_table, column = PARENT_COLUMN[table]
        holder = self._lookup(parent_table, parent, created) if parent else None
        if holder is not None:
            holder.delvalue(column, row)
            return
        # Parent unknown (stamp missing): find whoever references the row.
        for candidate in self.api.tables[parent_table].rows.values():
            if row in getattr(candidate, column):
                candidate.delvalue(column, row)


class _Idl(connection.OvsdbIdl):  # type: ignore[misc]
    """ovsdbapp yields the GIL (time.sleep(0)) after every row update, for
    eventlet's sake; with 10,000 rows that costs more than parsing them."""

    def cooperative_yield(self) -> None:
        pass


class NbClient:
    """kovn's handle on the NB: snapshot owned rows, apply batches."""

    def __init__(self, remote: str, *, timeout: float = 60.0) -> None:
        self.remote = remote
        self.timeout = timeout
        self._api: Any = None

    async def connect(self) -> None:
        await asyncio.to_thread(self._connect)

    def _connect(self) -> None:
        helper = idlutils.get_schema_helper(self.remote, "OVN_Northbound")
        for table, columns in COLUMNS.items():
            helper.register_columns(table, columns)
        idl = _Idl(self.remote, helper)
        conn = connection.Connection(idl, timeout=self.timeout)
        # ovsdbapp keeps the connection on the API *class*; a private
        # subclass per client lets several NB connections live in one process.
        api_cls = type("KovnNbApi", (impl_idl.OvnNbApiIdlImpl,), {"_ovsdb_connection": None})
        self._api = api_cls(conn)

    async def close(self) -> None:
        if self._api is not None:
            api, self._api = self._api, None
            await asyncio.to_thread(api.ovsdb_connection.stop)

    @property
    def api(self) -> Any:
        if self._api is None:
            raise RuntimeError("NbClient is not connected")
        return self._api

    async def snapshot(self) -> dict[RowKey, OwnedRow]:
        result: dict[RowKey, OwnedRow] = await asyncio.to_thread(
            _Snapshot(self.api).execute, check_error=True
        )
        return result

    async def router_uuid(self, name: str) -> str:
        """uuid of the named router ("" if absent): it changes when the NB
        database was replaced or kovn's rows were wiped."""
        result: str = await asyncio.to_thread(_RouterUuid(self.api, name).execute, check_error=True)
        return result

    async def apply(
        self,
        ensure: list[DesiredRow],
        remove: list[OwnedRow],
        *,
        force: set[RowKey] | None = None,
    ) -> int:
        """Write in one transaction; returns the number of rows changed.

        An ensured row whose hash stamp already matches is left alone (the
        cheap path for reconcilers that re-send rows) unless its key is in
        `force` (a full reconcile found its real content differs).
        """
        if not ensure and not remove:
            return 0
        result: int = await asyncio.to_thread(self._apply_sync, ensure, remove, force or set())
        return result

    def _apply_sync(
        self, ensure: list[DesiredRow], remove: list[OwnedRow], force: set[RowKey]
    ) -> int:
        cmd = _Apply(self.api, ensure, remove, force)
        with self.api.transaction(check_error=True, log_errors=False) as txn:
            txn.add(cmd)
        return int(cmd.result or 0)
