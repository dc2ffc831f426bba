"""What a fresh cluster has before anyone writes to it.

The real API server and its controllers create the system namespaces; kovn
also needs the NetworkAttachmentDefinition CRD (Multus' NPWG spec) present,
as a cluster with Multus installed has it. Created through the verbs, so
they are stored exactly as a client's would be, once, on first start.
"""

from __future__ import annotations

import copy

from .options import WriteOptions
from .registry import Registry
from .resources import CRD_GR, NS_GR, Obj
from .writes import Writes

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


async def bootstrap(writes: Writes, registry: Registry) -> None:
    """Create whichever of the system namespaces and CRDs is missing."""
    store = writes.store
    ns_rt = registry.lookup("", "v1", "namespaces")
    assert ns_rt is not None
    for ns in SYSTEM_NAMESPACES:
        if store.get(NS_GR, "", ns) is None:
            await writes.create(ns_rt, "", {"metadata": {"name": ns}}, WriteOptions())
    crd_rt = registry.lookup(CRD_GR[0], "v1", CRD_GR[1])
    assert crd_rt is not None
    if store.get(CRD_GR, "", NAD_CRD["metadata"]["name"]) is None:
        await writes.create(crd_rt, "", copy.deepcopy(NAD_CRD), WriteOptions())


NAD_CRD: Obj = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "network-attachment-definitions.k8s.cni.cncf.io"},
    "spec": {
        "group": "k8s.cni.cncf.io",
        "scope": "Namespaced",
        "names": {
            "plural": "network-attachment-definitions",
            "singular": "network-attachment-definition",
            "kind": "NetworkAttachmentDefinition",
            "shortNames": ["net-attach-def"],
        },
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "description": "A network the pod can attach to (Multus NPWG spec).",
                        "properties": {
                            "apiVersion": {"type": "string"},
                            "kind": {"type": "string"},
                            "metadata": {"type": "object"},
                            "spec": {
                                "type": "object",
                                "properties": {"config": {"type": "string"}},
                            },
                        },
                    }
                },
            }
        ],
    },
}
