# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``expected`` option shared by sidecar_iptables_audit and network_audit_info (one spec:
plugins/module_utils/iptables/options.py EXPECTED_SPEC, one validator)."""


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  expected:
    description:
      - What the capture should be; every given key that differs from the rules is an error
        finding (code C(EXPECTED_MISMATCH)). Keys left out are not compared.
      - Unknown keys, ports outside 1-65535, uids outside 0-4294967294 and CIDRs that do not parse are
        refused before anything is read, naming the key.
      - Some keys only shape the probes (O(expected.app_port), O(expected.app_uid), O(expected.pod_ip)).
    type: dict
    suboptions:
      proxy_uid:
        description: The uid the proxy runs as, which must be exempt from capture (Istio uses 1337).
        type: int
      proxy_gid:
        description: The gid the proxy runs as.
        type: int
      inbound_port:
        description: Port inbound traffic is redirected to (Istio uses 15006).
        type: int
      outbound_port:
        description: Port outbound traffic is redirected to (Istio uses 15001).
        type: int
      mode:
        description: How inbound traffic is captured.
        type: str
        choices: [REDIRECT, TPROXY]
      inbound_ports:
        description: Captured inbound ports, C("*") for all or a list of ports.
        type: raw
      excluded_inbound_ports:
        description: Inbound ports left out of a C("*") capture (the tunnel port 15008 is not listed).
        type: list
        elements: int
      outbound_include_cidrs:
        description: Destinations whose traffic is captured, C("*") or a list of CIDRs.
        type: raw
      outbound_exclude_cidrs:
        description: Destinations never captured (the loopback exemption is not listed).
        type: list
        elements: str
      excluded_outbound_ports:
        description: Outbound destination ports never captured.
        type: list
        elements: int
      dns_capture:
        description: Whether DNS queries (udp and tcp port 53) are redirected to the proxy.
        type: bool
      dns_port:
        description: Port DNS queries are redirected to (Istio uses 15053).
        type: int
      app_port:
        description: Application port of the inbound probe; by default the first captured port, else 8080.
        type: int
      app_uid:
        description: Uid of the application in the outbound probes (1000 when not given).
        type: int
      pod_ip:
        description:
          - The pod's address for the probes; by default the namespace's first address, else 192.0.2.10.
        type: str
"""
