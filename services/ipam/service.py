"""The ipam service as the chassis runs it: store chosen by config, core, servicer."""

from __future__ import annotations

import grpc

from services.api.ipam.v1 import ipam_pb2, ipam_pb2_grpc
from services.common.health import Health
from services.common.server import Service
from services.ipam.config import IpamConfig
from services.ipam.core import IpamCore
from services.ipam.servicer import IpamServicer
from services.ipam.store.base import Store
from services.ipam.store.etcd import EtcdStore

SERVICE_NAME = ipam_pb2.DESCRIPTOR.services_by_name["Ipam"].full_name


def make_store(config: IpamConfig) -> Store:
    if config.store == "etcd":
        return EtcdStore(config.etcd_endpoints, prefix=config.etcd_prefix)
    from services.ipam.store.sqlite import SqliteStore

    return SqliteStore(config.sqlite_path)


class IpamService(Service):
    name = "ipam"

    def __init__(self, config: IpamConfig) -> None:
        self.config = config
        self.store = make_store(config)
        # Many replicas share an etcd store: starting their cursors at random
        # points keeps them from racing for the same addresses.
        self.core = IpamCore(
            self.store,
            cooldown_seconds=config.cooldown_seconds,
            spread=config.store == "etcd",
        )

    def register(self, server: grpc.aio.Server) -> list[str]:
        ipam_pb2_grpc.add_IpamServicer_to_server(IpamServicer(self.core), server)  # type: ignore[no-untyped-call]
        return [SERVICE_NAME]

    async def start(self, health: Health) -> None:
        await self.store.open()
        await self.core.start()
        if isinstance(self.store, EtcdStore):
            # Not serving while etcd cannot be reached: readiness probes and
            # load balancers then send allocations to a replica that can.
            self.store.on_availability = lambda ok: health.set(SERVICE_NAME, ok)

    async def stop(self) -> None:
        await self.store.close()
