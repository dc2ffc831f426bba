# ruff: noqa: E501  (messages quote the real API server word for word)
"""Validation of the networking kinds kovn consumes, as the real API server's.

kovn turns NetworkPolicies into OVN ACLs and Endpoints/EndpointSlices into
load-balancer backends, and trusts what the API hands it: peers that name
one kind of selector or an ipBlock, CIDRs that parse, `except` blocks inside
their CIDR, known protocols, ports in range, endpoint addresses that are IPs
of the declared family. So the stand-in must refuse what a real server
refuses, with the same field paths.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from .errors import Cause
from .resources import Obj
from .validation import show

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_IANA_SVC = re.compile(r"^(?=.*[a-z])[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_OPS = ("In", "NotIn", "Exists", "DoesNotExist")


def _selector(sel: Any, path: str, causes: list[Cause]) -> None:
    if not isinstance(sel, dict):
        causes.append(
            (path, "FieldValueTypeInvalid", "Invalid value: must be a label selector object")
        )
        return
    for k, v in (sel.get("matchLabels") or {}).items():
        if not isinstance(v, str):
            causes.append(
                (
                    f"{path}.matchLabels",
                    "FieldValueInvalid",
                    f"Invalid value: {show(v)}: label values must be strings ({k})",
                )
            )
    for i, expr in enumerate(sel.get("matchExpressions") or []):
        p = f"{path}.matchExpressions[{i}]"
        op = expr.get("operator") if isinstance(expr, dict) else None
        if op not in _OPS:
            causes.append(
                (
                    f"{p}.operator",
                    "FieldValueNotSupported",
                    f'Unsupported value: {show(op)}: supported values: "In", "NotIn", "Exists", "DoesNotExist"',
                )
            )
            continue
        values = expr.get("values") or []
        if op in ("In", "NotIn") and not values:
            causes.append(
                (
                    f"{p}.values",
                    "FieldValueRequired",
                    "Required value: must be specified when `operator` is 'In' or 'NotIn'",
                )
            )
        if op in ("Exists", "DoesNotExist") and values:
            causes.append(
                (
                    f"{p}.values",
                    "FieldValueForbidden",
                    "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                )
            )


def _cidr(value: Any, path: str, causes: list[Cause]) -> Network | None:
    try:
        return ipaddress.ip_network(str(value), strict=False) if isinstance(value, str) else None
    except ValueError:
        pass
    causes.append(
        (
            path,
            "FieldValueInvalid",
            f"Invalid value: {show(value)}: must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
        )
    )
    return None


def _strict_subnet(inner: Network, outer: Network) -> bool:
    """Inside outer and smaller; networks of different families never are."""
    if isinstance(inner, ipaddress.IPv4Network) and isinstance(outer, ipaddress.IPv4Network):
        return inner != outer and inner.subnet_of(outer)
    if isinstance(inner, ipaddress.IPv6Network) and isinstance(outer, ipaddress.IPv6Network):
        return inner != outer and inner.subnet_of(outer)
    return False


def _peer(peer: Any, path: str, causes: list[Cause]) -> None:
    if not isinstance(peer, dict):
        causes.append((path, "FieldValueTypeInvalid", "Invalid value: must be an object"))
        return
    kinds = [k for k in ("podSelector", "namespaceSelector", "ipBlock") if peer.get(k) is not None]
    if not kinds:
        causes.append((path, "FieldValueRequired", "Required value: must specify a peer"))
        return
    if "ipBlock" in kinds and len(kinds) > 1:
        causes.append(
            (path, "FieldValueForbidden", "Forbidden: may not specify more than 1 peer type")
        )
    for k in ("podSelector", "namespaceSelector"):
        if peer.get(k) is not None:
            _selector(peer[k], f"{path}.{k}", causes)
    block = peer.get("ipBlock")
    if block is None:
        return
    if not isinstance(block, dict) or not block.get("cidr"):
        causes.append((f"{path}.ipBlock.cidr", "FieldValueRequired", "Required value"))
        return
    net = _cidr(block["cidr"], f"{path}.ipBlock.cidr", causes)
    for i, ex in enumerate(block.get("except") or []):
        ex_net = _cidr(ex, f"{path}.ipBlock.except[{i}]", causes)
        if net is not None and ex_net is not None and not _strict_subnet(ex_net, net):
            causes.append(
                (
                    f"{path}.ipBlock.except[{i}]",
                    "FieldValueInvalid",
                    f"Invalid value: {show(ex)}: must be a strict subset of `cidr`",
                )
            )


def _protocol(port: Obj, path: str, causes: list[Cause]) -> None:
    proto = port.get("protocol", "TCP")
    if proto not in ("TCP", "UDP", "SCTP"):
        causes.append(
            (
                f"{path}.protocol",
                "FieldValueNotSupported",
                f'Unsupported value: {show(proto)}: supported values: "SCTP", "TCP", "UDP"',
            )
        )


def _port(port: Any, path: str, causes: list[Cause]) -> None:
    if not isinstance(port, dict):
        causes.append((path, "FieldValueTypeInvalid", "Invalid value: must be an object"))
        return
    _protocol(port, path, causes)
    p = port.get("port")
    if isinstance(p, bool) or (p is not None and not isinstance(p, (int, str))):
        causes.append(
            (
                f"{path}.port",
                "FieldValueInvalid",
                f"Invalid value: {show(p)}: must be a port number or name",
            )
        )
        return
    if isinstance(p, int) and not 1 <= p <= 65535:
        causes.append(
            (
                f"{path}.port",
                "FieldValueInvalid",
                f"Invalid value: {p}: must be between 1 and 65535, inclusive",
            )
        )
    if isinstance(p, str) and (len(p) > 15 or not _IANA_SVC.match(p)):
        causes.append(
            (
                f"{path}.port",
                "FieldValueInvalid",
                f"Invalid value: {show(p)}: must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-), at most 15 characters, with at least one letter",
            )
        )
    end = port.get("endPort")
    if end is not None:
        if not isinstance(p, int):
            causes.append(
                (
                    f"{path}.endPort",
                    "FieldValueRequired",
                    "Required value: may not be specified when `port` is non-numeric",
                )
            )
        elif not isinstance(end, int) or isinstance(end, bool) or end < p or end > 65535:
            causes.append(
                (
                    f"{path}.endPort",
                    "FieldValueInvalid",
                    f"Invalid value: {show(end)}: must be greater than or equal to `port`",
                )
            )


def default_network_policy(policy: Obj) -> None:
    """kube-apiserver's defaults for networking.k8s.io/v1 NetworkPolicy: a
    port without a protocol is TCP, and policyTypes left out is Ingress, plus
    Egress when the policy has egress rules."""
    spec = policy.get("spec")
    if not isinstance(spec, dict):
        return
    for direction in ("ingress", "egress"):
        for rule in spec.get(direction) or []:
            for port in (rule.get("ports") if isinstance(rule, dict) else None) or []:
                if isinstance(port, dict) and not port.get("protocol"):
                    port["protocol"] = "TCP"
    if not spec.get("policyTypes"):
        spec["policyTypes"] = ["Ingress", *(["Egress"] if spec.get("egress") else [])]


def validate_network_policy(policy: Obj) -> list[Cause]:
    """Defaults applied first, as the real server does, then the checks."""
    default_network_policy(policy)
    spec = policy.get("spec")
    if not isinstance(spec, dict):
        return [("spec", "FieldValueRequired", "Required value")]
    causes: list[Cause] = []
    _selector(spec.get("podSelector", {}), "spec.podSelector", causes)
    for direction, peers_key in (("ingress", "from"), ("egress", "to")):
        rules = spec.get(direction) or []
        if not isinstance(rules, list):
            causes.append(
                (f"spec.{direction}", "FieldValueTypeInvalid", "Invalid value: must be a list")
            )
            continue
        for i, rule in enumerate(rules):
            base = f"spec.{direction}[{i}]"
            if not isinstance(rule, dict):
                causes.append((base, "FieldValueTypeInvalid", "Invalid value: must be an object"))
                continue
            for j, port in enumerate(rule.get("ports") or []):
                _port(port, f"{base}.ports[{j}]", causes)
            for j, peer in enumerate(rule.get(peers_key) or []):
                _peer(peer, f"{base}.{peers_key}[{j}]", causes)
    types = spec.get("policyTypes") or []
    for i, t in enumerate(types):
        if t not in ("Ingress", "Egress"):
            causes.append(
                (
                    f"spec.policyTypes[{i}]",
                    "FieldValueNotSupported",
                    f'Unsupported value: {show(t)}: supported values: "Egress", "Ingress"',
                )
            )
    if len(types) > 2:
        causes.append(
            (
                "spec.policyTypes",
                "FieldValueInvalid",
                f"Invalid value: {show(types)}: may not specify more than two policyTypes",
            )
        )
    return causes


def _endpoint_ip(ip: Any, path: str, causes: list[Cause], family: int | None = None) -> None:
    try:
        addr = ipaddress.ip_address(ip) if isinstance(ip, str) else None
    except ValueError:
        addr = None
    if addr is None:
        causes.append(
            (path, "FieldValueInvalid", f"Invalid value: {show(ip)}: must be a valid IP address")
        )
        return
    if family is not None:  # EndpointSlices: the declared family only
        if addr.version != family:
            causes.append(
                (
                    path,
                    "FieldValueInvalid",
                    f"Invalid value: {show(ip)}: must be an IPv{family} address",
                )
            )
    elif addr.is_loopback or addr.is_link_local or addr.is_multicast or addr.is_unspecified:
        causes.append(
            (
                path,
                "FieldValueInvalid",
                f"Invalid value: {show(ip)}: may not be in the loopback, link-local, multicast or unspecified ranges",
            )
        )


def _endpoint_port(port: Any, path: str, causes: list[Cause], required: bool) -> None:
    if not isinstance(port, dict):
        causes.append((path, "FieldValueTypeInvalid", "Invalid value: must be an object"))
        return
    p = port.get("port")
    if p is None:
        if required:
            causes.append((f"{path}.port", "FieldValueRequired", "Required value"))
    elif isinstance(p, bool) or not isinstance(p, int) or not 1 <= p <= 65535:
        causes.append(
            (
                f"{path}.port",
                "FieldValueInvalid",
                f"Invalid value: {show(p)}: must be between 1 and 65535, inclusive",
            )
        )
    _protocol(port, path, causes)


def validate_endpoints(ep: Obj) -> list[Cause]:
    causes: list[Cause] = []
    for i, subset in enumerate(ep.get("subsets") or []):
        base = f"subsets[{i}]"
        if not isinstance(subset, dict):
            causes.append((base, "FieldValueTypeInvalid", "Invalid value: must be an object"))
            continue
        for key in ("addresses", "notReadyAddresses"):
            for j, a in enumerate(subset.get(key) or []):
                ip = a.get("ip") if isinstance(a, dict) else None
                _endpoint_ip(ip, f"{base}.{key}[{j}].ip", causes)
        for j, port in enumerate(subset.get("ports") or []):
            _endpoint_port(port, f"{base}.ports[{j}]", causes, required=True)
    return causes


def validate_endpoint_slice(es: Obj, old: Obj | None = None) -> list[Cause]:
    causes: list[Cause] = []
    family_name = es.get("addressType")
    if family_name not in ("IPv4", "IPv6", "FQDN"):
        return [
            (
                "addressType",
                "FieldValueNotSupported",
                f'Unsupported value: {show(family_name)}: supported values: "FQDN", "IPv4", "IPv6"',
            )
        ]
    if old is not None and old.get("addressType") != family_name:
        causes.append(
            (
                "addressType",
                "FieldValueInvalid",
                f"Invalid value: {show(family_name)}: field is immutable",
            )
        )
    family = {"IPv4": 4, "IPv6": 6}.get(family_name)
    for i, endpoint in enumerate(es.get("endpoints") or []):
        addrs = endpoint.get("addresses") if isinstance(endpoint, dict) else None
        if not addrs:
            causes.append(
                (
                    f"endpoints[{i}].addresses",
                    "FieldValueRequired",
                    "Required value: must contain at least 1 address",
                )
            )
            continue
        if len(addrs) > 100:
            causes.append(
                (
                    f"endpoints[{i}].addresses",
                    "FieldValueTooMany",
                    f"Too many: {len(addrs)}: must have at most 100 items",
                )
            )
        if family is not None:
            for j, ip in enumerate(addrs):
                _endpoint_ip(ip, f"endpoints[{i}].addresses[{j}]", causes, family)
    for i, port in enumerate(es.get("ports") or []):
        _endpoint_port(port, f"ports[{i}]", causes, required=False)
    return causes
