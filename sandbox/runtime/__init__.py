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

Decisions where a real node has something the sandbox has not:

- No images: a container runs `command` + `args` from the host filesystem
  (the image name is only recorded). Without `command`, `args` are the
  command (an image without ENTRYPOINT, like busybox); with neither, or for
  the `pause` image, the container idles (`sleep infinity`) so pods written
  without a command (the demo, `kubectl run --image=busybox`) stay Running.
- Crash back-off has kubelet's shape (first restart at once, then doubling
  to a cap, reset after 2 x cap of running) scaled by 0.1: 1 s .. 30 s
  instead of 10 s .. 5 min (spec.BACKOFF_SCALE).
- Containers outlive an agents restart (as they outlive a kubelet
  restart) and are adopted from the pod record by pid + start time; one
  that died meanwhile is reported as kubelet does: ContainerStatusUnknown,
  exit code 137.
- Logs are the raw stdout/stderr (no CRI timestamps); logs and exec reach
  the kubelet through the API server (kubeapi/podio.py), as on a cluster.
- A pod that has finished (Succeeded/Failed) keeps its netns until deleted.
- Not offered: envFrom and configMap/secret env (CreateContainerConfigError),
  volumes, grpc and HTTPS probes, lifecycle hooks, resources/securityContext.
"""
