"""kovn's connection to the OVN Northbound database.

It runs on the project's one OVSDB stack (`services.common.ovsdb`: one IDL
replica, one thread that owns it, awaitable calls), so its two operations see
a consistent replica: `snapshot` (the rows kovn owns) and `apply` (create,
fix or remove many rows in ONE transaction). What kovn manages in each
table, how rows are named and how they reference each other is
`nb.tables`; this module only follows it.
"""

from __future__ import annotations

from typing import Any

from services.common.ovsdb import Ovsdb, Tables
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
#: Tables whose rows are found by `name` on an index the replica keeps current
#: (every pod has a port, every Service a load balancer); the others are few,
#: or named in external_ids, and get one name map per transaction.
_INDEXED = (
    "Logical_Switch",
    "Logical_Switch_Port",
    "Logical_Router_Port",
    "Address_Set",
    "Port_Group",
    "Load_Balancer",
    "Load_Balancer_Group",
)


def _ids(table: str, row: Any) -> dict[str, str]:
    """A row's external_ids ({} for a table that has none)."""
    return dict(row.external_ids) if spec(table).stamped else {}


def _owner(table: str, name: str, row: Any) -> str | None:
    """Who owns a row by kovn's stamp (or by its name, where it cannot be stamped)."""
    t = spec(table)
    if t.stamped:
        owner: str | None = row.external_ids.get(OWNER_KEY)
        return owner
    return t.unstamped_owner(name)


def row_name(table: str, row: Any) -> str:
    """kovn's name of a row: its `name`, or the one kept in external_ids."""
    if spec(table).named_in_ids:
        return str(row.external_ids.get(NAME_KEY, ""))
    return str(row.name)


#: child row uuid -> (holder table, holder name), per child table.
_ParentIndex = dict[str, dict[Any, tuple[str, str]]]


def _parent_index(tables: Tables) -> _ParentIndex:
    index: _ParentIndex = {}
    for child in TABLES.values():
        holders: dict[Any, tuple[str, str]] = {}
        for h in child.held_by:
            for holder in tables[h.table].rows.values():
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
    ids = _ids(table, row)
    labels = {k: v for k, v in ids.items() if k not in _STAMPS}
    owner = _owner(table, row_name(table, row), row) or ""
    parent_id = f"{parent_table}:{parent}" if parent and parent_table else parent
    return row_digest(
        table,
        row_name(table, row),
        owner,
        parent_id,
        actual_columns(table, row),
        labels,
    )


def _snapshot(tables: Tables) -> dict[RowKey, OwnedRow]:
    """The kovn-owned rows of the replica (runs in the IDL thread)."""
    found: dict[RowKey, OwnedRow] = {}
    parents = _parent_index(tables)
    for t in TABLES.values():
        default = t.held_by[0].table if t.held_by else ""
        for row in tables[t.name].rows.values():
            name = row_name(t.name, row)
            owner = _owner(t.name, name, row)
            if owner is None:
                continue
            holder_table, parent = parents[t.name].get(row.uuid, ("", ""))
            parent_table = holder_table if holder_table != default else ""
            found[(t.name, name)] = OwnedRow(
                table=t.name,
                name=name,
                owner=owner,
                digest=actual_digest(t.name, row, parent, parent_table),
                parent=parent,
                parent_table=parent_table,
            )
    return found


class _Apply:
    """Creates/fixes `ensure` rows and removes `remove` rows in one txn.

    Rows are looked up by name at commit time; an ensure whose row carries
    the wanted hash stamp is skipped (a full reconcile compares real column
    content first, see `_Snapshot`, and sends such a row with `force`).
    Reference columns are set in a second pass, once every row of the
    transaction exists, so rows may reference each other in any order. The
    result is the number of rows actually changed.
    """

    def __init__(
        self, tables: Tables, ensure: list[DesiredRow], remove: list[OwnedRow], force: set[RowKey]
    ) -> None:
        self.tables = tables
        self.ensure = ensure
        self.remove = remove
        self.force = force
        self._by_name: dict[str, dict[str, Any]] = {}

    def _lookup(self, table: str, name: str, created: dict[RowKey, Any]) -> Any:
        row = created.get((table, name))
        if row is not None:
            return row
        if table in _INDEXED:
            return Ovsdb.lookup(self.tables, table, "name", name)
        # No unique index: one name map per table per transaction.
        names = self._by_name.get(table)
        if names is None:
            names = self._by_name[table] = {
                row_name(table, r): r
                for r in self.tables[table].rows.values()
                if OWNER_KEY in r.external_ids or not spec(table).named_in_ids
            }
        return names.get(name)

    def run(self, txn: Any) -> int:
        created: dict[RowKey, Any] = {}
        written: list[tuple[DesiredRow, Any]] = []
        # Roots first so that children created in the same txn can attach.
        for want in sorted(self.ensure, key=lambda r: spec(r.table).is_child):
            row = self._lookup(want.table, want.name, created)
            t = spec(want.table)
            ids = want.external_ids()
            if row is not None:
                forced = (want.table, want.name) in self.force
                if not forced and self._current(want, row, ids):
                    continue
                if _owner(want.table, want.name, row) is None:
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
                row = txn.insert(self.tables[want.table])
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
            if t.stamped:
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
            if row is None or _owner(gone.table, gone.name, row) != gone.owner:
                continue
            t = spec(gone.table)
            if t.is_child:
                holder = t.holder(row.external_ids.get(PARENT_TABLE_KEY, ""))
                self._detach(holder, row.external_ids.get(PARENT_KEY, ""), row, created)
            for table, column in strong_referrers(gone.table):
                for referrer in self.tables[table].rows.values():
                    if row in getattr(referrer, column):
                        referrer.delvalue(column, row)
            row.delete()
            changed += 1
        return changed

    @staticmethod
    def _current(want: DesiredRow, row: Any, ids: dict[str, str]) -> bool:
        """Whether the row already holds what `want` says (cheaply, by its
        hash stamp; an unstamped row by its real content)."""
        if spec(want.table).stamped:
            return bool(row.external_ids.get(HASH_KEY) == ids[HASH_KEY])
        return actual_digest(want.table, row, "") == want.digest

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
        for candidate in self.tables[holder.table].rows.values():
            if row in getattr(candidate, holder.column):
                candidate.delvalue(holder.column, row)


class NbClient:
    """kovn's handle on the NB: snapshot owned rows, apply batches."""

    def __init__(self, remote: str, *, timeout: float = 60.0) -> None:
        self.remote = remote
        self.timeout = timeout
        self._db: Ovsdb | None = None

    async def connect(self) -> None:
        # Monitoring only the columns kovn reads keeps the replica (and the
        # initial download at start-up) small.
        self._db = await Ovsdb.connect(
            self.remote,
            "OVN_Northbound",
            {t.name: t.columns() for t in TABLES.values()},
            indexes=dict.fromkeys(_INDEXED, "name"),
            timeout=self.timeout,
        )

    async def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            await db.close()

    @property
    def db(self) -> Ovsdb:
        if self._db is None:
            raise RuntimeError("NbClient is not connected")
        return self._db

    async def snapshot(self) -> dict[RowKey, OwnedRow]:
        return await self.db.read(_snapshot, timeout=self.timeout)

    async def router_uuid(self, name: str) -> str:
        """uuid of the named router ("" if absent): it changes when the NB
        database was replaced or kovn's rows were wiped."""

        def find(tables: Tables) -> str:
            for row in tables["Logical_Router"].rows.values():
                if row.name == name:
                    return str(row.uuid)
            return ""

        return await self.db.read(find, timeout=self.timeout)

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
        `force` (a full reconcile found its real content differs). A
        transaction the server asks to retry runs again from the new replica.
        """
        if not ensure and not remove:
            return 0

        def run(txn: Any, tables: Tables) -> int:
            return _Apply(tables, ensure, remove, force or set()).run(txn)

        return await self.db.transact(run, timeout=self.timeout)
