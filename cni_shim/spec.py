"""The CNI spec as kovn speaks it: versions, error codes, request parsing and
result conversion.

Stdlib only, because the shim imports it on every call; the dataplane
imports it too so that validation and the wire format of results live in one
place. Results are built in the newest format (1.1.0) and converted down to
the cniVersion the runtime asked for.
"""

from __future__ import annotations

from cni_shim import fastjson

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing and collections cost start-up time; annotations are strings
    from collections.abc import Mapping
    from typing import Any

SUPPORTED_VERSIONS = ("0.4.0", "1.0.0", "1.1.0")
LATEST = "1.1.0"
COMMANDS = ("ADD", "DEL", "CHECK", "VERSION", "STATUS", "GC")
DEFAULT_SOCKET = "/run/kovn/dataplane.sock"
MAX_STDIN = 1 << 20

# The spec's well-known error codes.
INCOMPATIBLE_VERSION = 1
UNSUPPORTED_FIELD = 2
UNKNOWN_CONTAINER = 3
INVALID_ENV = 4
IO_FAILURE = 5
DECODE_FAILURE = 6
INVALID_CONFIG = 7
TRY_AGAIN = 11
NOT_AVAILABLE = 50
LIMITED_CONNECTIVITY = 51
# kovn's own codes (the spec leaves 100 and above to plugins).
POD_NOT_FOUND = 100
POD_NETWORK_REFUSED = 101
IFNAME_TAKEN = 102
NETNS_MISSING = 103
CHECK_FAILED = 104
DATAPLANE_FAILURE = 105

_ID_FIRST = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_ID_REST = _ID_FIRST | frozenset("_.-")
_MAX_CONTAINER_ID = 256


class CniError(Exception):
    """A CNI failure, printed as the spec's error object."""

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.details = details

    def to_json(self, version: str) -> bytes:
        body: dict[str, Any] = {"cniVersion": version, "code": self.code, "msg": self.msg}
        if self.details:
            body["details"] = self.details
        return fastjson.dumps(body).encode()


class Request:
    """One validated CNI invocation (a plain class: the shim avoids dataclasses'
    import cost)."""

    __slots__ = ("args", "command", "config", "container_id", "ifname", "netns", "path", "version")

    def __init__(
        self,
        command: str,
        version: str,
        config: dict[str, Any],
        container_id: str = "",
        netns: str = "",
        ifname: str = "",
        args: dict[str, str] | None = None,
        path: str = "",
    ) -> None:
        self.command = command
        self.version = version
        self.config = config
        self.container_id = container_id
        self.netns = netns
        self.ifname = ifname
        self.args = args or {}
        self.path = path


def reply_version(stdin: bytes) -> str:
    """The cniVersion to answer in: the request's if supported, else the latest."""
    try:
        version = fastjson.loads(stdin).get("cniVersion")
    except (ValueError, AttributeError):
        return LATEST
    return version if version in SUPPORTED_VERSIONS else LATEST


def version_reply(stdin: bytes) -> bytes:
    """The VERSION answer."""
    return fastjson.dumps(
        {"cniVersion": reply_version(stdin), "supportedVersions": list(SUPPORTED_VERSIONS)}
    ).encode()


def _env(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "")
    if not value:
        raise CniError(INVALID_ENV, f"{name}: missing")
    return value


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def parse_args(raw: str) -> dict[str, str]:
    """CNI_ARGS "K1=V1;K2=V2" as a dict."""
    out: dict[str, str] = {}
    for part in raw.split(";"):
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise CniError(INVALID_ENV, f"CNI_ARGS: {part!r} is not KEY=VALUE")
        out[key] = value
    return out


def check_container_id(value: str) -> str:
    # The spec's pattern ^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$, checked without `re`
    # (importing it would cost the shim several milliseconds).
    if (
        not value
        or len(value) > _MAX_CONTAINER_ID
        or value[0] not in _ID_FIRST
        or not _ID_REST.issuperset(value)
    ):
        raise CniError(
            INVALID_ENV,
            f"CNI_CONTAINERID: {value[:80]!r} is not a container ID "
            "(letters, digits, '_', '.', '-'; starting with a letter or digit; "
            f"at most {_MAX_CONTAINER_ID} characters)",
        )
    return value


def check_ifname(value: str) -> str:
    if (
        len(value) > 15
        or value in (".", "..")
        or any(c in value for c in "/:")
        or any(c.isspace() for c in value)
    ):
        raise CniError(
            INVALID_ENV,
            f"CNI_IFNAME: {value[:40]!r} is not an interface name "
            "(at most 15 characters, no '/', ':' or spaces)",
        )
    return value


def parse(env: Mapping[str, str], stdin: bytes) -> Request:
    """Validate a raw CNI request; raises CniError with the spec's code."""
    command = _env(env, "CNI_COMMAND")
    if command not in COMMANDS:
        raise CniError(INVALID_ENV, f"CNI_COMMAND: unknown command {command[:40]!r}")
    if len(stdin) > MAX_STDIN:
        raise CniError(
            INVALID_CONFIG, f"stdin: {len(stdin)} bytes, more than the limit of {MAX_STDIN}"
        )
    try:
        config = fastjson.loads(stdin)
    except (UnicodeDecodeError, ValueError) as err:
        raise CniError(DECODE_FAILURE, f"stdin: not valid JSON: {err}") from None
    if not isinstance(config, dict):
        raise CniError(INVALID_CONFIG, "stdin: the network configuration must be a JSON object")
    version = config.get("cniVersion")
    if not isinstance(version, str) or not version:
        raise CniError(INVALID_CONFIG, "cniVersion: missing")
    if version not in SUPPORTED_VERSIONS:
        raise CniError(
            INCOMPATIBLE_VERSION,
            f"cniVersion: {version[:20]!r} is not supported",
            "supported: " + ", ".join(SUPPORTED_VERSIONS),
        )
    for key in ("name", "type"):
        if not isinstance(config.get(key), str) or not config[key]:
            raise CniError(INVALID_CONFIG, f"{key}: missing or not a string")
    if command in ("STATUS", "GC") and _version_key(version) < (1, 1, 0):
        raise CniError(
            INCOMPATIBLE_VERSION, f"cniVersion: {command} needs 1.1.0, the request says {version}"
        )
    request = Request(command=command, version=version, config=config, path=env.get("CNI_PATH", ""))
    if command in ("ADD", "CHECK", "DEL"):
        container_id = check_container_id(_env(env, "CNI_CONTAINERID"))
        ifname = check_ifname(_env(env, "CNI_IFNAME"))
        netns = _env(env, "CNI_NETNS") if command != "DEL" else env.get("CNI_NETNS", "")
        if netns and not netns.startswith("/"):
            raise CniError(INVALID_ENV, f"CNI_NETNS: {netns[:80]!r} is not an absolute path")
        request = Request(
            command=command,
            version=version,
            config=config,
            container_id=container_id,
            netns=netns,
            ifname=ifname,
            args=parse_args(env.get("CNI_ARGS", "")),
            path=request.path,
        )
    return request


def convert_result(result: Mapping[str, Any], version: str) -> dict[str, Any]:
    """A 1.1.0-shaped result in the format of `version`."""
    out: dict[str, Any] = {"cniVersion": version}
    old = _version_key(version) < (1, 1, 0)
    interfaces = []
    for iface in result.get("interfaces", []):
        item = dict(iface)
        if old:
            for key in ("mtu", "socketPath", "pciID"):
                item.pop(key, None)
        interfaces.append(item)
    if interfaces:
        out["interfaces"] = interfaces
    ips = []
    for ip in result.get("ips", []):
        item = dict(ip)
        if _version_key(version) < (1, 0, 0):
            item["version"] = "6" if ":" in item["address"] else "4"
        ips.append(item)
    if ips:
        out["ips"] = ips
    if result.get("routes"):
        out["routes"] = [dict(r) for r in result["routes"]]
    out["dns"] = dict(result.get("dns", {}))
    return out


def socket_path(stdin: bytes) -> str:
    """The dataplane socket named in the network config ("socket"), or the default."""
    try:
        value = fastjson.loads(stdin).get("socket")
    except (ValueError, AttributeError):
        return DEFAULT_SOCKET
    return value if isinstance(value, str) and value else DEFAULT_SOCKET
