"""An embedded Kubernetes API server for the kovn sandbox.

kovn has no Kubernetes on this machine, so the sandbox serves the real REST
protocol itself: kubernetes-asyncio and kubectl talk to it unchanged. It is
the one stand-in the project allows, so it behaves as Kubernetes documents
(server-set metadata, optimistic concurrency, finalizers, graceful pod
deletion, selectors, paging, watches with resumption and bookmarks, CRDs
with schema validation) and keeps its objects in SQLite across restarts.

Map: `server` (the object you start; wires the rest) -> `handlers` (HTTP,
routing; `params` reads the query and body) -> `verbs.Api`, the verbs by
what they do: `listing` (selectors, paging), `writes` (create, update,
patch, apply, binding), `deletion` (delete, propagation, namespaces), each
checking bodies through `admission` -> `objects` (a write and what must go
with it: CRD serving) -> `store` (memory index, versions, history,
watches) -> `persistence` (SQLite group commit). Per-kind behaviour is the
`kinds` table, with its hooks in `pods`, `services`, `crds`, `networking`,
`workloads` (apps/batch defaults), over `validation` (shared field
errors), `allocation` (cluster IPs, node ports) and `schema` (CRD OpenAPI
checks). Beside them: `controllers`
(namespace termination, garbage collection, service accounts, event TTL;
woken by committed events, they call the verbs), `background` (their
tasks), `bootstrap` (a fresh cluster's namespaces and CRDs), `patch`,
`selectors`, `scale` (the scale subresource of deployments, replicasets
and statefulsets), `watch` (event streams), `tables` (kubectl columns),
`discovery` (discovery and OpenAPI documents), `resources`, `registry`,
`errors`, `options`, `tls`, `metrics`, `testing`.
"""

from .server import KubeApiServer

__all__ = ["KubeApiServer"]
