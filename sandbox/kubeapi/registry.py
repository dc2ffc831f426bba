"""Which resource types exist right now: built-ins plus established CRDs.

Routing, discovery and OpenAPI all read from here; CRD create/update/delete
events rebuild the custom part, so a new CRD's resources are served as soon
as its creation is answered.
"""

from __future__ import annotations

from typing import Any

from .resources import BUILTIN, ResourceType, from_crd


class Registry:
    def __init__(self) -> None:
        self._crds: dict[str, list[ResourceType]] = {}
        self._index: dict[tuple[str, str, str], ResourceType] = {}
        self._rebuild()

    def _all(self) -> list[ResourceType]:
        out = list(BUILTIN)
        for rts in self._crds.values():
            out.extend(rts)
        return out

    def _rebuild(self) -> None:
        self._index = {(rt.group, rt.version, rt.plural): rt for rt in self._all()}

    def set_crd(self, crd: dict[str, Any]) -> None:
        self._crds[crd["metadata"]["name"]] = from_crd(crd)
        self._rebuild()

    def drop_crd(self, name: str) -> None:
        self._crds.pop(name, None)
        self._rebuild()

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._index.get((group, version, plural))

    def types(self) -> list[ResourceType]:
        return self._all()

    def groups(self) -> dict[str, list[str]]:
        """group -> served versions, preferred (first declared) first."""
        out: dict[str, list[str]] = {}
        for rt in self._all():
            vs = out.setdefault(rt.group, [])
            if rt.version not in vs:
                vs.append(rt.version)
        return out

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [rt for rt in self._all() if rt.group == group and rt.version == version]

    def kinds_for(self, group: str, plural: str) -> list[ResourceType]:
        return [rt for rt in self._all() if rt.group == group and rt.plural == plural]
