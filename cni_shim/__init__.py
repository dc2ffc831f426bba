"""kovn-cni: the CNI plugin executable, kept tiny so every CNI call starts fast.

Nothing here may import grpc, protobuf or service code: the runtime starts a
fresh interpreter per CNI call, and imports are most of its start-up time.
"""
