"""The sandbox kubelet's container runtime: pods' containers as host processes.

There are no images or container runtime here, yet kovn must see pods the
way a real kubelet shows them: processes inside the pod's network
namespace, container statuses, probes that decide readiness, logs and exec.
This package is what a CRI runtime plus kubelet's prober would be:

- `resolvconf`  the pod's /etc/resolv.conf as kubelet builds it (dnsPolicy)
- `spec`        env (fieldRef, $(VAR)), restart and phase rules of kubelet
- `process`     one container process: netns + private mount ns + cgroup
- `probes`      tcpSocket / httpGet / exec checks from the pod's netns
- `pod`         one pod's containers: init order, restarts, back-off, status
- `logs`        per-container, per-restart log files; tail and follow
- `server`      the kubelet's HTTP endpoint for logs and exec (WebSocket)
"""
