# Generated from protos/ by `make protos`. Do not edit.
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetPodNetworkRequest(_message.Message):
    __slots__ = ("namespace", "name", "nic", "pod_uid", "node")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NIC_FIELD_NUMBER: _ClassVar[int]
    POD_UID_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    name: str
    nic: str
    pod_uid: str
    node: str
    def __init__(self, namespace: _Optional[str] = ..., name: _Optional[str] = ..., nic: _Optional[str] = ..., pod_uid: _Optional[str] = ..., node: _Optional[str] = ...) -> None: ...

class IPConfig(_message.Message):
    __slots__ = ("address", "gateway")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_FIELD_NUMBER: _ClassVar[int]
    address: str
    gateway: str
    def __init__(self, address: _Optional[str] = ..., gateway: _Optional[str] = ...) -> None: ...

class Route(_message.Message):
    __slots__ = ("destination", "gateway")
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_FIELD_NUMBER: _ClassVar[int]
    destination: str
    gateway: str
    def __init__(self, destination: _Optional[str] = ..., gateway: _Optional[str] = ...) -> None: ...

class QoS(_message.Message):
    __slots__ = ("ingress_rate_bps", "egress_rate_bps")
    INGRESS_RATE_BPS_FIELD_NUMBER: _ClassVar[int]
    EGRESS_RATE_BPS_FIELD_NUMBER: _ClassVar[int]
    ingress_rate_bps: int
    egress_rate_bps: int
    def __init__(self, ingress_rate_bps: _Optional[int] = ..., egress_rate_bps: _Optional[int] = ...) -> None: ...

class PodNetwork(_message.Message):
    __slots__ = ("namespace", "name", "pod_uid", "nic", "logical_port", "logical_switch", "mac", "mtu", "ips", "routes", "qos", "node")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    POD_UID_FIELD_NUMBER: _ClassVar[int]
    NIC_FIELD_NUMBER: _ClassVar[int]
    LOGICAL_PORT_FIELD_NUMBER: _ClassVar[int]
    LOGICAL_SWITCH_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    MTU_FIELD_NUMBER: _ClassVar[int]
    IPS_FIELD_NUMBER: _ClassVar[int]
    ROUTES_FIELD_NUMBER: _ClassVar[int]
    QOS_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    name: str
    pod_uid: str
    nic: str
    logical_port: str
    logical_switch: str
    mac: str
    mtu: int
    ips: _containers.RepeatedCompositeFieldContainer[IPConfig]
    routes: _containers.RepeatedCompositeFieldContainer[Route]
    qos: QoS
    node: str
    def __init__(self, namespace: _Optional[str] = ..., name: _Optional[str] = ..., pod_uid: _Optional[str] = ..., nic: _Optional[str] = ..., logical_port: _Optional[str] = ..., logical_switch: _Optional[str] = ..., mac: _Optional[str] = ..., mtu: _Optional[int] = ..., ips: _Optional[_Iterable[_Union[IPConfig, _Mapping]]] = ..., routes: _Optional[_Iterable[_Union[Route, _Mapping]]] = ..., qos: _Optional[_Union[QoS, _Mapping]] = ..., node: _Optional[str] = ...) -> None: ...

class GetNodeNetworkRequest(_message.Message):
    __slots__ = ("node",)
    NODE_FIELD_NUMBER: _ClassVar[int]
    node: str
    def __init__(self, node: _Optional[str] = ...) -> None: ...

class NodeNetwork(_message.Message):
    __slots__ = ("node", "logical_port", "mac", "ips", "mtu", "cluster_cidrs", "join_cidrs", "nat_outgoing_cidrs", "service_cidrs")
    NODE_FIELD_NUMBER: _ClassVar[int]
    LOGICAL_PORT_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    IPS_FIELD_NUMBER: _ClassVar[int]
    MTU_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_CIDRS_FIELD_NUMBER: _ClassVar[int]
    JOIN_CIDRS_FIELD_NUMBER: _ClassVar[int]
    NAT_OUTGOING_CIDRS_FIELD_NUMBER: _ClassVar[int]
    SERVICE_CIDRS_FIELD_NUMBER: _ClassVar[int]
    node: str
    logical_port: str
    mac: str
    ips: _containers.RepeatedCompositeFieldContainer[IPConfig]
    mtu: int
    cluster_cidrs: _containers.RepeatedScalarFieldContainer[str]
    join_cidrs: _containers.RepeatedScalarFieldContainer[str]
    nat_outgoing_cidrs: _containers.RepeatedScalarFieldContainer[str]
    service_cidrs: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, node: _Optional[str] = ..., logical_port: _Optional[str] = ..., mac: _Optional[str] = ..., ips: _Optional[_Iterable[_Union[IPConfig, _Mapping]]] = ..., mtu: _Optional[int] = ..., cluster_cidrs: _Optional[_Iterable[str]] = ..., join_cidrs: _Optional[_Iterable[str]] = ..., nat_outgoing_cidrs: _Optional[_Iterable[str]] = ..., service_cidrs: _Optional[_Iterable[str]] = ...) -> None: ...
