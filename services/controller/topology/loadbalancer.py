"""Services as OVN load balancers: one per Service and protocol.

Pure functions from a Service and its EndpointSlices to Load_Balancer rows
(held by the one cluster group every switch names). The semantics follow
what kube-proxy implements, since that is what users rely on:

- a VIP per ClusterIP (every family the Service has) and port, to the
  endpoints' `ip:port` for the slice port of the same name;
- only ready endpoints; when none is ready, the serving-and-terminating
  ones (kube-proxy's fallback, so a rolling restart does not drop traffic);
- no endpoint at all: the VIP stays with no backend and `reject=true`, so
  clients get a TCP RST or an ICMP unreachable at once, never a timeout;
- `sessionAffinity: ClientIP` becomes backend selection by a hash of the
  client's address (`selection_fields`): a client stays on one backend
  while the backends stay the same. Not OVN's `affinity_timeout`: in OVN
  23.03 its learn stage drops the packet that starts each affinity session
  (ovn-kubernetes saw the same), and on this datapath that TCP connection
  never completes, nor does a UDP exchange once the timeout has run out.
  The price: the stickiness does not expire after `timeoutSeconds`;
- headless Services (clusterIP None) and ExternalName Services get none.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from services.controller.nb.rows import DesiredRow
from services.controller.topology import names

#: The hash field that pins a client to a backend (the NB schema's one source-address field).
CLIENT_IP_FIELDS = ["ip_src"]
PROTOCOLS = {"TCP": "tcp", "UDP": "udp", "SCTP": "sctp"}

Obj = dict[str, Any]


@dataclass(frozen=True)
class Backend:
    ip: str
    port: int


def _hostport(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def cluster_ips(service: Obj) -> list[str]:
    """The Service's ClusterIPs, [] for headless and ExternalName Services."""
    spec = service.get("spec") or {}
    if spec.get("type") == "ExternalName":
        return []
    ips = [str(ip) for ip in spec.get("clusterIPs") or [spec.get("clusterIP") or ""]]
    return [ip for ip in ips if ip and ip != "None"]


def _slice_backends(
    slices: Iterable[Obj], port_name: str, protocol: str, family: int
) -> list[Backend]:
    """Endpoints for one Service port: ready ones, else serving-and-terminating ones."""
    ready: list[Backend] = []
    fallback: list[Backend] = []
    for sl in slices:
        if sl.get("addressType") != ("IPv6" if family == 6 else "IPv4"):
            continue
        port = next(
            (
                p
                for p in sl.get("ports") or []
                if (p.get("name") or "") == port_name and (p.get("protocol") or "TCP") == protocol
            ),
            None,
        )
        if port is None or port.get("port") is None:
            continue
        for ep in sl.get("endpoints") or []:
            cond = ep.get("conditions") or {}
            # As the API documents: ready unset means ready; serving unset means ready's value.
            is_ready = cond.get("ready") is not False
            serving = cond.get("serving", is_ready) is not False
            terminating = cond.get("terminating") is True
            for ip in ep.get("addresses") or []:
                if ipaddress.ip_address(ip).version != family:
                    continue
                backend = Backend(str(ip), int(port["port"]))
                if is_ready and not terminating:
                    ready.append(backend)
                elif serving and terminating:
                    fallback.append(backend)
    return sorted(set(ready or fallback), key=lambda b: (b.ip, b.port))


@dataclass
class ServiceLbs:
    """A Service's load balancers, and what of it kovn could not program."""

    rows: list[DesiredRow]
    backends: int = 0
    problems: list[str] | None = None


def service_lbs(service: Obj, slices: list[Obj]) -> ServiceLbs:
    """The load balancers of one Service, with its backend count and problems."""
    meta = service.get("metadata") or {}
    namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
    spec = service.get("spec") or {}
    ips = cluster_ips(service)
    if not ips:
        return ServiceLbs([])
    problems: list[str] = []
    backend_count = 0
    options = {"reject": "true"}
    selection = CLIENT_IP_FIELDS if spec.get("sessionAffinity") == "ClientIP" else []
    by_protocol: dict[str, dict[str, str]] = {}
    for port in spec.get("ports") or []:
        protocol = str(port.get("protocol") or "TCP")
        if protocol not in PROTOCOLS:
            problems.append(f"port {port.get('name') or port.get('port')}: protocol {protocol!r}")
            continue
        vips = by_protocol.setdefault(protocol, {})
        for ip in ips:
            family = ipaddress.ip_address(ip).version
            backends = _slice_backends(slices, str(port.get("name") or ""), protocol, family)
            backend_count += len(backends)
            vips[_hostport(ip, int(port["port"]))] = ",".join(
                _hostport(b.ip, b.port) for b in backends
            )
    owner = names.service_owner(namespace, name)
    rows = [
        DesiredRow(
            "Load_Balancer",
            names.load_balancer_name(namespace, name, PROTOCOLS[protocol]),
            owner,
            columns={
                "vips": vips,
                "protocol": PROTOCOLS[protocol],
                "options": options,
                "selection_fields": list(selection),
            },
            parent=names.LB_GROUP,
            labels={"service": f"{namespace}/{name}"},
        )
        for protocol, vips in sorted(by_protocol.items())
    ]
    return ServiceLbs(rows, backend_count, problems)
