"""The records ipam stores: subnets, pools, allocations and cool-downs.

They are plain dataclasses shared by the allocator (pure logic), the stores
(which persist them as JSON or rows) and the servicer (which turns them into
protobuf messages), so that none of those layers depends on another's types.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from typing import Any

from services.common.errors import InvalidArgument

DEFAULT_NIC = "eth0"
_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,251}[A-Za-z0-9])?$")


def check_name(value: str, field_name: str) -> str:
    """Names end up inside store keys: no slashes, no spaces, not empty."""
    if not _NAME.match(value):
        raise InvalidArgument(
            f"{value!r} is not a valid name (letters, digits, '-', '_', '.'; "
            "starts and ends alphanumeric; at most 253 characters)",
            field=field_name,
        )
    return value


@dataclass(frozen=True, order=True)
class Owner:
    network: str
    namespace: str
    pod: str
    nic: str = DEFAULT_NIC

    @functools.cached_property
    def key(self) -> str:  # the store key; asked for many times per allocation
        return f"{self.network}/{self.namespace}/{self.pod}/{self.nic}"

    @classmethod
    def from_key(cls, key: str) -> Owner:
        network, namespace, pod, nic = key.split("/")
        return cls(network, namespace, pod, nic)

    @classmethod
    def checked(cls, network: str, namespace: str, pod: str, nic: str) -> Owner:
        return cls(
            check_name(network, "owner.network"),
            check_name(namespace, "owner.namespace"),
            check_name(pod, "owner.pod"),
            check_name(nic or DEFAULT_NIC, "owner.nic"),
        )


@dataclass
class SubnetSpec:
    name: str
    cidrs: list[str]
    gateways: list[str]
    excludes: list[str] = field(default_factory=list)
    revision: int = 0

    def to_json(self) -> str:
        return json.dumps(
            {"name": self.name, "cidrs": self.cidrs, "gateways": self.gateways,
             "excludes": self.excludes}
        )  # fmt: skip

    @classmethod
    def from_json(cls, text: str | bytes, revision: int = 0) -> SubnetSpec:
        d = json.loads(text)
        return cls(d["name"], d["cidrs"], d["gateways"], d.get("excludes", []), revision)


@dataclass
class PoolSpec:
    subnet: str
    name: str
    addresses: list[str]

    def to_json(self) -> str:
        return json.dumps({"subnet": self.subnet, "name": self.name, "addresses": self.addresses})

    @classmethod
    def from_json(cls, text: str | bytes) -> PoolSpec:
        d = json.loads(text)
        return cls(d["subnet"], d["name"], d["addresses"])


@dataclass
class AllocationRecord:
    owner: Owner
    ips: list[str]
    mac: str
    pod_uid: str = ""
    container_id: str = ""
    pool: str = ""
    created_ms: int = 0
    # The store's version of the record (etcd mod_revision); 0 if unknown.
    revision: int = 0

    def to_json(self) -> str:
        return json.dumps(
            {"owner": self.owner.key, "ips": self.ips, "mac": self.mac, "pod_uid": self.pod_uid,
             "container_id": self.container_id, "pool": self.pool, "created_ms": self.created_ms}
        )  # fmt: skip

    @classmethod
    def from_json(cls, text: str | bytes, revision: int = 0) -> AllocationRecord:
        d: dict[str, Any] = json.loads(text)
        return cls(
            Owner.from_key(d["owner"]), d["ips"], d["mac"], d.get("pod_uid", ""),
            d.get("container_id", ""), d.get("pool", ""), d.get("created_ms", 0), revision,
        )  # fmt: skip

    def same_content(self, other: AllocationRecord) -> bool:
        return (self.owner, sorted(self.ips), self.mac, self.pool) == (
            other.owner, sorted(other.ips), other.mac, other.pool,
        )  # fmt: skip


@dataclass
class Cooling:
    """A released address that must not be handed to a new owner before `until_ms`."""

    subnet: str
    ip: str
    until_ms: int
    previous_owner: str

    def to_json(self) -> str:
        return json.dumps(
            {"subnet": self.subnet, "ip": self.ip, "until_ms": self.until_ms,
             "previous_owner": self.previous_owner}
        )  # fmt: skip

    @classmethod
    def from_json(cls, text: str | bytes) -> Cooling:
        d = json.loads(text)
        return cls(d["subnet"], d["ip"], d["until_ms"], d["previous_owner"])


@dataclass
class Snapshot:
    """Everything a store holds, loaded at start to rebuild the allocator."""

    subnets: list[SubnetSpec] = field(default_factory=list)
    pools: list[PoolSpec] = field(default_factory=list)
    allocations: list[AllocationRecord] = field(default_factory=list)
    cooling: list[Cooling] = field(default_factory=list)
    revision: int = 0
