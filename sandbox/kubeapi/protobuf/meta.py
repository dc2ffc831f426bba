"""The shared apimachinery messages: object metadata and selectors.

Every Kubernetes object's protobuf form starts with ObjectMeta (field 1),
and selectors, owner references and conditions recur across kinds, so
they are tabled once here (field numbers as k8s.io/apimachinery's meta/v1
publishes them). Time, Quantity, IntOrString and FieldsV1 have JSON forms
of their own and are decoded by `convert`, not tabled.
"""

from __future__ import annotations

from .table import message

message(
    "ObjectMeta",
    """
    1 name str; 2 generateName str; 3 namespace str; 4 selfLink str; 5 uid str
    6 resourceVersion str; 7 generation i64; 8 creationTimestamp Time
    9 deletionTimestamp Time?; 10 deletionGracePeriodSeconds i64?
    11 labels {str}; 12 annotations {str}; 13 ownerReferences [OwnerReference]
    14 finalizers [str]; 17 managedFields [ManagedFieldsEntry]
    """,
)
message(
    "OwnerReference",
    """
    5 apiVersion str!; 1 kind str!; 3 name str!; 4 uid str!; 6 controller bool?
    7 blockOwnerDeletion bool?
    """,
)
message(
    "ManagedFieldsEntry",
    """
    1 manager str; 2 operation str; 3 apiVersion str; 4 time Time?; 6 fieldsType str
    7 fieldsV1 FieldsV1?; 8 subresource str
    """,
)
message("LabelSelector", "1 matchLabels {str}; 2 matchExpressions [LabelSelectorRequirement]")
message("LabelSelectorRequirement", "1 key str!; 2 operator str!; 3 values [str]")
message(
    "Condition",
    """
    1 type str!; 2 status str!; 3 observedGeneration i64; 4 lastTransitionTime Time!
    5 reason str!; 6 message str!
    """,
)
# The options of a delete, which an Eviction carries.
message(
    "DeleteOptions",
    """
    1 gracePeriodSeconds i64?; 2 preconditions Preconditions?; 3 orphanDependents bool?
    4 propagationPolicy str?; 5 dryRun [str]
    6 ignoreStoreReadErrorWithClusterBreakingPotential bool?
    """,
)
message("Preconditions", "1 uid str?; 2 resourceVersion str?")
