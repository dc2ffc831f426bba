"""The node dataplane: serves CNI calls, plugs pods into OVS, bootstraps the node."""
