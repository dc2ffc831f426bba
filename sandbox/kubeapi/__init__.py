"""An embedded Kubernetes API server for the kovn sandbox.

kovn has no Kubernetes on this machine, so the sandbox serves the real REST
protocol itself: kubernetes-asyncio and kubectl talk to it unchanged. It is
the one stand-in the project allows, so it behaves as Kubernetes documents
(server-set metadata, optimistic concurrency, finalizers, graceful pod
deletion, selectors, paging, watches with resumption and bookmarks, CRDs
with schema validation) and keeps its objects in SQLite across restarts.
"""

from .server import KubeApiServer

__all__ = ["KubeApiServer"]
