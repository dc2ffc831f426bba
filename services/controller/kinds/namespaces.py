"""The Namespace kind: watched, never reconciled.

A namespace's annotations bind it to a Subnet (`kovn.io/logical_switch`),
so the pod kind reads the cache and declares fan-in from here: pods whose
request failed are retried when a namespace changes.
"""

from __future__ import annotations

from services.controller.kind import Kind, Watch


class Namespaces(Kind):
    name = "namespace"
    watch = Watch("namespaces", "", "v1", "namespaces")
    reconciles = False
