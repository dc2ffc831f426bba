"""An embedded Kubernetes API server for the kovn sandbox.

kovn has no Kubernetes on this machine, so the sandbox serves the real REST
protocol itself: kubernetes-asyncio and kubectl talk to it unchanged. It is
the one stand-in the project allows, so it behaves as Kubernetes documents
(server-set metadata, optimistic concurrency, finalizers, graceful pod
deletion, selectors, paging, watches with resumption and bookmarks, CRDs
with schema validation) and keeps its objects in SQLite across restarts.

Map: `server` (the object you start) -> `handlers` (HTTP, routing, verbs'
parameters) -> `objects` (verb semantics) -> `store` (memory index, versions,
history, watches) -> `persistence` (SQLite group commit). Beside them:
`kinds` (per-kind defaulting and validation), `schema` (CRD OpenAPI
checks), `patch`, `selectors`, `watch` (event streams), `tables` (kubectl
columns), `discovery` (discovery and OpenAPI documents), `controllers`
(namespace termination, garbage collection), `tls`, `metrics`, `testing`.
"""

from .server import KubeApiServer

__all__ = ["KubeApiServer"]
