"""A connection to the OVN Northbound database through ovsdbapp's IDL.

ovsdbapp keeps one IDL replica and commits one transaction at a time on its
own thread; this module runs kovn's two operations on that thread, so they
see a consistent replica: `snapshot` (the rows kovn owns) and `apply` (create,
fix or remove many rows in ONE transaction). Both are awaited from asyncio
through a worker thread. What kovn manages in each table, how rows are named
and how they reference each other is `nb.tables`; this module only follows it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ovsdbapp.backend.ovs_idl import command, connection, idlutils
from ovsdbapp.schema.ovn_northbound import impl_idl

from services.controller.nb.rows import (
    HASH_KEY,
    NAME_KEY,
    OWNER_KEY,
    PARENT_KEY,
    PARENT_TABLE_KEY,
    DesiredRow,
    OwnedRow,
    RowKey,
    row_digest,
)
from services.controller.nb.tables import TABLES, ColumnValue, Holder, spec, strong_referrers

_STAMPS = (OWNER_KEY, HASH_KEY, PARENT_KEY, NAME_KEY, PARENT_TABLE_KEY)
#: Tables with a unique name index in the schema (looked up on the IDL's index).
_INDEXED = frozenset({"Logical_Switch_Port", "Logical_Router_Port", "Address_Set", "Port_Group"})


def row_name(table: str, row: Any) -> str:
    """kovn's name of a row: its `name`, or the one kept in external_ids."""
    if spec(table).named_in_ids:
        return str(row.external_ids.get(NAME_KEY, ""))
    return str(row.name)


#: child row uuid -> (holder table, holder name), per child table.
_ParentIndex = dict[str, dict[Any, tuple[str, str]]]


def _parent_index(api: Any) -> _ParentIndex:
    index: _ParentIndex = {}
    for child in TABLES.values():
        holders: dict[Any, tuple[str, str]] = {}
        for h in child.held_by:
            for holder in api.tables[h.table].rows.values():
                for member in getattr(holder, h.column):
                    holders[member.uuid] = (h.table, row_name(h.table, holder))
        index[child.name] = holders
    return index


def actual_columns(table: str, row: Any) -> dict[str, ColumnValue]:
    """The managed columns as they are, references as row names."""
    t = spec(table)
    columns: dict[str, ColumnValue] = {}
    for column, empty in t.managed.items():
        value = getattr(row, column)
        if column in t.refs:
            value = [row_name(t.refs[column], r) for r in value]
        elif isinstance(empty, list):
            value = list(value)
        elif isinstance(empty, dict):
            value = dict(value)
        elif isinstance(value, list):  # optional scalar columns come back as lists
            value = value[0] if value else empty
        columns[column] = value
    return columns


def actual_digest(table: str, row: Any, parent: str, parent_table: str = "") -> str:
    """The digest `row` would have if kovn had written its current content."""
    ids = dict(row.external_ids)
    labels = {k: v for k, v in ids.items() if k not in _STAMPS}
    parent_id = f"{parent_table}:{parent}" if parent and parent_table else parent
    return row_digest(
        table,
        row_name(table, row),
        ids.get(OWNER_KEY, ""),
        parent_id,
        actual_columns(table, row),
        labels,
    )


class _Snapshot(command.BaseCommand):  # type: ignore[misc]
    """Collects kovn-owned rows; runs on the IDL thread under its lock."""

    READ_ONLY = True

    def run_idl(self, txn: Any) -> None:
        found: dict[RowKey, OwnedRow] = {}
        parents = _parent_index(self.api)
        for t in TABLES.values():
            default = t.held_by[0].table if t.held_by else ""
            for row in self.api.tables[t.name].rows.values():
                owner = row.external_ids.get(OWNER_KEY)
                if owner is None:
                    continue
                holder_table, parent = parents[t.name].get(row.uuid, ("", ""))
                parent_table = holder_table if holder_table != default else ""
                name = row_name(t.name, row)
                found[(t.name, name)] = OwnedRow(
                    table=t.name,
                    name=name,
                    owner=owner,
                    digest=actual_digest(t.name, row, parent, parent_table),
                    parent=parent,
                    parent_table=parent_table,
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

    Rows are looked up by name at commit time; an ensure whose row carries
    the wanted hash stamp is skipped (a full reconcile compares real column
    content first, see `_Snapshot`, and sends such a row with `force`).
    Reference columns are set in a second pass, once every row of the
    transaction exists, so rows may reference each other in any order. The
    result is the number of rows actually changed.
    """

    def __init__(
        self, api: Any, ensure: list[DesiredRow], remove: list[OwnedRow], force: set[RowKey]
    ) -> None:
        super().__init__(api)
        self.ensure = ensure
        self.remove = remove
        self.force = force
        self._by_name: dict[str, dict[str, Any]] = {}

    def _lookup(self, table: str, name: str, created: dict[RowKey, Any]) -> Any:
        row = created.get((table, name))
        if row is not None:
            return row
        if table in _INDEXED:
            return idlutils.row_by_value(self.api.idl, table, "name", name, None)
        # No unique index: one name map per table per transaction.
        names = self._by_name.get(table)
        if names is None:
            names = self._by_name[table] = {
                row_name(table, r): r
                for r in self.api.tables[table].rows.values()
                if OWNER_KEY in r.external_ids or not spec(table).named_in_ids
            }
        return names.get(name)

    def run_idl(self, txn: Any) -> None:
        created: dict[RowKey, Any] = {}
        written: list[tuple[DesiredRow, Any]] = []
        # Roots first so that children created in the same txn can attach.
        for want in sorted(self.ensure, key=lambda r: spec(r.table).is_child):
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
                old = (
                    row.external_ids.get(PARENT_KEY, ""),
                    row.external_ids.get(PARENT_TABLE_KEY, ""),
                )
                if want.parent and (forced or old != (want.parent, want.parent_table)):
                    self._reparent(want, row, created)
            else:
                row = txn.insert(self.api.tables[want.table])
                if not spec(want.table).named_in_ids:
                    row.name = want.name
                created[(want.table, want.name)] = row
                self._by_name.get(want.table, {})[want.name] = row
                if want.parent:
                    self._attach(want.holder, want.parent, row, created)
            refs = spec(want.table).refs
            for column, value in want.full_columns().items():
                if column not in refs:
                    setattr(row, column, value)
            row.external_ids = ids
            written.append((want, row))
        for want, row in written:
            for column, target in spec(want.table).refs.items():
                value = want.full_columns()[column]
                assert isinstance(value, list)
                setattr(row, column, [self._resolve(target, n, want, created) for n in value])
        changed = len(written)
        for gone in self.remove:
            row = self._lookup(gone.table, gone.name, {})
            if row is None or row.external_ids.get(OWNER_KEY) != gone.owner:
                continue
            t = spec(gone.table)
            if t.is_child:
                holder = t.holder(row.external_ids.get(PARENT_TABLE_KEY, ""))
                self._detach(holder, row.external_ids.get(PARENT_KEY, ""), row, created)
            for table, column in strong_referrers(gone.table):
                for referrer in self.api.tables[table].rows.values():
                    if row in getattr(referrer, column):
                        referrer.delvalue(column, row)
            row.delete()
            changed += 1
        self.result = changed

    def _resolve(self, table: str, name: str, want: DesiredRow, created: dict[RowKey, Any]) -> Any:
        row = self._lookup(table, name, created)
        if row is None:
            raise RuntimeError(f"{want.table} {want.name!r} references {table} {name!r}: missing")
        return row

    def _attach(self, holder: Holder, parent: str, row: Any, created: dict[RowKey, Any]) -> None:
        parent_row = self._lookup(holder.table, parent, created)
        if parent_row is None:
            raise RuntimeError(f"{row_name(row._table.name, row)!r}: parent {holder.table} "
                               f"{parent!r} missing")  # fmt: skip
        parent_row.addvalue(holder.column, row)

    def _reparent(self, want: DesiredRow, row: Any, created: dict[RowKey, Any]) -> None:
        holder = want.holder
        parent_row = self._lookup(holder.table, want.parent, created)
        if parent_row is not None and row in getattr(parent_row, holder.column):
            return
        for h in spec(want.table).held_by:
            self._detach(h, "", row, created)
        self._attach(holder, want.parent, row, created)

    def _detach(self, holder: Holder, parent: str, row: Any, created: dict[RowKey, Any]) -> None:
        parent_row = self._lookup(holder.table, parent, created) if parent else None
        if parent_row is not None:
            parent_row.delvalue(holder.column, row)
            return
        # Parent unknown (stamp missing): find whoever references the row.
        for candidate in self.api.tables[holder.table].rows.values():
            if row in getattr(candidate, holder.column):
                candidate.delvalue(holder.column, row)


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
        # Monitoring only the columns kovn reads keeps the replica (and the
        # initial download at start-up) small.
        for t in TABLES.values():
            helper.register_columns(t.name, t.columns())
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
