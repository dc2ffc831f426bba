"""The ipam service's behaviour, independent of gRPC: allocator + store.

The servicer and the tests want one object that does everything the
service does; the behaviour itself is split by what it orders differently:
subnet and pool changes run alone (subnet_admin.py), allocations many at
once (allocations.py), and both act on one in-memory view of the store that
follows other replicas' writes (view.py). This module puts them together.
"""

from __future__ import annotations

from services.ipam.allocations import Allocations
from services.ipam.subnet_admin import SubnetAdmin


class IpamCore(SubnetAdmin, Allocations):
    """Subnets, pools and allocations of one ipam replica (see the module docstring)."""
