# Generated from protos/ by `make protos`. Do not edit.
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CniRequest(_message.Message):
    __slots__ = ("env", "stdin")
    class EnvEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ENV_FIELD_NUMBER: _ClassVar[int]
    STDIN_FIELD_NUMBER: _ClassVar[int]
    env: _containers.ScalarMap[str, str]
    stdin: bytes
    def __init__(self, env: _Optional[_Mapping[str, str]] = ..., stdin: _Optional[bytes] = ...) -> None: ...

class CniReply(_message.Message):
    __slots__ = ("stdout", "exit_code", "error_code")
    STDOUT_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    stdout: bytes
    exit_code: int
    error_code: int
    def __init__(self, stdout: _Optional[bytes] = ..., exit_code: _Optional[int] = ..., error_code: _Optional[int] = ...) -> None: ...

class ListAttachmentsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListAttachmentsResponse(_message.Message):
    __slots__ = ("attachments",)
    ATTACHMENTS_FIELD_NUMBER: _ClassVar[int]
    attachments: _containers.RepeatedCompositeFieldContainer[Attachment]
    def __init__(self, attachments: _Optional[_Iterable[_Union[Attachment, _Mapping]]] = ...) -> None: ...

class GetAttachmentRequest(_message.Message):
    __slots__ = ("container_id", "ifname")
    CONTAINER_ID_FIELD_NUMBER: _ClassVar[int]
    IFNAME_FIELD_NUMBER: _ClassVar[int]
    container_id: str
    ifname: str
    def __init__(self, container_id: _Optional[str] = ..., ifname: _Optional[str] = ...) -> None: ...

class Attachment(_message.Message):
    __slots__ = ("container_id", "ifname", "netns", "host_ifname", "namespace", "name", "pod_uid", "logical_port", "mac", "ips", "ovn_installed")
    CONTAINER_ID_FIELD_NUMBER: _ClassVar[int]
    IFNAME_FIELD_NUMBER: _ClassVar[int]
    NETNS_FIELD_NUMBER: _ClassVar[int]
    HOST_IFNAME_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    POD_UID_FIELD_NUMBER: _ClassVar[int]
    LOGICAL_PORT_FIELD_NUMBER: _ClassVar[int]
    MAC_FIELD_NUMBER: _ClassVar[int]
    IPS_FIELD_NUMBER: _ClassVar[int]
    OVN_INSTALLED_FIELD_NUMBER: _ClassVar[int]
    container_id: str
    ifname: str
    netns: str
    host_ifname: str
    namespace: str
    name: str
    pod_uid: str
    logical_port: str
    mac: str
    ips: _containers.RepeatedScalarFieldContainer[str]
    ovn_installed: bool
    def __init__(self, container_id: _Optional[str] = ..., ifname: _Optional[str] = ..., netns: _Optional[str] = ..., host_ifname: _Optional[str] = ..., namespace: _Optional[str] = ..., name: _Optional[str] = ..., pod_uid: _Optional[str] = ..., logical_port: _Optional[str] = ..., mac: _Optional[str] = ..., ips: _Optional[_Iterable[str]] = ..., ovn_installed: _Optional[bool] = ...) -> None: ...
