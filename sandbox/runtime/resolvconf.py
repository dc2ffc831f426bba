"""The content of a pod's /etc/resolv.conf, as kubelet derives it from dnsPolicy.

Kept apart so the cluster DNS work can refine where the nameserver comes
from (`cluster_dns_fallback`) without touching the runtime. The rules are
kubelet's (pkg/kubelet/network/dns): ClusterFirst uses the cluster DNS
Service, search `<ns>.svc.<domain> svc.<domain> <domain>` and ndots:5;
a hostNetwork pod with ClusterFirst gets the node's file (only
ClusterFirstWithHostNet gives it the cluster's); Default is the node's
file; None is dnsConfig alone; dnsConfig is merged into every policy.
"""

from __future__ import annotations

from typing import Any

CLUSTER_DOMAIN = "cluster.local"
#: kubelet's limits (validation and pkg/kubelet/network/dns)
MAX_NAMESERVERS = 3
MAX_SEARCH = 32


def cluster_dns_fallback() -> list[str]:
    """Cluster DNS servers to use when the kube-dns Service does not exist.

    Empty means "no cluster DNS configured": kubelet then falls back to the
    node's resolv.conf for ClusterFirst pods (and records a MissingClusterDNS
    event). The DNS helper may refine this hook.
    """
    return []


def parse(text: str) -> tuple[list[str], list[str], list[str]]:
    """(nameservers, search domains, options) of a resolv.conf text."""
    ns: list[str] = []
    search: list[str] = []
    opts: list[str] = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if words[0] == "nameserver" and len(words) > 1:
            ns.append(words[1])
        elif words[0] in ("search", "domain"):
            search = words[1:]
        elif words[0] == "options":
            opts.extend(words[1:])
    return ns, search, opts


def _merge_options(base: list[str], extra: list[dict[str, Any]]) -> list[str]:
    """dnsConfig options override base options of the same name."""
    merged: dict[str, str] = {}
    for o in base:
        merged[o.partition(":")[0]] = o
    for opt in extra:
        name = str(opt.get("name", ""))
        if not name:
            continue
        value = opt.get("value")
        merged[name] = f"{name}:{value}" if value not in (None, "") else name
    return list(merged.values())


def effective_policy(pod: dict[str, Any]) -> str:
    spec = pod.get("spec", {})
    policy = str(spec.get("dnsPolicy") or "ClusterFirst")
    if policy == "ClusterFirst" and spec.get("hostNetwork"):
        return "Default"
    if policy == "ClusterFirstWithHostNet":
        return "ClusterFirst"
    return policy


def content(pod: dict[str, Any], dns_ips: list[str], host_text: str) -> str:
    """resolv.conf for pod; dns_ips: the cluster DNS Service IP(s), maybe empty."""
    spec = pod.get("spec", {})
    namespace = pod.get("metadata", {}).get("namespace", "default")
    policy = effective_policy(pod)
    if policy == "ClusterFirst" and not (dns_ips or cluster_dns_fallback()):
        policy = "Default"
    ns: list[str]
    search: list[str]
    opts: list[str]
    if policy == "ClusterFirst":
        ns = list(dns_ips or cluster_dns_fallback())
        d = CLUSTER_DOMAIN
        search = [f"{namespace}.svc.{d}", f"svc.{d}", d]
        # kubelet appends the node's search domains after the cluster's
        search += [s for s in parse(host_text)[1] if s not in search]
        opts = ["ndots:5"]
    elif policy == "None":
        ns, search, opts = [], [], []
    else:  # Default (and anything unknown, which validation would have refused)
        ns, search, opts = parse(host_text)
    cfg = spec.get("dnsConfig") or {}
    ns += [s for s in cfg.get("nameservers") or [] if s not in ns]
    search += [s for s in cfg.get("searches") or [] if s not in search]
    opts = _merge_options(opts, cfg.get("options") or [])
    lines = [f"nameserver {s}" for s in ns[:MAX_NAMESERVERS]]
    if search:
        lines.append("search " + " ".join(search[:MAX_SEARCH]))
    if opts:
        lines.append("options " + " ".join(opts))
    return "\n".join(lines) + "\n"
