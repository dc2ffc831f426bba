"""The named-group messages kubectl's generators send.

apps/v1 Deployment (`create deployment`), batch/v1 Job and CronJob
(`create job|cronjob`), rbac/v1 roles and bindings (`create role|
clusterrole|rolebinding|clusterrolebinding`), policy/v1
PodDisruptionBudget (`create pdb`), scheduling/v1 PriorityClass (`create
priorityclass`) and networking/v1 Ingress (`create ingress`). Field
numbers as k8s.io/api publishes them for each group; the notation is in
`table`. Status messages are tabled only as far as an empty or simple
status goes (a client does not write status on create).
"""

from __future__ import annotations

from .table import message

# -- apps/v1 -------------------------------------------------------------------
message("Deployment", "1 metadata ObjectMeta; 2 spec DeploymentSpec; 3 status DeploymentStatus")
message(
    "DeploymentSpec",
    """
    1 replicas i32?; 2 selector LabelSelector?!; 3 template PodTemplateSpec
    4 strategy DeploymentStrategy; 5 minReadySeconds i32; 6 revisionHistoryLimit i32?
    7 paused bool; 9 progressDeadlineSeconds i32?
    """,
)
message("DeploymentStrategy", "1 type str; 2 rollingUpdate RollingUpdateDeployment?")
message("RollingUpdateDeployment", "1 maxUnavailable IntOrString?; 2 maxSurge IntOrString?")
message(
    "DeploymentStatus",
    """
    1 observedGeneration i64; 2 replicas i32; 3 updatedReplicas i32; 7 readyReplicas i32
    4 availableReplicas i32; 5 unavailableReplicas i32; 9 terminatingReplicas i32?
    6 conditions [DeploymentCondition]; 8 collisionCount i32?
    """,
)
message(
    "DeploymentCondition",
    """
    1 type str!; 2 status str!; 6 lastUpdateTime Time; 7 lastTransitionTime Time
    4 reason str; 5 message str
    """,
)

# -- batch/v1 ------------------------------------------------------------------
message("Job", "1 metadata ObjectMeta; 2 spec JobSpec; 3 status JobStatus")
message(
    "JobSpec",
    """
    1 parallelism i32?; 2 completions i32?; 3 activeDeadlineSeconds i64?; 7 backoffLimit i32?
    12 backoffLimitPerIndex i32?; 13 maxFailedIndexes i32?; 4 selector LabelSelector?
    5 manualSelector bool?; 6 template PodTemplateSpec!; 8 ttlSecondsAfterFinished i32?
    9 completionMode str?; 10 suspend bool?; 14 podReplacementPolicy str?; 15 managedBy str?
    """,
)
message(
    "JobStatus",
    """
    1 conditions [JobCondition]; 2 startTime Time?; 3 completionTime Time?; 4 active i32
    5 succeeded i32; 6 failed i32; 11 terminating i32?; 7 completedIndexes str
    10 failedIndexes str?; 8 uncountedTerminatedPods UncountedTerminatedPods?; 9 ready i32?
    """,
)
message(
    "JobCondition",
    """
    1 type str!; 2 status str!; 3 lastProbeTime Time; 4 lastTransitionTime Time
    5 reason str; 6 message str
    """,
)
message("UncountedTerminatedPods", "1 succeeded [str]; 2 failed [str]")
message("CronJob", "1 metadata ObjectMeta; 2 spec CronJobSpec; 3 status CronJobStatus")
message(
    "CronJobSpec",
    """
    1 schedule str!; 8 timeZone str?; 2 startingDeadlineSeconds i64?; 3 concurrencyPolicy str
    4 suspend bool?; 5 jobTemplate JobTemplateSpec!; 6 successfulJobsHistoryLimit i32?
    7 failedJobsHistoryLimit i32?
    """,
)
message("JobTemplateSpec", "1 metadata ObjectMeta; 2 spec JobSpec")
message(
    "CronJobStatus",
    "1 active [ObjectReference]; 4 lastScheduleTime Time?; 5 lastSuccessfulTime Time?",
)

# -- rbac.authorization.k8s.io/v1 ---------------------------------------------
message("Role", "1 metadata ObjectMeta; 2 rules [PolicyRule]!")
message(
    "ClusterRole",
    "1 metadata ObjectMeta; 2 rules [PolicyRule]!; 3 aggregationRule AggregationRule?",
)
message("RoleBinding", "1 metadata ObjectMeta; 2 subjects [Subject]; 3 roleRef RoleRef!")
message("ClusterRoleBinding", "1 metadata ObjectMeta; 2 subjects [Subject]; 3 roleRef RoleRef!")
message(
    "PolicyRule",
    """
    1 verbs [str]!; 2 apiGroups [str]; 3 resources [str]; 4 resourceNames [str]
    5 nonResourceURLs [str]
    """,
)
message("AggregationRule", "1 clusterRoleSelectors [LabelSelector]")
message("Subject", "1 kind str!; 2 apiGroup str; 3 name str!; 4 namespace str")
message("RoleRef", "1 apiGroup str!; 2 kind str!; 3 name str!")

# -- policy/v1 -----------------------------------------------------------------
message(
    "PodDisruptionBudget",
    """
    1 metadata ObjectMeta; 2 spec PodDisruptionBudgetSpec
    3 status PodDisruptionBudgetStatus
    """,
)
message(
    "PodDisruptionBudgetSpec",
    """
    1 minAvailable IntOrString?; 2 selector LabelSelector?; 3 maxUnavailable IntOrString?
    4 unhealthyPodEvictionPolicy str?
    """,
)
message(
    "PodDisruptionBudgetStatus",
    """
    1 observedGeneration i64; 2 disruptedPods {Time}; 3 disruptionsAllowed i32!
    4 currentHealthy i32!; 5 desiredHealthy i32!; 6 expectedPods i32!; 7 conditions [Condition]
    """,
)

# -- scheduling.k8s.io/v1 --------------------------------------------------------
message(
    "PriorityClass",
    """
    1 metadata ObjectMeta; 2 value i32!; 3 globalDefault bool; 4 description str
    5 preemptionPolicy str?
    """,
)

# -- networking.k8s.io/v1 --------------------------------------------------------
message("Ingress", "1 metadata ObjectMeta; 2 spec IngressSpec; 3 status IngressStatus")
message(
    "IngressSpec",
    """
    4 ingressClassName str?; 1 defaultBackend IngressBackend?; 2 tls [IngressTLS]
    3 rules [IngressRule]
    """,
)
message("IngressBackend", "4 service IngressServiceBackend?; 3 resource TypedLocalObjectReference?")
message("IngressServiceBackend", "1 name str!; 2 port ServiceBackendPort")
message("ServiceBackendPort", "1 name str; 2 number i32")
message("TypedLocalObjectReference", "1 apiGroup str?!; 2 kind str!; 3 name str!")
message("IngressTLS", "1 hosts [str]; 2 secretName str")
message("IngressRule", "1 host str; 2 - IngressRuleValue^")
message("IngressRuleValue", "1 http HTTPIngressRuleValue?")
message("HTTPIngressRuleValue", "1 paths [HTTPIngressPath]!")
message("HTTPIngressPath", "1 path str; 3 pathType str?!; 2 backend IngressBackend!")
message("IngressStatus", "1 loadBalancer IngressLoadBalancerStatus")
message("IngressLoadBalancerStatus", "1 ingress [IngressLoadBalancerIngress]")
message("IngressLoadBalancerIngress", "1 ip str; 2 hostname str; 4 ports [IngressPortStatus]")
message("IngressPortStatus", "1 port i32!; 2 protocol str!; 3 error str?")
# pods/eviction, as a typed client posts it.
message("Eviction", "1 metadata ObjectMeta; 2 deleteOptions DeleteOptions?")
