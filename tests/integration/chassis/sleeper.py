"""A minimal service on the kovn chassis, for testing the chassis itself.

Its calls carry raw bytes (no .proto), which is all the chassis tests need:
`Sleep` stays in flight for the number of seconds it is sent (so a test can
send SIGTERM while a call is running), `Fail` raises a typed error and
`Boom` an unexpected one.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass

import grpc

from services.common.config import ServerConfig
from services.common.errors import InvalidArgument
from services.common.grpc_types import Context
from services.common.health import Health
from services.common.server import Service, run

SERVICE = "kovn.test.v1.Sleeper"


@dataclass
class SleeperConfig(ServerConfig):
    # Like a service whose dependency is not there yet at start.
    start_not_serving: bool = False


class SleeperService(Service):
    name = "sleeper"

    def __init__(self, config: SleeperConfig) -> None:
        self.config = config

    async def start(self, health: Health) -> None:
        if self.config.start_not_serving:
            health.set(SERVICE, False)

    def register(self, server: grpc.aio.Server) -> list[str]:
        async def sleep(request: bytes, context: Context) -> bytes:
            await asyncio.sleep(float(request.decode()))  # the work being done, not a wait
            return b"done"

        async def fail(request: bytes, context: Context) -> bytes:
            raise InvalidArgument(f"{request.decode()!r} is not a valid CIDR", field="cidr")

        async def boom(request: bytes, context: Context) -> bytes:
            raise ValueError("unexpected")

        handlers = {
            name: grpc.unary_unary_rpc_method_handler(fn)
            for name, fn in (("Sleep", sleep), ("Fail", fail), ("Boom", boom))
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
        return [SERVICE]


def main(argv: list[str]) -> int:
    return run(SleeperService, SleeperConfig, prog="sleeper", argv=argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
