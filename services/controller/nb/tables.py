"""What kovn manages in each NB table, in one place.

One `TableSpec` per table says which columns kovn sets (and their "unset"
value, so a row's digest covers exactly them), how a row is named (its
`name` column, or `external_ids:kovn-name` for tables without one), which
columns kovn must monitor, and how rows are referenced:

- a *child* row lives in exactly one parent's column — a port in its
  switch's `ports`, an ACL in its switch's or port group's `acls`, a load
  balancer in the cluster's load-balancer group — and is attached or
  detached by a mutation of that column; `held_by` lists the parent columns
  that may hold it, the first being the default;
- a *reference column* names rows that many others may share — every switch
  naming one load balancer, a port group naming its ports. kovn writes such
  columns as lists of row names; the client resolves them to rows when it
  writes and back to names when it reads, so digests compare names, never
  uuids.

Load_Balancer_Group has no `external_ids` in OVN 23.03, so kovn cannot stamp
an owner on it: it is recognised by its name instead (`stamped=False`).

Adding a table kovn writes is adding one entry here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ColumnValue = str | int | bool | list[str] | dict[str, str]


@dataclass(frozen=True)
class Holder:
    """A column of a parent table that holds child rows."""

    table: str
    column: str


@dataclass(frozen=True)
class TableSpec:
    name: str
    #: Columns kovn sets, with the value meaning "unset".
    managed: dict[str, ColumnValue] = field(default_factory=dict)
    #: Managed columns that reference rows of another table, by row name.
    refs: dict[str, str] = field(default_factory=dict)
    #: Those of `refs` that are weak in the schema: OVSDB drops a reference
    #: to a deleted row by itself; a strong one must be dropped by kovn first.
    weak: frozenset[str] = frozenset()
    #: Where a child row lives; empty for root tables.
    held_by: tuple[Holder, ...] = ()
    #: True when the table has no unique `name`: kovn names rows in external_ids.
    named_in_ids: bool = False
    #: Columns read but not set by kovn (the child lists it attaches rows to).
    also_monitor: tuple[str, ...] = ()
    #: False for tables without `external_ids` (Load_Balancer_Group in OVN
    #: 23.03): kovn cannot stamp them, so a row is kovn's by its name (which
    #: starts with "kovn") and its owner is `name_owner` + its name.
    stamped: bool = True
    name_owner: str = ""

    @property
    def is_child(self) -> bool:
        return bool(self.held_by)

    def holder(self, parent_table: str = "") -> Holder:
        """The parent column for `parent_table` ("" = the default holder)."""
        for h in self.held_by:
            if not parent_table or h.table == parent_table:
                return h
        raise KeyError(f"{self.name} rows are not held by {parent_table!r}")

    def columns(self) -> list[str]:
        """Every column to monitor for this table."""
        name = [] if self.named_in_ids else ["name"]
        ids = ["external_ids"] if self.stamped else []
        return [*name, *self.managed, *self.also_monitor, *ids]

    def unstamped_owner(self, name: str) -> str | None:
        """The owner of an unstamped row, None when the row is not kovn's."""
        return f"{self.name_owner}{name}" if name.startswith("kovn") else None


_LS, _LR, _PG = "Logical_Switch", "Logical_Router", "Port_Group"
_LBG = "Load_Balancer_Group"

TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (
        TableSpec(
            _LS,
            managed={"load_balancer": [], "load_balancer_group": []},
            refs={"load_balancer": "Load_Balancer", "load_balancer_group": _LBG},
            weak=frozenset({"load_balancer"}),
            also_monitor=("ports", "acls"),
        ),
        TableSpec(_LR, also_monitor=("ports", "policies", "static_routes")),
        TableSpec(
            "Logical_Switch_Port",
            managed={"type": "", "addresses": [], "port_security": [], "options": {}},
            held_by=(Holder(_LS, "ports"),),
        ),
        TableSpec(
            "Logical_Router_Port",
            managed={"mac": "", "networks": []},
            held_by=(Holder(_LR, "ports"),),
        ),
        TableSpec(
            "ACL",
            managed={
                "direction": "",
                "priority": 0,
                "match": "",
                "action": "",
                # NetworkPolicy: egress ACLs after the load balancers, logged drops.
                "options": {},
                "log": False,
                "name": [],
                "severity": [],
                "meter": [],
            },
            held_by=(Holder(_LS, "acls"), Holder(_PG, "acls")),
            named_in_ids=True,
        ),
        TableSpec("Address_Set", managed={"addresses": []}),
        # Rate limits of logged ACLs (NetworkPolicy drops): a flood of drops
        # must not flood ovn-controller. A meter names its bands (set whole,
        # so a new meter and its new band can be written in one transaction;
        # OVSDB collects a band no meter names).
        TableSpec(
            "Meter",
            managed={"unit": "", "bands": []},
            refs={"bands": "Meter_Band"},
        ),
        TableSpec(
            "Meter_Band",
            managed={"action": "", "rate": 0, "burst_size": 0},
            named_in_ids=True,
        ),
        TableSpec(
            _PG,
            managed={"ports": []},
            refs={"ports": "Logical_Switch_Port"},
            weak=frozenset({"ports"}),
            also_monitor=("acls",),
        ),
        # A load balancer is a root row the group holds (weakly): kovn puts
        # it in and takes it out with one mutation, so a Service change costs
        # the same with one Service or ten thousand.
        TableSpec(
            "Load_Balancer",
            managed={"vips": {}, "protocol": "", "options": {}, "selection_fields": []},
            held_by=(Holder(_LBG, "load_balancer"),),
        ),
        TableSpec(_LBG, also_monitor=("load_balancer",), stamped=False, name_owner="lbgroup/"),
        TableSpec(
            "Logical_Router_Policy",
            managed={"priority": 0, "match": "", "action": "", "nexthops": []},
            held_by=(Holder(_LR, "policies"),),
            named_in_ids=True,
        ),
        TableSpec(
            "Logical_Router_Static_Route",
            managed={"ip_prefix": "", "nexthop": ""},
            held_by=(Holder(_LR, "static_routes"),),
            named_in_ids=True,
        ),
    )
}


def spec(table: str) -> TableSpec:
    try:
        return TABLES[table]
    except KeyError:
        raise KeyError(f"kovn does not manage NB table {table!r}") from None


def strong_referrers(table: str) -> list[tuple[str, str]]:
    """(table, column) pairs whose strong references point at `table`'s rows."""
    return [
        (t.name, column)
        for t in TABLES.values()
        for column, target in t.refs.items()
        if target == table and column not in t.weak
    ]
