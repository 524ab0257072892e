"""Netfilter (iptables) engine of meshops.istio: read, model, trace and audit iptables rules.

Plain Python without Ansible imports; the modules iptables_info, iptables_trace and
sidecar_iptables_audit are thin wrappers around it. See docs/iptables-engine.md.
"""
