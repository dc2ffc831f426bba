"""What the API server hands out itself, and what kind hooks may consult.

Service cluster IPs and node ports are allocated by the API server, not by
a controller, so a Service is answered with them set. The allocator and
the cluster's current Services are the only state beyond the object that
the per-kind hooks (`kinds`) need; `KindContext` carries them so the hooks
stay free of the store.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from .errors import ApiError
from .resources import Obj


class ServiceAllocator:
    """Cluster IPs and node ports, allocated the way the apiserver does."""

    def __init__(self, cidr: str = "10.96.0.0/16") -> None:
        self.net = ipaddress.ip_network(cidr)
        self._next = 10

    def allocate_ip(self, used: set[str]) -> str:
        size = self.net.num_addresses
        for _ in range(size):
            off = self._next
            self._next = self._next + 1 if self._next + 1 < size - 1 else 2
            ip = str(self.net.network_address + off)
            if ip not in used:
                return ip
        raise ApiError(
            500, "Internal error: failed to allocate a serviceIP: range is full", "InternalError"
        )

    def allocate_port(self, used: set[int]) -> int:
        for port in range(30000, 32768):
            if port not in used:
                return port
        raise ApiError(422, "failed to allocate a nodePort: range is full", "Invalid")


class KindContext:
    """What kind hooks may look at beyond the object itself."""

    def __init__(self, allocator: ServiceAllocator, services: Callable[[], list[Obj]]) -> None:
        self.allocator = allocator
        self._services = services

    def services(self) -> list[Obj]:
        """Every stored Service (for the cluster IPs and node ports in use)."""
        return self._services()
