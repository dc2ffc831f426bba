"""The interface every ipam store implements, and the refusals it reports.

The store owns the truth: it creates or releases an allocation (owner
record, its addresses, its MAC, the addresses' cool-downs) in one
transaction, and refuses one that would hand an address or MAC to a second
owner. The allocator's in-memory view is only a guess about what is free;
the refusals below tell the caller how the guess was wrong so it can retry
or answer the client precisely.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence

from services.common.errors import AlreadyExists, Conflict, KovnError, Unavailable
from services.ipam.model import AllocationRecord, Cooling, PoolSpec, Snapshot, SubnetSpec

# Raised by a store's check callback (FailedPrecondition) to refuse a change
# of a subnet or pool given the allocations the store holds right now.
AllocationCheck = Callable[[Sequence[AllocationRecord]], None]


class StoreRefusal(KovnError):
    """The store did not apply a change because of what it holds.

    The core takes refusals in and retries; each is also the typed error a
    client should hear should one ever reach it (a holder named, or a
    retryable conflict), never an INTERNAL.
    """


class OwnerExists(StoreRefusal, AlreadyExists):
    def __init__(self, existing: AllocationRecord) -> None:
        super().__init__(f"owner {existing.owner.key} already allocated", field="owner")
        self.existing = existing


class AddressTaken(StoreRefusal, AlreadyExists):
    def __init__(self, ip: str, holder: str) -> None:
        super().__init__(f"{ip} is held by {holder}", field="ips")
        self.ip, self.holder = ip, holder


class AddressCooling(StoreRefusal, Unavailable):
    """The address was released recently (by another replica) and still cools down."""

    def __init__(self, cooling: Cooling) -> None:
        super().__init__(f"{cooling.ip} cools down until {cooling.until_ms} ms", field="ips")
        self.cooling = cooling


class MacTaken(StoreRefusal, AlreadyExists):
    def __init__(self, mac: str, holder: str) -> None:
        super().__init__(f"{mac} is held by {holder}", field="mac")
        self.mac, self.holder = mac, holder


class SubnetChanged(StoreRefusal, Conflict):
    """The subnet was changed or deleted after the allocator read it."""


class Changes(abc.ABC):
    """What a store reports about writes made by other replicas."""

    @abc.abstractmethod
    def knows(self, owner_key: str, revision: int) -> bool:
        """True if this revision of the owner's record is already applied."""

    @abc.abstractmethod
    def allocation_put(self, rec: AllocationRecord) -> None: ...

    @abc.abstractmethod
    def allocation_deleted(self, owner_key: str) -> None: ...

    @abc.abstractmethod
    def cooling_put(self, cooling: Cooling) -> None: ...

    @abc.abstractmethod
    def subnets_changed(self) -> None:
        """Subnets or pools changed: re-read them with `load`."""


class Store(abc.ABC):
    """Durable, transactional home of subnets, pools, allocations, cool-downs."""

    kind: str

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect (and create the schema); Unavailable if the store cannot be reached."""

    @abc.abstractmethod
    async def load(self) -> Snapshot:
        """Everything, for (re)building the allocator."""

    async def watch(self, changes: Changes) -> None:  # noqa: B027 - optional
        """Start reporting other replicas' writes (single-replica stores: no-op)."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    async def purge_cooling(self, now_ms: int) -> int:
        """Drop expired cool-down records (housekeeping; returns how many)."""
        return 0

    @abc.abstractmethod
    async def create_subnet(self, spec: SubnetSpec) -> int:
        """Store a new subnet, returning its revision; AlreadyExists if the name is taken."""

    @abc.abstractmethod
    async def update_subnet(self, spec: SubnetSpec, check: AllocationCheck) -> int:
        """Replace a subnet if `check` accepts its current allocations; new revision."""

    @abc.abstractmethod
    async def delete_subnet(self, name: str, check: AllocationCheck) -> None:
        """Delete a subnet, its pools and cool-downs if `check` accepts its allocations."""

    @abc.abstractmethod
    async def create_pool(self, pool: PoolSpec) -> int:
        """Store a pool; returns the subnet's revision afterwards."""

    @abc.abstractmethod
    async def delete_pool(self, subnet: str, name: str, check: AllocationCheck) -> int:
        """Delete a pool if `check` accepts its allocations; the subnet's revision after."""

    @abc.abstractmethod
    async def create_allocation(self, rec: AllocationRecord, subnet_revision: int) -> int:
        """Create atomically, or raise a StoreRefusal; returns the record's revision."""

    @abc.abstractmethod
    async def release(self, rec: AllocationRecord, cooling: Sequence[Cooling]) -> bool:
        """Delete the allocation (if still this record) and start its cool-downs.

        False if the owner holds no such record any more (already released).
        """

    @abc.abstractmethod
    async def get_allocation(self, owner_key: str) -> AllocationRecord | None: ...

    @abc.abstractmethod
    async def list_allocations(self, subnet: str = "") -> list[AllocationRecord]:
        """Authoritative read (for garbage collection)."""
