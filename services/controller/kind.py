"""What one kind of intent declares, so that the service can wire it alone.

A kind (Subnet, IPPool, Node, Pod, node egress, ...) is one module with one
`Kind` subclass: the API collection it watches, its reconciler (run by a
work queue: one serial worker per object, parallel across objects), the NB
rows it wants in a full resync, and which other kinds' changes fan out to
it. The registry (`registry.py`) builds informers, queues, listeners,
leader take-over and resync from these declarations; nothing else in the
controller names a kind.

Fan-out has one shape: `ctx.queues.enqueue(kind, key)` marks an object of a
kind dirty, and `ctx.queues.changed(kind, key)` tells every kind that
declared `fan_in[kind]` that an object of `kind` changed in a way that may
matter to it. Informer events of a kind without a reconciler (namespaces)
are announced with `changed` by the registry; a kind with a reconciler
announces its own changes once it has reconciled them (a Subnet that became
usable, not merely one that was edited).

Two hooks serve kinds that derive from other kinds' objects without
reconciling them (NetworkPolicy follows pods' labels and addresses):
`observes` names informers whose every event the kind hears in `observe`
(with old and new objects, to work out which of its own keys a change
touches), and `follows` names kinds whose successful reconciles it hears in
`reconciled` (a pod's address exists only once the Pod kind has run). Both
are called synchronously and must only index and enqueue, never block.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from services.common.kube import Obj, resource_path
from services.controller.informer import keep_all
from services.controller.nb.rows import DesiredRow

if TYPE_CHECKING:
    from services.controller.context import Context

#: Given the key of a changed object of the source kind, the keys to reconcile.
FanIn = Callable[[Hashable], Iterable[Hashable]]


@dataclass(frozen=True)
class Watch:
    """The API collection a kind's informer lists and watches."""

    #: Informer name, also the key in `ctx.informers` ("pods", "subnets").
    informer: str
    group: str
    version: str
    plural: str
    #: Trims each object before it is cached (most fields are never read).
    transform: Callable[[Obj], Obj] = field(default=keep_all)

    @property
    def path(self) -> str:
        return resource_path(self.group, self.version, self.plural)


class Kind:
    """Base of every kind; subclasses override what applies to them."""

    #: The kind's name: its work queue's and its fan-out source name.
    name: ClassVar[str]
    watch: ClassVar[Watch | None] = None
    #: False for kinds that only watch (their changes only fan out).
    reconciles: ClassVar[bool] = True
    #: Parallel workers of its queue (one object is never handled twice at once).
    workers: int = 4
    #: Reconciled in full during take-over, before the NB resync (pods are
    #: placed by subnets and pools, so those must be known first).
    first: ClassVar[bool] = False
    #: Informers (by name, each watched by some kind) whose events `observe` hears.
    observes: ClassVar[tuple[str, ...]] = ()
    #: Kinds whose successful reconciles `reconciled` hears.
    follows: ClassVar[tuple[str, ...]] = ()

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def prepare(self) -> None:
        """Leader take-over, before anything is reconciled (e.g. built-in objects)."""

    async def lead(self) -> None:
        """Leader-only background work, once caught up; cancelled on step-down."""

    async def reconcile(self, key: Hashable) -> None:
        raise NotImplementedError(f"{self.name} does not reconcile")

    async def report(self, key: Hashable, exc: BaseException) -> None:
        """A permanent failure of `key` (retrying cannot help): tell the user."""

    def wants(self, etype: str, key: str, old: Obj | None, new: Obj | None) -> bool:
        """Whether an informer event is worth reconciling `key` for."""
        return True

    def observe(
        self, informer: str, etype: str, key: str, old: Obj | None, new: Obj | None
    ) -> None:
        """An event of an informer named in `observes` (index, enqueue; never block)."""

    def reconciled(self, kind: str, key: Hashable) -> None:
        """`kind` (named in `follows`) reconciled `key` successfully."""

    def all_keys(self) -> Iterable[Hashable]:
        """Every object to reconcile once after taking over."""
        if self.watch is None:
            return ()
        return list(self.ctx.informers[self.watch.informer].cache)

    def desired_rows(self) -> Iterable[DesiredRow]:
        """Every NB row this kind wants, for the leader's full resync."""
        return ()

    def fan_in(self) -> dict[str, FanIn]:
        """For a source kind's changed key, the keys of this kind to reconcile."""
        return {}
