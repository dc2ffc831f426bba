"""Following other replicas' writes: one etcd watch stream, resumed after failures.

A replica's allocator only stays a good guess if it hears what the others
allocate, release and change. Three watchers on one stream cover that: the
owner records, the cool-downs and the key every subnet/pool change touches.
Address and MAC keys are not watched: their changes ride in the same
transactions as the owner records, which carry the addresses. When etcd
restarts or is unreachable the watch resumes where the slowest watcher was
(replays are harmless) and reports etcd as unavailable in the meantime.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from services.common.logging import get_logger
from services.ipam.model import AllocationRecord, Cooling
from services.ipam.store.base import Changes
from services.ipam.store.etcd_client import EtcdClient, prefix_end
from services.ipam.store.etcd_keys import Keys
from services.ipam.store.etcdpb import etcd_subset_pb2 as pb

log = get_logger(__name__)


class EtcdWatch:
    def __init__(
        self,
        client: EtcdClient,
        keys: Keys,
        changes: Changes,
        *,
        on_meta: Callable[[int], None],
        on_availability: Callable[[bool], None],
    ) -> None:
        self.client = client
        self.keys = keys
        self.changes = changes
        self.on_meta = on_meta  # mod_revision of P/meta/subnets, as seen
        self.on_availability = on_availability

    async def run(self, start: int) -> None:
        """Follow from revision `start` until cancelled."""
        changes = self.changes
        while True:
            seen: dict[int, int] = {}  # watch id -> last revision handled
            try:
                async for resp in self.client.watch(self._creates(start)):
                    if resp.canceled:
                        # Compacted past our revision: re-read subnets and
                        # what they hold, then follow from now on.
                        log.warning("etcd watch cancelled", reason=resp.cancel_reason)
                        changes.subnets_changed()
                        seen.clear()
                        start = 0
                        break
                    if resp.created and not seen:
                        self.on_availability(True)
                    seen.setdefault(resp.watch_id, start - 1)
                    for event in resp.events:
                        self._dispatch(event)
                    if resp.events:
                        seen[resp.watch_id] = resp.events[-1].kv.mod_revision
            except asyncio.CancelledError:
                raise
            except Exception as err:  # etcd restarted or unreachable: try again
                log.warning("etcd watch failed; retrying", error=str(err))
                self.on_availability(False)
                await asyncio.sleep(1.0)  # back-off before reconnecting; no event to await
            if seen:
                # Resume where the slowest watcher was; replays are harmless.
                start = min(seen.values()) + 1

    def _creates(self, start: int) -> list[pb.WatchCreateRequest]:
        owners, cooling = self.keys.k("owners", ""), self.keys.k("cooling", "")
        return [
            pb.WatchCreateRequest(key=owners, range_end=prefix_end(owners), start_revision=start),
            pb.WatchCreateRequest(key=cooling, range_end=prefix_end(cooling), start_revision=start),
            pb.WatchCreateRequest(key=self.keys.k("meta", "subnets"), start_revision=start),
        ]

    def _dispatch(self, event: pb.Event) -> None:
        kind, rest = self.keys.split(event.kv.key)
        deleted = event.type == pb.Event.DELETE
        changes = self.changes
        if kind == "owners":
            if deleted:
                changes.allocation_deleted(rest)
            elif not changes.knows(rest, event.kv.mod_revision):  # our own write, echoed
                changes.allocation_put(
                    AllocationRecord.from_json(event.kv.value, event.kv.mod_revision)
                )
        elif kind == "cooling" and not deleted:
            changes.cooling_put(Cooling.from_json(event.kv.value))
        elif kind == "meta":
            self.on_meta(event.kv.mod_revision)
