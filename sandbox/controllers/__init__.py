"""Stand-ins for the controllers kube-controller-manager runs, for the sandbox.

The sandbox has an API server and kubelets but no controller manager, so a
Deployment, DaemonSet or Service would be stored and nothing would act on
it. `manager.ControllerManager` runs them in the agents process:
ReplicaSet, Deployment, DaemonSet, Job (with TTL-after-finished),
EndpointSlice, Endpoints and the API server's own `default/kubernetes`
Service, each driven by watches through informers (`base`), with one
worker per object.
"""
