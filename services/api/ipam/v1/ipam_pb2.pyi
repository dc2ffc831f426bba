# Generated from protos/ by `make protos`. Do not edit.
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Family(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FAMILY_UNSPECIFIED: _ClassVar[Family]
    IPV4: _ClassVar[Family]
    IPV6: _ClassVar[Family]
FAMILY_UNSPECIFIED: Family
IPV4: Family
IPV6: Family

class Subnet(_message.Message):
    __slots__ = ("name", "cidrs", "gateways", "excludes", "revision")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CIDRS_FIELD_NUMBER: _ClassVar[int]
    GATEWAYS_FIELD_NUMBER: _ClassVar[int]
    EXCLUDES_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    name: str
    cidrs: _containers.RepeatedScalarFieldContainer[str]
    gateways: _containers.RepeatedScalarFieldContainer[str]
    excludes: _containers.RepeatedScalarFieldContainer[str]
    revision: int
    def __init__(self, name: _Optional[str] = ..., cidrs: _Optional[_Iterable[str]] = ..., gateways: _Optional[_Iterable[str]] = ..., excludes: _Optional[_Iterable[str]] = ..., revision: _Optional[int] = ...) -> None: ...

class CreateSubnetRequest(_message.Message):
    __slots__ = ("subnet",)
    SUBNET_FIELD_NUMBER: _ClassVar[int]
    subnet: Subnet
    def __init__(self, subnet: _Optional[_Union[Subnet, _Mapping]] = ...) -> None: ...

class UpdateSubnetRequest(_message.Message):
    __slots__ = ("subnet",)
    SUBNET_FIELD_NUMBER: _ClassVar[int]
    subnet: Subnet
    def __init__(self, subnet: _Optional[_Union[Subnet, _Mapping]] = ...) -> None: ...

class DeleteSubnetRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteSubnetResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetSubnetRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListSubnetsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListSubnetsResponse(_message.Message):
    __slots__ = ("subnets",)
    SUBNETS_FIELD_NUMBER: _ClassVar[int]
    subnets: _containers.RepeatedCompositeFieldContainer[Subnet]
    def __init__(self, subnets: _Optional[_Iterable[_Union[Subnet, _Mapping]]] = ...) -> None: ...

class Pool(_message.Message):
    __slots__ = ("subnet", "name", "addresses")
    SUBNET_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    subnet: str
    name: str
    addresses: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, subnet: _Optional[str] = ..., name: _Optional[str] = ..., addresses: _Optional[_Iterable[str]] = ...) -> None: ...

class CreatePoolRequest(_message.Message):
    __slots__ = ("pool",)
    POOL_FIELD_NUMBER: _ClassVar[int]
    pool: Pool
    def __init__(self, pool: _Optional[_Union[Pool, _Mapping]] = ...) -> None: ...

class DeletePoolRequest(_message.Message):
    __slots__ = ("subnet", "name")
    SUBNET_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    subnet: str
    name: str
    def __init__(self, subnet: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class DeletePoolResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListPoolsRequest(_message.Message):
    __slots__ = ("subnet",)
    SUBNET_FIELD_NUMBER: _ClassVar[int]
    subnet: str
    def __init__(self, subnet: _Optional[str] = ...) -> None: ...

class ListPoolsResponse(_message.Message):
    __slots__ = ("pools",)
    POOLS_FIELD_NUMBER: _ClassVar[int]
    pools: _containers.RepeatedCompositeFieldContainer[Pool]
    def __init__(self, pools: _Optional[_Iterable[_Union[Pool, _Mapping]]] = ...) -> None: ...

class Owner(_message.Message):
    __slots__ = ("network", "namespace", "pod", "nic")
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    POD_FIELD_NUMBER: _ClassVar[int]
    NIC_FIELD_NUMBER: _ClassVar[int]
    network: str
    namespace: str
    pod: str
    nic: str
    def __init__(self, network: _Optional[str] = ..., namespace: _Optional[str] = ..., pod: _Optional[str] = ..., nic: _Optional[str] = ...) -> None: ...

class AllocateRequest(_message.Message):
    __slots__ = ("owner", "pod_uid", "container_id", "ips", "mac", "pool", "families")
    OWNER_FIELD_NUMBER: _ClassVar[int]
    POD_UID_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_ID_FIELD_NUMBER: _ClassVar[int]
    IPS_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    POOL_FIELD_NUMBER: _ClassVar[int]
    FAMILIES_FIELD_NUMBER: _ClassVar[int]
    owner: Owner
    pod_uid: str
    container_id: str
    ips: _containers.RepeatedScalarFieldContainer[str]
    mac: str
    pool: str
    families: _containers.RepeatedScalarFieldContainer[Family]
    def __init__(self, owner: _Optional[_Union[Owner, _Mapping]] = ..., pod_uid: _Optional[str] = ..., container_id: _Optional[str] = ..., ips: _Optional[_Iterable[str]] = ..., mac: _Optional[str] = ..., pool: _Optional[str] = ..., families: _Optional[_Iterable[_Union[Family, str]]] = ...) -> None: ...

class Address(_message.Message):
    __slots__ = ("ip", "prefix_length", "address", "gateway", "family", "cidr")
    IP_FIELD_NUMBER: _ClassVar[int]
    PREFIX_LENGTH_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_FIELD_NUMBER: _ClassVar[int]
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    CIDR_FIELD_NUMBER: _ClassVar[int]
    ip: str
    prefix_length: int
    address: str
    gateway: str
    family: Family
    cidr: str
    def __init__(self, ip: _Optional[str] = ..., prefix_length: _Optional[int] = ..., address: _Optional[str] = ..., gateway: _Optional[str] = ..., family: _Optional[_Union[Family, str]] = ..., cidr: _Optional[str] = ...) -> None: ...

class Allocation(_message.Message):
    __slots__ = ("owner", "pod_uid", "container_id", "addresses", "mac", "pool", "created_unix_ms", "reused")
    OWNER_FIELD_NUMBER: _ClassVar[int]
    POD_UID_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    POOL_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    REUSED_FIELD_NUMBER: _ClassVar[int]
    owner: Owner
    pod_uid: str
    container_id: str
    addresses: _containers.RepeatedCompositeFieldContainer[Address]
    mac: str
    pool: str
    created_unix_ms: int
    reused: bool
    def __init__(self, owner: _Optional[_Union[Owner, _Mapping]] = ..., pod_uid: _Optional[str] = ..., container_id: _Optional[str] = ..., addresses: _Optional[_Iterable[_Union[Address, _Mapping]]] = ..., mac: _Optional[str] = ..., pool: _Optional[str] = ..., created_unix_ms: _Optional[int] = ..., reused: _Optional[bool] = ...) -> None: ...

class ReleaseRequest(_message.Message):
    __slots__ = ("owner",)
    OWNER_FIELD_NUMBER: _ClassVar[int]
    owner: Owner
    def __init__(self, owner: _Optional[_Union[Owner, _Mapping]] = ...) -> None: ...

class ReleaseAddressRequest(_message.Message):
    __slots__ = ("subnet", "ip")
    SUBNET_FIELD_NUMBER: _ClassVar[int]
    IP_FIELD_NUMBER: _ClassVar[int]
    subnet: str
    ip: str
    def __init__(self, subnet: _Optional[str] = ..., ip: _Optional[str] = ...) -> None: ...

class ReleaseResponse(_message.Message):
    __slots__ = ("released",)
    RELEASED_FIELD_NUMBER: _ClassVar[int]
    released: _containers.RepeatedCompositeFieldContainer[Allocation]
    def __init__(self, released: _Optional[_Iterable[_Union[Allocation, _Mapping]]] = ...) -> None: ...

class GetAllocationRequest(_message.Message):
    __slots__ = ("owner",)
    OWNER_FIELD_NUMBER: _ClassVar[int]
    owner: Owner
    def __init__(self, owner: _Optional[_Union[Owner, _Mapping]] = ...) -> None: ...

class ListAllocationsRequest(_message.Message):
    __slots__ = ("subnet", "namespace", "pod", "page_size", "page_token")
    SUBNET_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    POD_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    subnet: str
    namespace: str
    pod: str
    page_size: int
    page_token: str
    def __init__(self, subnet: _Optional[str] = ..., namespace: _Optional[str] = ..., pod: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListAllocationsResponse(_message.Message):
    __slots__ = ("allocations", "next_page_token")
    ALLOCATIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    allocations: _containers.RepeatedCompositeFieldContainer[Allocation]
    next_page_token: str
    def __init__(self, allocations: _Optional[_Iterable[_Union[Allocation, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetUsageRequest(_message.Message):
    __slots__ = ("subnet",)
    SUBNET_FIELD_NUMBER: _ClassVar[int]
    subnet: str
    def __init__(self, subnet: _Optional[str] = ...) -> None: ...

class Usage(_message.Message):
    __slots__ = ("subnet", "family", "cidr", "total", "used", "free", "excluded", "cooling", "pooled")
    SUBNET_FIELD_NUMBER: _ClassVar[int]
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    CIDR_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    USED_FIELD_NUMBER: _ClassVar[int]
    FREE_FIELD_NUMBER: _ClassVar[int]
    EXCLUDED_FIELD_NUMBER: _ClassVar[int]
    COOLING_FIELD_NUMBER: _ClassVar[int]
    POOLED_FIELD_NUMBER: _ClassVar[int]
    subnet: str
    family: Family
    cidr: str
    total: int
    used: int
    free: int
    excluded: int
    cooling: int
    pooled: int
    def __init__(self, subnet: _Optional[str] = ..., family: _Optional[_Union[Family, str]] = ..., cidr: _Optional[str] = ..., total: _Optional[int] = ..., used: _Optional[int] = ..., free: _Optional[int] = ..., excluded: _Optional[int] = ..., cooling: _Optional[int] = ..., pooled: _Optional[int] = ...) -> None: ...

class GetUsageResponse(_message.Message):
    __slots__ = ("usage",)
    USAGE_FIELD_NUMBER: _ClassVar[int]
    usage: _containers.RepeatedCompositeFieldContainer[Usage]
    def __init__(self, usage: _Optional[_Iterable[_Union[Usage, _Mapping]]] = ...) -> None: ...

class ReconcileRequest(_message.Message):
    __slots__ = ("subnet", "live", "allocated_before_unix_ms", "dry_run")
    SUBNET_FIELD_NUMBER: _ClassVar[int]
    LIVE_FIELD_NUMBER: _ClassVar[int]
    ALLOCATED_BEFORE_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    subnet: str
    live: _containers.RepeatedCompositeFieldContainer[Owner]
    allocated_before_unix_ms: int
    dry_run: bool
    def __init__(self, subnet: _Optional[str] = ..., live: _Optional[_Iterable[_Union[Owner, _Mapping]]] = ..., allocated_before_unix_ms: _Optional[int] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class ReconcileResponse(_message.Message):
    __slots__ = ("released",)
    RELEASED_FIELD_NUMBER: _ClassVar[int]
    released: _containers.RepeatedCompositeFieldContainer[Allocation]
    def __init__(self, released: _Optional[_Iterable[_Union[Allocation, _Mapping]]] = ...) -> None: ...
