"""Desired NB rows as plain, hashable data.

Every row kovn writes is stamped in `external_ids` with its owner
(`kovn-owner`), its parent (`kovn-parent`, the switch or router holding it)
and a hash of everything kovn sets (`kovn-hash`). Comparing hashes is how a
reconcile finds drift without comparing columns one by one, and how a
restart with nothing changed writes nothing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Literal

OWNER_KEY = "kovn-owner"
HASH_KEY = "kovn-hash"
PARENT_KEY = "kovn-parent"

Table = Literal[
    "Logical_Switch",
    "Logical_Switch_Port",
    "Logical_Router",
    "Logical_Router_Port",
    "ACL",
    "Address_Set",
    "Logical_Router_Policy",
    "Logical_Router_Static_Route",
]
ColumnValue = str | int | bool | list[str] | dict[str, str]

#: Tables without a unique `name` column: kovn names their rows in
#: external_ids instead.
NAME_KEY = "kovn-name"
NAMED_IN_IDS = frozenset({"ACL", "Logical_Router_Policy", "Logical_Router_Static_Route"})

#: Columns kovn sets on each table, with the value meaning "unset". A row's
#: digest covers exactly these, so a hand edit of any of them is drift.
MANAGED_COLUMNS: dict[str, dict[str, ColumnValue]] = {
    "Logical_Switch": {},
    "Logical_Router": {},
    "Logical_Switch_Port": {"type": "", "addresses": [], "port_security": [], "options": {}},
    "Logical_Router_Port": {"mac": "", "networks": []},
    "ACL": {"direction": "", "priority": 0, "match": "", "action": ""},
    "Address_Set": {"addresses": []},
    "Logical_Router_Policy": {"priority": 0, "match": "", "action": "", "nexthops": []},
    "Logical_Router_Static_Route": {"ip_prefix": "", "nexthop": ""},
}

#: Which column of which parent table holds rows of a child table.
PARENT_COLUMN: dict[str, tuple[str, str]] = {
    "Logical_Switch_Port": ("Logical_Switch", "ports"),
    "Logical_Router_Port": ("Logical_Router", "ports"),
    "ACL": ("Logical_Switch", "acls"),
    "Logical_Router_Policy": ("Logical_Router", "policies"),
    "Logical_Router_Static_Route": ("Logical_Router", "static_routes"),
}


@dataclass(frozen=True)
class DesiredRow:
    """One NB row as kovn wants it; `name` is unique within `table`."""

    table: Table
    name: str
    owner: str
    columns: dict[str, ColumnValue] = field(default_factory=dict, hash=False)
    #: Name of the parent row (switch for a port, router for a router port).
    parent: str = ""
    #: external_ids kovn sets besides its own stamps (e.g. pod, node).
    labels: dict[str, str] = field(default_factory=dict, hash=False)

    def full_columns(self) -> dict[str, ColumnValue]:
        """Every managed column, unset ones at their empty value."""
        full = dict(MANAGED_COLUMNS[self.table])
        full.update(self.columns)
        return full

    @property
    def digest(self) -> str:
        """Hash of everything kovn sets on this row."""
        return row_digest(
            self.table, self.name, self.owner, self.parent, self.full_columns(), self.labels
        )

    def external_ids(self) -> dict[str, str]:
        ids = dict(self.labels)
        ids[OWNER_KEY] = self.owner
        ids[HASH_KEY] = self.digest
        if self.table in NAMED_IN_IDS:
            ids[NAME_KEY] = self.name
        if self.parent:
            ids[PARENT_KEY] = self.parent
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
    plan.remove.sort(key=lambda r: (r.table not in PARENT_COLUMN, r.table, r.name))
    return plan
