"""Lists: selectors, paging with continue tokens, consistent pages.

A paged list must show one version of the collection across all its pages,
as etcd's snapshot reads do for the real server. The store keeps only the
present, so the first page keeps the matching entries aside (a bounded
number of such snapshots) under an id its continue token names; later
pages read from there, and a token whose snapshot is gone is 410 Expired,
as Kubernetes answers for a compacted one.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections import OrderedDict
from dataclasses import dataclass

from .errors import bad_request, gone
from .resources import POD_GR, ResourceType
from .selectors import FieldReq, Requirement, fields_match, labels_match
from .store import Entry, Store

_SNAPSHOTS = 256


@dataclass
class ListResult:
    items: list[Entry]
    rv: int
    continue_token: str
    remaining: int | None


class Pager:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._snapshots: OrderedDict[str, tuple[int, list[Entry]]] = OrderedDict()

    def list_objects(
        self,
        rt: ResourceType,
        ns: str | None,
        labels: list[Requirement],
        fields: list[FieldReq],
        limit: int,
        cont: str,
    ) -> ListResult:
        if cont:
            rv, start, snap_id = _decode_continue(cont)
            snap = self._snapshots.get(snap_id)
            if snap is None:
                raise gone(
                    "The provided continue parameter is too old to display a consistent list "
                    "result. You can start a new list without the continue parameter."
                )
            rv, items = snap
        else:
            start, snap_id = 0, ""
            rv = self.store.rv
            node = next((f.value for f in fields if f.key == "spec.nodeName" and f.equal), None)
            scope = ns if rt.namespaced else None
            candidates = (
                self.store.pods_on_node(scope, node)
                if rt.gr == POD_GR and node is not None
                else self.store.entries(rt.gr, scope)
            )
            items = [
                e
                for _, e in candidates
                if labels_match(labels, e.obj) and fields_match(fields, e.obj)
            ]
        if limit <= 0 or start + limit >= len(items):
            if snap_id:
                self._snapshots.pop(snap_id, None)
            return ListResult(items[start:], rv, "", None)
        if not snap_id:
            snap_id = secrets.token_hex(8)
            self._snapshots[snap_id] = (rv, items)
            while len(self._snapshots) > _SNAPSHOTS:
                self._snapshots.popitem(last=False)
        end = start + limit
        token = _encode_continue(rv, end, snap_id)
        return ListResult(items[start:end], rv, token, len(items) - end)


def _encode_continue(rv: int, start: int, snap_id: str) -> str:
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": start, "id": snap_id}).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode_continue(token: str) -> tuple[int, int, str]:
    try:
        d = json.loads(base64.urlsafe_b64decode(token.encode()))
        return int(d["rv"]), int(d["start"]), str(d["id"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise bad_request(f'invalid continue token "{token}"') from None
