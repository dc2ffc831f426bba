"""Desired NB rows as plain, hashable data.

Every row kovn writes is stamped in `external_ids` with its owner
(`kovn-owner`), its parent (`kovn-parent`, the row holding a child, see
`nb.tables`) and a hash of everything kovn sets (`kovn-hash`). Comparing hashes is how a
reconcile finds drift without comparing columns one by one, and how a
restart with nothing changed writes nothing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property

from services.controller.nb.tables import ColumnValue, Holder, spec

OWNER_KEY = "kovn-owner"
HASH_KEY = "kovn-hash"
PARENT_KEY = "kovn-parent"

#: Tables without a unique `name` column: kovn names their rows in
#: external_ids instead.
NAME_KEY = "kovn-name"
#: The parent's table, stamped when a child's table has several holders.
PARENT_TABLE_KEY = "kovn-parent-table"


@dataclass(frozen=True)
class DesiredRow:
    """One NB row as kovn wants it; `name` is unique within `table`."""

    table: str
    name: str
    owner: str
    #: Managed columns; a reference column (TableSpec.refs) lists row names.
    columns: dict[str, ColumnValue] = field(default_factory=dict, hash=False)
    #: Name of the parent row of a child (the switch of a port, ...).
    parent: str = ""
    #: The parent's table when the child's table has several holders
    #: (an ACL in a Port_Group rather than a Logical_Switch); "" = default.
    parent_table: str = ""
    #: external_ids kovn sets besides its own stamps (e.g. pod, node).
    labels: dict[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        t = spec(self.table)  # an unknown table fails here, not in a txn
        if t.is_child != bool(self.parent):
            raise ValueError(f"{self.table} {self.name!r}: a parent is needed exactly for children")
        if not t.stamped and (self.labels or t.unstamped_owner(self.name) != self.owner):
            raise ValueError(f"{self.table} rows carry no stamps: named kovn*, owned by their name")
        unknown = set(self.columns) - set(t.managed)
        if unknown:
            raise ValueError(f"{self.table} {self.name!r}: unmanaged columns {sorted(unknown)}")

    @property
    def holder(self) -> Holder:
        return spec(self.table).holder(self.parent_table)

    def full_columns(self) -> dict[str, ColumnValue]:
        """Every managed column, unset ones at their empty value."""
        full = dict(spec(self.table).managed)
        full.update(self.columns)
        return full

    @cached_property
    def digest(self) -> str:
        """Hash of everything kovn sets on this row (computed once: rows are
        not changed after they are made)."""
        return row_digest(
            self.table, self.name, self.owner, self._parent_id(), self.full_columns(), self.labels
        )

    def _parent_id(self) -> str:
        if self.parent and self.parent_table:
            return f"{self.parent_table}:{self.parent}"
        return self.parent

    def external_ids(self) -> dict[str, str]:
        ids = dict(self.labels)
        ids[OWNER_KEY] = self.owner
        ids[HASH_KEY] = self.digest
        if spec(self.table).named_in_ids:
            ids[NAME_KEY] = self.name
        if self.parent:
            ids[PARENT_KEY] = self.parent
        if self.parent_table:
            ids[PARENT_TABLE_KEY] = self.parent_table
        return ids


def row_digest(
    table: str,
    name: str,
    owner: str,
    parent: str,
    columns: dict[str, ColumnValue],
    labels: dict[str, str],
) -> str:
    """Hash of a row's managed content; sets compare regardless of order."""
    norm = {k: sorted(v) if isinstance(v, list) else v for k, v in columns.items()}
    canonical = json.dumps(
        [table, name, owner, parent, norm, labels], sort_keys=True, separators=(",", ":")
    )
    return hashlib.blake2b(canonical.encode(), digest_size=10).hexdigest()


@dataclass(frozen=True)
class OwnedRow:
    """A row found in the NB that carries kovn's owner stamp."""

    table: str
    name: str
    owner: str
    #: Hash of the row's actual managed columns (not the stamp it carries),
    #: so edits made behind kovn's back show up as a difference.
    digest: str
    parent: str
    #: The parent's table when it is not the child table's default holder.
    parent_table: str = ""


RowKey = tuple[str, str]  # (table, name)


@dataclass
class Plan:
    """What a reconcile must write: rows to create or fix, rows to remove."""

    ensure: list[DesiredRow] = field(default_factory=list)
    remove: list[OwnedRow] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ensure) + len(self.remove)


def diff(
    desired: list[DesiredRow],
    actual: dict[RowKey, OwnedRow],
    *,
    owner_prefixes: tuple[str, ...] | None = None,
) -> Plan:
    """Rows to write so that the NB holds exactly `desired` among kovn's rows.

    `owner_prefixes` limits removals to rows whose owner starts with one of
    them (a partial reconcile of one kind must not remove another kind's
    rows); None means every kovn-owned row is in scope.
    """
    plan = Plan()
    wanted: set[RowKey] = set()
    for row in desired:
        key: RowKey = (row.table, row.name)
        wanted.add(key)
        have = actual.get(key)
        if have is None or have.digest != row.digest:
            plan.ensure.append(row)
    for key, have in actual.items():
        if key in wanted:
            continue
        if owner_prefixes is not None and not have.owner.startswith(owner_prefixes):
            continue
        plan.remove.append(have)
    # Children before parents on removal keeps references valid within a txn
    # regardless of order, but deterministic order makes logs readable.
    plan.remove.sort(key=lambda r: (not spec(r.table).is_child, r.table, r.name))
    return plan
