"""kovn-cni entry point: answer VERSION, forward everything else to the node's
dataplane service over its unix socket, print what it says.

Kept to the stdlib and a handful of imports; start-up is measured by
bench/cni.py.
"""

from __future__ import annotations

import os
import sys

from cni_shim import spec
from cni_shim.h2grpc import RpcError, TransportError, unary
from cni_shim.wire import DecodeError, decode_cni_reply, encode_cni_request

_METHOD = "/kovn.dataplane.v1.Dataplane/Cni"
_DEFAULT_TIMEOUT = 120.0


def _timeout(stdin: bytes) -> float:
    import json

    try:
        value = json.loads(stdin).get("timeout", _DEFAULT_TIMEOUT)
    except (ValueError, AttributeError):
        return _DEFAULT_TIMEOUT
    return float(value) if isinstance(value, int | float) and value > 0 else _DEFAULT_TIMEOUT


def run(env: dict[str, str] | os._Environ[str], stdin: bytes) -> tuple[bytes, int]:
    """One CNI call: returns (stdout bytes, exit status)."""
    command = env.get("CNI_COMMAND", "")
    if command == "VERSION":
        return spec.version_reply(stdin), 0
    if len(stdin) > spec.MAX_STDIN:
        err = spec.CniError(
            spec.INVALID_CONFIG,
            f"stdin: more than {spec.MAX_STDIN} bytes, the limit for a network configuration",
        )
        return err.to_json(spec.reply_version(b"")), 1
    forwarded = {k: v for k, v in env.items() if k.startswith("CNI_")}
    path = spec.socket_path(stdin)
    unavailable = spec.NOT_AVAILABLE if command == "STATUS" else spec.TRY_AGAIN
    try:
        raw = unary(path, _METHOD, encode_cni_request(forwarded, stdin), _timeout(stdin))
        reply = decode_cni_reply(raw)
    except TransportError as exc:
        err = spec.CniError(unavailable, f"kovn dataplane unreachable at {path}: {exc}")
        return err.to_json(spec.reply_version(stdin)), 1
    except RpcError as exc:
        err = spec.CniError(unavailable, f"kovn dataplane at {path} failed the call: {exc}")
        return err.to_json(spec.reply_version(stdin)), 1
    except DecodeError as exc:
        err = spec.CniError(spec.IO_FAILURE, f"kovn dataplane at {path} sent a bad reply: {exc}")
        return err.to_json(spec.reply_version(stdin)), 1
    return reply.stdout, reply.exit_code


def main() -> int:
    stdin = sys.stdin.buffer.read(spec.MAX_STDIN + 1) if not sys.stdin.isatty() else b""
    out, status = run(os.environ, stdin)
    sys.stdout.buffer.write(out)
    sys.stdout.buffer.flush()
    return status


if __name__ == "__main__":
    sys.exit(main())
