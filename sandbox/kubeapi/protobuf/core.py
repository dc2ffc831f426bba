"""The core/v1 messages kubectl's generators send, and what they nest.

`kubectl create namespace|service|configmap|secret|serviceaccount|quota`
and `kubectl run` send these kinds; `create deployment|job|cronjob` send a
PodTemplateSpec, so the pod spec is tabled far enough for what a
generator or a hand-written client sets (containers, ports, env,
resources, probes, common volumes, security contexts). Field numbers as
k8s.io/api's core/v1 publishes them; the notation is in `table`.
"""

from __future__ import annotations

from .table import message

# -- objects -----------------------------------------------------------------
message("Namespace", "1 metadata ObjectMeta; 2 spec NamespaceSpec; 3 status NamespaceStatus")
message("NamespaceSpec", "1 finalizers [str]")
message("NamespaceStatus", "1 phase str; 2 conditions [NamespaceCondition]")
message(
    "NamespaceCondition",
    "1 type str!; 2 status str!; 4 lastTransitionTime Time; 5 reason str; 6 message str",
)
message("ConfigMap", "1 metadata ObjectMeta; 2 data {str}; 3 binaryData {bytes}; 4 immutable bool?")
message(
    "Secret",
    "1 metadata ObjectMeta; 2 data {bytes}; 4 stringData {str}; 3 type str; 5 immutable bool?",
)
message(
    "ServiceAccount",
    """
    1 metadata ObjectMeta; 2 secrets [ObjectReference]
    3 imagePullSecrets [LocalObjectReference]; 4 automountServiceAccountToken bool?
    """,
)
message(
    "ObjectReference",
    """
    1 kind str; 2 namespace str; 3 name str; 4 uid str; 5 apiVersion str
    6 resourceVersion str; 7 fieldPath str
    """,
)
message("LocalObjectReference", "1 name str")
message(
    "ResourceQuota",
    "1 metadata ObjectMeta; 2 spec ResourceQuotaSpec; 3 status ResourceQuotaStatus",
)
message("ResourceQuotaSpec", "1 hard {Quantity}; 2 scopes [str]; 3 scopeSelector ScopeSelector?")
message("ResourceQuotaStatus", "1 hard {Quantity}; 2 used {Quantity}")
message("ScopeSelector", "1 matchExpressions [ScopedResourceSelectorRequirement]")
message("ScopedResourceSelectorRequirement", "1 scopeName str!; 2 operator str!; 3 values [str]")

# -- services ----------------------------------------------------------------
message("Service", "1 metadata ObjectMeta; 2 spec ServiceSpec; 3 status ServiceStatus")
message(
    "ServiceSpec",
    """
    1 ports [ServicePort]; 2 selector {str}; 3 clusterIP str; 18 clusterIPs [str]; 4 type str
    5 externalIPs [str]; 7 sessionAffinity str; 8 loadBalancerIP str
    9 loadBalancerSourceRanges [str]; 10 externalName str; 11 externalTrafficPolicy str
    12 healthCheckNodePort i32; 13 publishNotReadyAddresses bool
    14 sessionAffinityConfig SessionAffinityConfig?; 19 ipFamilies [str]; 17 ipFamilyPolicy str?
    20 allocateLoadBalancerNodePorts bool?; 21 loadBalancerClass str?
    22 internalTrafficPolicy str?; 23 trafficDistribution str?
    """,
)
message(
    "ServicePort",
    """
    1 name str; 2 protocol str; 6 appProtocol str?; 3 port i32!; 4 targetPort IntOrString
    5 nodePort i32
    """,
)
message("SessionAffinityConfig", "1 clientIP ClientIPConfig?")
message("ClientIPConfig", "1 timeoutSeconds i32?")
message("ServiceStatus", "1 loadBalancer LoadBalancerStatus; 2 conditions [Condition]")
message("LoadBalancerStatus", "1 ingress [LoadBalancerIngress]")
message("LoadBalancerIngress", "1 ip str; 2 hostname str; 3 ipMode str?; 4 ports [PortStatus]")
message("PortStatus", "1 port i32!; 2 protocol str!; 3 error str?")

# -- pods --------------------------------------------------------------------
message("Pod", "1 metadata ObjectMeta; 2 spec PodSpec; 3 status PodStatus")
message("PodTemplateSpec", "1 metadata ObjectMeta; 2 spec PodSpec")
message(
    "PodSpec",
    """
    1 volumes [Volume]; 20 initContainers [Container]; 2 containers [Container]!
    3 restartPolicy str; 4 terminationGracePeriodSeconds i64?; 5 activeDeadlineSeconds i64?
    6 dnsPolicy str; 7 nodeSelector {str}; 8 serviceAccountName str; 9 serviceAccount str
    21 automountServiceAccountToken bool?; 10 nodeName str; 11 hostNetwork bool
    12 hostPID bool; 13 hostIPC bool; 27 shareProcessNamespace bool?
    14 securityContext PodSecurityContext?; 15 imagePullSecrets [LocalObjectReference]
    16 hostname str; 17 subdomain str; 19 schedulerName str; 22 tolerations [Toleration]
    23 hostAliases [HostAlias]; 24 priorityClassName str; 25 priority i32?
    26 dnsConfig PodDNSConfig?; 28 readinessGates [PodReadinessGate]
    29 runtimeClassName str?; 30 enableServiceLinks bool?; 31 preemptionPolicy str?
    32 overhead {Quantity}; 35 setHostnameAsFQDN bool?; 36 os PodOS?; 37 hostUsers bool?
    38 schedulingGates [PodSchedulingGate]; 40 resources ResourceRequirements?
    41 hostnameOverride str?
    """,
)
message(
    "Container",
    """
    1 name str!; 2 image str; 3 command [str]; 4 args [str]; 5 workingDir str
    6 ports [ContainerPort]; 19 envFrom [EnvFromSource]; 7 env [EnvVar]
    8 resources ResourceRequirements; 23 resizePolicy [ContainerResizePolicy]
    24 restartPolicy str?; 9 volumeMounts [VolumeMount]; 10 livenessProbe Probe?
    11 readinessProbe Probe?; 22 startupProbe Probe?; 12 lifecycle Lifecycle?
    13 terminationMessagePath str; 20 terminationMessagePolicy str; 14 imagePullPolicy str
    15 securityContext SecurityContext?; 16 stdin bool; 17 stdinOnce bool; 18 tty bool
    """,
)
message(
    "ContainerPort",
    "1 name str; 2 hostPort i32; 3 containerPort i32!; 4 protocol str; 5 hostIP str",
)
message("EnvVar", "1 name str!; 2 value str; 3 valueFrom EnvVarSource?")
message(
    "EnvVarSource",
    """
    1 fieldRef ObjectFieldSelector?; 2 resourceFieldRef ResourceFieldSelector?
    3 configMapKeyRef ConfigMapKeySelector?; 4 secretKeyRef SecretKeySelector?
    """,
)
message("ObjectFieldSelector", "1 apiVersion str; 2 fieldPath str!")
message("ResourceFieldSelector", "1 containerName str; 2 resource str!; 3 divisor Quantity")
message("ConfigMapKeySelector", "1 - LocalObjectReference^; 2 key str!; 3 optional bool?")
message("SecretKeySelector", "1 - LocalObjectReference^; 2 key str!; 3 optional bool?")
message(
    "EnvFromSource",
    "1 prefix str; 2 configMapRef ConfigMapEnvSource?; 3 secretRef SecretEnvSource?",
)
message("ConfigMapEnvSource", "1 - LocalObjectReference^; 2 optional bool?")
message("SecretEnvSource", "1 - LocalObjectReference^; 2 optional bool?")
message(
    "ResourceRequirements", "1 limits {Quantity}; 2 requests {Quantity}; 3 claims [ResourceClaim]"
)
message("ResourceClaim", "1 name str!; 2 request str")
message("ContainerResizePolicy", "1 resourceName str!; 2 restartPolicy str!")
message(
    "VolumeMount",
    """
    1 name str!; 2 readOnly bool; 7 recursiveReadOnly str?; 3 mountPath str!; 4 subPath str
    5 mountPropagation str?; 6 subPathExpr str
    """,
)
message(
    "Probe",
    """
    1 - ProbeHandler^; 2 initialDelaySeconds i32; 3 timeoutSeconds i32; 4 periodSeconds i32
    5 successThreshold i32; 6 failureThreshold i32; 7 terminationGracePeriodSeconds i64?
    """,
)
message(
    "ProbeHandler",
    """
    1 exec ExecAction?; 2 httpGet HTTPGetAction?; 3 tcpSocket TCPSocketAction?
    4 grpc GRPCAction?
    """,
)
message("Lifecycle", "1 postStart LifecycleHandler?; 2 preStop LifecycleHandler?")
message(
    "LifecycleHandler",
    "1 exec ExecAction?; 2 httpGet HTTPGetAction?; 3 tcpSocket TCPSocketAction?",
)
message("ExecAction", "1 command [str]")
message(
    "HTTPGetAction",
    """
    1 path str; 2 port IntOrString!; 3 host str; 4 scheme str; 5 httpHeaders [HTTPHeader]
    """,
)
message("HTTPHeader", "1 name str!; 2 value str!")
message("TCPSocketAction", "1 port IntOrString!; 2 host str")
message("GRPCAction", "1 port i32!; 2 service str?!")
message(
    "SecurityContext",
    """
    1 capabilities Capabilities?; 2 privileged bool?; 3 seLinuxOptions SELinuxOptions?
    4 runAsUser i64?; 8 runAsGroup i64?; 5 runAsNonRoot bool?; 6 readOnlyRootFilesystem bool?
    7 allowPrivilegeEscalation bool?; 9 procMount str?; 11 seccompProfile SeccompProfile?
    12 appArmorProfile AppArmorProfile?
    """,
)
message(
    "PodSecurityContext",
    """
    1 seLinuxOptions SELinuxOptions?; 2 runAsUser i64?; 6 runAsGroup i64?
    3 runAsNonRoot bool?; 4 supplementalGroups [i64]; 12 supplementalGroupsPolicy str?
    5 fsGroup i64?; 7 sysctls [Sysctl]; 9 fsGroupChangePolicy str?
    10 seccompProfile SeccompProfile?; 11 appArmorProfile AppArmorProfile?
    13 seLinuxChangePolicy str?
    """,
)
message("Capabilities", "1 add [str]; 2 drop [str]")
message("SELinuxOptions", "1 user str; 2 role str; 3 type str; 4 level str")
message("SeccompProfile", "1 type str!; 2 localhostProfile str?")
message("AppArmorProfile", "1 type str!; 2 localhostProfile str?")
message("Sysctl", "1 name str!; 2 value str!")
message(
    "Toleration",
    "1 key str; 2 operator str; 3 value str; 4 effect str; 5 tolerationSeconds i64?",
)
message("HostAlias", "1 ip str!; 2 hostnames [str]")
message("PodDNSConfig", "1 nameservers [str]; 2 searches [str]; 3 options [PodDNSConfigOption]")
message("PodDNSConfigOption", "1 name str; 2 value str?")
message("PodReadinessGate", "1 conditionType str!")
message("PodOS", "1 name str!")
message("PodSchedulingGate", "1 name str!")
message("Volume", "1 name str!; 2 - VolumeSource^")
message(
    "VolumeSource",
    """
    1 hostPath HostPathVolumeSource?; 2 emptyDir EmptyDirVolumeSource?
    6 secret SecretVolumeSource?; 10 persistentVolumeClaim PersistentVolumeClaimVolumeSource?
    19 configMap ConfigMapVolumeSource?
    """,
)
message("HostPathVolumeSource", "1 path str!; 2 type str?")
message("EmptyDirVolumeSource", "1 medium str; 2 sizeLimit Quantity?")
message(
    "SecretVolumeSource",
    "1 secretName str; 2 items [KeyToPath]; 3 defaultMode i32?; 4 optional bool?",
)
message(
    "ConfigMapVolumeSource",
    "1 - LocalObjectReference^; 2 items [KeyToPath]; 3 defaultMode i32?; 4 optional bool?",
)
message("KeyToPath", "1 key str!; 2 path str!; 3 mode i32?")
message("PersistentVolumeClaimVolumeSource", "1 claimName str!; 2 readOnly bool")
# A new pod's status is empty; the fields a client may still send are tabled.
message(
    "PodStatus",
    """
    1 phase str; 3 message str; 4 reason str; 11 nominatedNodeName str; 5 hostIP str
    6 podIP str; 7 startTime Time?; 9 qosClass str
    """,
)
# pods/binding, as a scheduler posts it (pods/eviction is in `groups`).
message("Binding", "1 metadata ObjectMeta; 2 target ObjectReference!")
