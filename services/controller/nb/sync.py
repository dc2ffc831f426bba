"""One owner-keyed sync of kovn's NB rows: the only way reconcilers write.

Every row kovn writes carries its owner (`nb.rows`). A reconciler says "owner
X wants exactly these rows" (`sync`), or "owner X is gone" (`remove`), and
this module writes only what differs from what it knows the NB holds: rows
whose digest changed, and rows stamped with X that X no longer wants. Rows
of other owners are never touched, whoever else shares a table with them.

It owns the known-rows index (what kovn last wrote or found, by owner), so no
reconciler keeps its own bookkeeping. The leader's full `resync` compares
every desired row with a fresh NB snapshot by real content, repairs the
difference in one batch and rebuilds the index from the result: a restart
with nothing changed writes nothing. Work per `sync` grows with the owner's
rows, never with the size of the NB.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import structlog

from services.controller.nb.client import NbClient
from services.controller.nb.rows import DesiredRow, OwnedRow, RowKey, diff
from services.controller.nb.writer import NbWriter

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class _Known:
    digest: str
    parent: str
    parent_table: str


@dataclass
class ResyncResult:
    desired: int
    ensured: int
    removed: int
    written: int
    seconds: float


class NbSync:
    """Writes owners' rows through the batching writer; remembers what is there."""

    def __init__(self, nb: NbClient, writer: NbWriter) -> None:
        self.nb = nb
        self.writer = writer
        self._owners: dict[str, dict[RowKey, _Known]] = {}

    def known(self, owner: str) -> dict[RowKey, str]:
        """The rows kovn believes `owner` has in the NB, with their digests."""
        return {key: k.digest for key, k in self._owners.get(owner, {}).items()}

    def __len__(self) -> int:
        return sum(len(rows) for rows in self._owners.values())

    async def sync(self, owner: str, rows: Iterable[DesiredRow]) -> int:
        """Make `owner`'s rows exactly `rows`; returns rows changed."""
        wanted = list(rows)
        for row in wanted:
            if row.owner != owner:
                raise ValueError(
                    f"{row.table} {row.name!r} is owned by {row.owner!r}, not {owner!r}"
                )
        known = self._owners.get(owner, {})
        keys = {(r.table, r.name) for r in wanted}
        todo = [
            r for r in wanted if (k := known.get((r.table, r.name))) is None or k.digest != r.digest
        ]
        stale = [
            OwnedRow(table, name, owner, "", k.parent, k.parent_table)
            for (table, name), k in known.items()
            if (table, name) not in keys
        ]
        if not todo and not stale:
            return 0
        changed = await self.writer.write(todo, stale)
        if wanted:
            self._owners[owner] = {
                (r.table, r.name): _Known(r.digest, r.parent, r.parent_table) for r in wanted
            }
        else:
            self._owners.pop(owner, None)
        return changed

    async def remove(self, owner: str) -> int:
        """Remove every row of `owner`."""
        return await self.sync(owner, ())

    async def resync(self, desired: Iterable[DesiredRow]) -> ResyncResult:
        """Make kovn's rows in the NB exactly `desired`, comparing real content."""
        started = time.perf_counter()
        # Snapshot first, then diff without yielding, then queue the write: a
        # row forgotten meanwhile is either already absent from `desired` or
        # its removal is queued after ours, never resurrected.
        actual = await self.nb.snapshot()
        rows = list(desired)
        plan = diff(rows, actual)
        written = 0
        if plan:
            written = await self.writer.write(plan.ensure, plan.remove, force=True)
        owners: dict[str, dict[RowKey, _Known]] = {}
        for r in rows:
            owners.setdefault(r.owner, {})[(r.table, r.name)] = _Known(
                r.digest, r.parent, r.parent_table
            )
        self._owners = owners
        result = ResyncResult(
            desired=len(rows),
            ensured=len(plan.ensure),
            removed=len(plan.remove),
            written=written,
            seconds=time.perf_counter() - started,
        )
        log.info(
            "nb resync",
            desired=result.desired,
            ensured=result.ensured,
            removed=result.removed,
            written=result.written,
            seconds=round(result.seconds, 3),
        )
        return result
