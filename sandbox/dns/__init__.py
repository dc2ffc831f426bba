"""Cluster DNS for the sandbox: dnsmasq, fed from Services and EndpointSlices.

Real clusters run CoreDNS (kubernetes plugin) behind the `kube-system/kube-dns`
Service. CoreDNS cannot be installed here, so the sandbox runs Debian's
dnsmasq and a feeder (`python -m sandbox.dns`) that watches Services and
EndpointSlices and turns them into the records CoreDNS would serve
(`records.py`, pure).

Where it listens: one dnsmasq per node, in the node's network namespace, on
the node's `kovn0` join address, port 53 (UDP and TCP) -- the shape of
node-local-dns. Why there:
- pods reach their node's `kovn0` today (pod -> cluster router -> join
  switch -> kovn0); they cannot yet reach ClusterIPs (OVN load balancers
  come with kovn's Services issue) nor the underlay or the host (egress
  issue), so the host's root namespace is out;
- a DNS server in a pod netns needs a container runtime to run a process
  in a pod, which the sandbox does not have yet;
- a server per node keeps a node's lookups on that node and keeps working
  when another node is gone.
The `kube-system/kube-dns` Service (ClusterIP 10.96.0.10 as kubeadm picks
it, ports 53/UDP `dns` and 53/TCP `dns-tcp`, no selector: the server is not
a pod) gets an EndpointSlice, managed by the feeder, naming every node's
`kovn0` address, so once ClusterIPs work the ClusterIP reaches these
servers. Until then pods use their node's `kovn0` address as nameserver.

What dnsmasq reloads by itself and what needs a new process
(`dnsmasq.py`): A/AAAA/PTR come from a `--hostsdir` file that dnsmasq
re-reads on inotify the moment it is replaced (no signal, no restart).
SRV and CNAME exist only as configuration lines, which dnsmasq never
re-reads (SIGHUP re-reads hosts files and resolv.conf, not the
configuration). So when those change, a second dnsmasq is started with the
new configuration on the other of two private ports, a DNAT rule in the
node's namespace (kovn0:53 -> kovn0:port) is switched to it in one nft
transaction, the old port's UDP conntrack entries are dropped, and the old
process is stopped: no query meets a closed port.
"""
