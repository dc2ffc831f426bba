"""kovn-cni entry point: answer VERSION, forward everything else to the node's
dataplane service over its unix socket, print what it says.

Kept to the stdlib and a handful of imports; start-up is measured by
bench/cni.py.
"""

from __future__ import annotations

import os
import sys

from cni_shim import fastjson, spec

_METHOD = "/kovn.dataplane.v1.Dataplane/Cni"
_DEFAULT_TIMEOUT = 120.0


def _timeout(config: dict[str, object]) -> float:
    value = config.get("timeout", _DEFAULT_TIMEOUT)
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
        return err.to_json(spec.LATEST), 1
    # The socket is named in the config, so a config that does not decode
    # cannot be forwarded: answer it here, with the same codes as the dataplane.
    try:
        config = fastjson.loads(stdin)
    except (UnicodeDecodeError, ValueError) as exc:
        err = spec.CniError(spec.DECODE_FAILURE, f"stdin: not valid JSON: {exc}")
        return err.to_json(spec.LATEST), 1
    if not isinstance(config, dict):
        err = spec.CniError(
            spec.INVALID_CONFIG, "stdin: the network configuration must be a JSON object"
        )
        return err.to_json(spec.LATEST), 1
    # Only calls that go to the dataplane pay for the socket and HTTP/2 code.
    from cni_shim.h2grpc import RpcError, TransportError, unary
    from cni_shim.wire import DecodeError, decode_cni_reply, encode_cni_request

    version = spec.reply_version(stdin)
    forwarded = {k: v for k, v in env.items() if k.startswith("CNI_")}
    path = config.get("socket")
    path = path if isinstance(path, str) and path else spec.DEFAULT_SOCKET
    unavailable = spec.NOT_AVAILABLE if command == "STATUS" else spec.TRY_AGAIN
    try:
        raw = unary(path, _METHOD, encode_cni_request(forwarded, stdin), _timeout(config))
        reply = decode_cni_reply(raw)
    except TransportError as exc:
        err = spec.CniError(unavailable, f"kovn dataplane unreachable at {path}: {exc}")
        return err.to_json(version), 1
    except RpcError as exc:
        err = spec.CniError(unavailable, f"kovn dataplane at {path} failed the call: {exc}")
        return err.to_json(version), 1
    except DecodeError as exc:
        err = spec.CniError(spec.IO_FAILURE, f"kovn dataplane at {path} sent a bad reply: {exc}")
        return err.to_json(version), 1
    return reply.stdout, reply.exit_code


def main() -> int:
    stdin = sys.stdin.buffer.read(spec.MAX_STDIN + 1) if not sys.stdin.isatty() else b""
    out, status = run(os.environ, stdin)
    sys.stdout.buffer.write(out)
    sys.stdout.buffer.flush()
    return status


if __name__ == "__main__":
    sys.exit(main())
