"""One validator for the options the audit modules share: ``expected`` and ``local_addresses``.

``EXPECTED_SPEC`` is the Ansible suboption spec of ``expected`` in both
``sidecar_iptables_audit`` and ``network_audit_info`` (so both refuse the same unknown keys);
:func:`validate_expected` then checks what an argument spec cannot (port and id ranges, CIDRs,
``"*"`` or a list) and returns the normalised dict. Errors are :class:`OptionError`, naming the
option and the fix, raised before anything is read.
"""

import ipaddress

from ansible_collections.meshops.istio.plugins.module_utils.iptables.errors import IptablesError

EXPECTED_SPEC = {
    "proxy_uid": {"type": "int"},
    "proxy_gid": {"type": "int"},
    "inbound_port": {"type": "int"},
    "outbound_port": {"type": "int"},
    "mode": {"type": "str", "choices": ["REDIRECT", "TPROXY"]},
    "inbound_ports": {"type": "raw"},
    "excluded_inbound_ports": {"type": "list", "elements": "int"},
    "outbound_include_cidrs": {"type": "raw"},
    "outbound_exclude_cidrs": {"type": "list", "elements": "str"},
    "excluded_outbound_ports": {"type": "list", "elements": "int"},
    "dns_capture": {"type": "bool"},
    "dns_port": {"type": "int"},
    "app_port": {"type": "int"},
    "app_uid": {"type": "int"},
    "pod_ip": {"type": "str"},
}
_PORTS = ("inbound_port", "outbound_port", "dns_port", "app_port")
_IDS = ("proxy_uid", "proxy_gid", "app_uid")
_PORT_LISTS = ("excluded_inbound_ports", "excluded_outbound_ports")
MAX_ID = 4294967294  # (uid_t)-1 is "no id"


class OptionError(IptablesError):
    """An option value the modules cannot use; the message names the option and the fix."""


def _port(value, field):
    try:
        port = int(str(value).strip())
    except (TypeError, ValueError):
        raise OptionError(f"{field}: {value!r} is not a port number; give a number from 1 to 65535") from None
    if not 1 <= port <= 65535:
        raise OptionError(f"{field}: {port} is out of range; give a port from 1 to 65535")
    return port


def _ports(value, field):
    if not isinstance(value, (list, tuple)):
        raise OptionError(f"{field}: {value!r} is not a list; give a list of ports such as [8080, 9090]")
    return [_port(v, f"{field}[{i}]") for i, v in enumerate(value)]


def _cidrs(value, field):
    if not isinstance(value, (list, tuple)):
        raise OptionError(f"{field}: {value!r} is not a list; give a list of CIDRs such as ['10.96.0.0/12']")
    nets = []
    for i, cidr in enumerate(value):
        try:
            nets.append(str(ipaddress.ip_network(str(cidr).strip(), strict=False)))
        except ValueError:
            raise OptionError(
                f"{field}[{i}]: {cidr!r} is not a CIDR; give an address with a prefix such as 10.96.0.0/12 "
                "(a /32 or /128 for one address)"
            ) from None
    return nets


def validate_expected(expected, field="expected"):
    """Return ``expected`` checked and normalised (``None`` values dropped)."""
    if expected is None:
        return {}
    if not isinstance(expected, dict):
        raise OptionError(f"{field}: {expected!r} is not a dictionary; give keys such as proxy_uid, inbound_port")
    unknown = sorted(set(expected) - set(EXPECTED_SPEC))
    if unknown:
        raise OptionError(
            f"{field}: unknown key(s) {', '.join(map(str, unknown))}; known keys: {', '.join(EXPECTED_SPEC)}"
        )
    out = {}
    for key, value in expected.items():
        if value is None:
            continue
        where = f"{field}.{key}"
        if key in _PORTS:
            out[key] = _port(value, where)
        elif key in _IDS:
            try:
                ident = int(str(value).strip())
            except (TypeError, ValueError):
                raise OptionError(f"{where}: {value!r} is not a number; give a numeric uid/gid") from None
            if not 0 <= ident <= MAX_ID:
                raise OptionError(f"{where}: {ident} is out of range; give a uid/gid from 0 to {MAX_ID}")
            out[key] = ident
        elif key in _PORT_LISTS:
            out[key] = _ports(value, where)
        elif key == "inbound_ports":
            out[key] = "*" if value == "*" else _ports(value, where + " (or '*')")
        elif key == "outbound_include_cidrs":
            out[key] = "*" if value == "*" else _cidrs(value, where)
        elif key == "outbound_exclude_cidrs":
            out[key] = _cidrs(value, where)
        elif key == "mode":
            if value not in ("REDIRECT", "TPROXY"):
                raise OptionError(f"{where}: {value!r} is not a capture mode; give REDIRECT or TPROXY")
            out[key] = value
        elif key == "pod_ip":
            try:
                out[key] = str(ipaddress.ip_address(str(value).strip()))
            except ValueError:
                raise OptionError(f"{where}: {value!r} is not an IP address; give the pod's address") from None
        elif key == "dns_capture":
            if not isinstance(value, bool):
                raise OptionError(f"{where}: {value!r} is not true or false")
            out[key] = value
    return out


def validate_local_addresses(values, field="local_addresses"):
    """Return the addresses as strings (a prefix such as /24 is allowed and dropped), or None."""
    if values is None:
        return None
    if not isinstance(values, (list, tuple)):
        raise OptionError(f"{field}: {values!r} is not a list; give a list of addresses such as ['10.244.1.5']")
    out = []
    for i, value in enumerate(values):
        text = str(value).strip() if value is not None else ""
        try:
            if "/" in text:
                out.append(str(ipaddress.ip_interface(text).ip))
            else:
                out.append(str(ipaddress.ip_address(text)))
        except ValueError:
            raise OptionError(
                f"{field}[{i}]: {value!r} is not an IP address; give addresses such as 10.244.1.5 or fd00::5"
            ) from None
    return out
