# ruff: noqa: E501  (messages quote the real API server word for word)
"""The Service kind: validation of its type, ports and session affinity, and
the cluster IP and node ports the API server allocates on create and keeps
on update.

kovn programs OVN load balancers from Services, so a Service must arrive
as a real server leaves it: clusterIP(s), ipFamilies, traffic policies and
node ports filled in, and changes to an allocated IP refused.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from .allocation import KindContext, ServiceAllocator
from .errors import Cause
from .resources import Obj
from .validation import show


def _service_prepare(
    svc: Obj, others: list[Obj], alloc: ServiceAllocator, old: Obj | None
) -> list[Cause]:
    spec = svc.setdefault("spec", {})
    if not isinstance(spec, dict):
        return [("spec", "FieldValueTypeInvalid", "Invalid value: must be an object")]
    stype = spec.setdefault("type", "ClusterIP")
    if stype not in ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"):
        return [
            (
                "spec.type",
                "FieldValueNotSupported",
                f'Unsupported value: {show(stype)}: supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort"',
            )
        ]
    spec.setdefault("sessionAffinity", "None")
    causes: list[Cause] = []
    ports = spec.get("ports") or []
    if not ports and stype != "ExternalName" and spec.get("clusterIP") != "None":
        causes.append(("spec.ports", "FieldValueRequired", "Required value"))
    for i, p in enumerate(ports):
        if not isinstance(p, dict) or not isinstance(p.get("port"), int):
            causes.append((f"spec.ports[{i}].port", "FieldValueRequired", "Required value"))
            continue
        p.setdefault("protocol", "TCP")
        p.setdefault("targetPort", p["port"])
        if p["protocol"] not in ("TCP", "UDP", "SCTP"):
            causes.append(
                (
                    f"spec.ports[{i}].protocol",
                    "FieldValueNotSupported",
                    f'Unsupported value: {show(p["protocol"])}: supported values: "SCTP", "TCP", "UDP"',
                )
            )
    seen: set[tuple[Any, Any]] = set()
    for i, p in enumerate(ports):
        if not isinstance(p, dict) or not isinstance(p.get("port"), int):
            continue
        if not 1 <= p["port"] <= 65535:
            causes.append(
                (
                    f"spec.ports[{i}].port",
                    "FieldValueInvalid",
                    f"Invalid value: {p['port']}: must be between 1 and 65535, inclusive",
                )
            )
        if (p["port"], p.get("protocol")) in seen:
            causes.append(
                (
                    f"spec.ports[{i}]",
                    "FieldValueDuplicate",
                    f'Duplicate value: core.ServicePort{{Port:{p["port"]}, Protocol:"{p.get("protocol")}"}}',
                )
            )
        seen.add((p["port"], p.get("protocol")))
        node_port = p.get("nodePort")
        if node_port is not None and (
            not isinstance(node_port, int) or not 30000 <= node_port <= 32767
        ):
            causes.append(
                (
                    f"spec.ports[{i}].nodePort",
                    "FieldValueInvalid",
                    f"Invalid value: {show(node_port)}: provided port is not in the valid range. The range of valid ports is 30000-32767",
                )
            )
    if len(ports) > 1:
        for i, p in enumerate(ports):
            if isinstance(p, dict) and not p.get("name"):
                causes.append((f"spec.ports[{i}].name", "FieldValueRequired", "Required value"))
    if spec.get("sessionAffinity") not in ("None", "ClientIP"):
        causes.append(
            (
                "spec.sessionAffinity",
                "FieldValueNotSupported",
                f'Unsupported value: {show(spec.get("sessionAffinity"))}: supported values: "ClientIP", "None"',
            )
        )
    if causes:
        return causes
    if stype == "ExternalName":
        return []
    if old is not None and (old.get("spec") or {}).get("clusterIP"):
        ospec = old["spec"]
        if spec.get("clusterIP") not in (None, "", ospec["clusterIP"]):
            return [
                (
                    "spec.clusterIPs[0]",
                    "FieldValueInvalid",
                    f"Invalid value: {show(spec['clusterIP'])}: may not change once set",
                )
            ]
        spec["clusterIP"] = ospec["clusterIP"]
        spec["clusterIPs"] = ospec.get("clusterIPs", [ospec["clusterIP"]])
    else:
        used = {(o.get("spec") or {}).get("clusterIP") for o in others}
        ip = spec.get("clusterIP")
        if ip in (None, ""):
            ip = alloc.allocate_ip({u for u in used if u})
        elif ip != "None":
            try:
                addr = ipaddress.ip_address(ip)
            except ValueError:
                return [
                    (
                        "spec.clusterIPs[0]",
                        "FieldValueInvalid",
                        f"Invalid value: {show(ip)}: must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                    )
                ]
            if addr not in alloc.net:
                return [
                    (
                        "spec.clusterIPs",
                        "FieldValueInvalid",
                        f'Invalid value: []string{{"{ip}"}}: failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range. The range of valid IPs is {alloc.net}',
                    )
                ]
            if ip in used:
                return [
                    (
                        "spec.clusterIPs",
                        "FieldValueInvalid",
                        f'Invalid value: []string{{"{ip}"}}: failed to allocate IP {ip}: provided IP is already allocated',
                    )
                ]
        spec["clusterIP"] = ip
        spec["clusterIPs"] = [ip]
    if spec["clusterIP"] != "None":
        spec.setdefault("ipFamilies", ["IPv6" if ":" in spec["clusterIP"] else "IPv4"])
    else:
        spec.setdefault("ipFamilies", ["IPv4"])
    spec.setdefault("ipFamilyPolicy", "SingleStack")
    spec.setdefault("internalTrafficPolicy", "Cluster")
    if stype in ("NodePort", "LoadBalancer"):
        spec.setdefault("externalTrafficPolicy", "Cluster")
        used_ports = {
            p.get("nodePort")
            for o in others
            for p in ((o.get("spec") or {}).get("ports") or [])
            if isinstance(p, dict)
        }
        for p in ports:
            if not p.get("nodePort"):
                p["nodePort"] = alloc.allocate_port({u for u in used_ports if u})
                used_ports.add(p["nodePort"])
    return []


def on_create(svc: Obj, ctx: KindContext) -> list[Cause]:
    svc["status"] = {"loadBalancer": {}}
    return _service_prepare(svc, ctx.services(), ctx.allocator, None)


def on_update(old: Obj, new: Obj, ctx: KindContext) -> list[Cause]:
    uid = old["metadata"].get("uid")
    others = [s for s in ctx.services() if s["metadata"].get("uid") != uid]
    return _service_prepare(new, others, ctx.allocator, old)
