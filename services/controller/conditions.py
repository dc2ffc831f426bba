"""Status conditions the controller writes on kovn's own objects.

Subnets and IPPools report a `Ready` condition in the shape Kubernetes
conventions give (type, status, reason, message, observedGeneration,
lastTransitionTime); both kinds build it here, so they cannot drift apart.
"""

from __future__ import annotations

import datetime
from typing import Any

GROUP, VERSION = "kovn.io", "v1"
API_VERSION = f"{GROUP}/{VERSION}"


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(status: bool, reason: str, message: str, generation: int) -> dict[str, Any]:
    return {
        "type": "Ready",
        "status": "True" if status else "False",
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
    }
