"""Where the etcd store keeps what, under its prefix.

Every part of the etcd store (reads, the watch, the group commit of
allocations, subnet changes) must agree on the key layout; it is written
down once, here. Under the prefix P (default /kovn/ipam):

    P/subnets/<name>              SubnetSpec JSON (its mod_revision is the
                                  subnet's revision)
    P/pools/<subnet>/<name>       PoolSpec JSON
    P/owners/<net>/<ns>/<pod>/<nic>  AllocationRecord JSON
    P/ips/<subnet>/<ip>           owner key
    P/macs/<mac>                  owner key
    P/cooling/<subnet>/<ip>       Cooling JSON
    P/meta/subnets                touched by every subnet/pool change
"""

from __future__ import annotations


class Keys:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix.encode()

    def k(self, *parts: str) -> bytes:
        """P/part/part/...: k("owners", "") is the prefix of every owner record."""
        return self.prefix + b"/" + "/".join(parts).encode()

    def split(self, key: bytes) -> tuple[str, str]:
        """(kind, rest) of a key under P: b"P/owners/a/b/c/d" -> ("owners", "a/b/c/d")."""
        kind, _, rest = key[len(self.prefix) + 1 :].decode().partition("/")
        return kind, rest
