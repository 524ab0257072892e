"""Per-node network audit of meshops.istio: discover sidecars from /proc, dump iptables of every
sidecar network namespace and of the node, judge them with the iptables engine, report.

Plain Python without Ansible imports; ``plugins/modules/network_audit_info.py`` is a thin
wrapper and ``plugins/filter/network_audit.py`` renders the reports on the controller.
"""
