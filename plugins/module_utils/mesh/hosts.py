# Copyright: meshops.istio developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Plain-Python helpers for the ``hosts_entries`` role: validation of host names and
addresses, and the search for entries outside the managed block of an /etc/hosts file.

No Ansible imports: the filter and test plugins call these, and the unit tests import them
directly.
"""

import ipaddress
import re

# One DNS label: letters, digits and hyphens, 1 to 63 characters, no hyphen at either end
# (RFC 1035 as relaxed by RFC 1123, which allows a leading digit).
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def dns_name_problem(name):
    """Return why ``name`` is not a valid DNS host name, or ``None`` when it is."""
    if not isinstance(name, str) or not name:
        return "is empty or not a string"
    if name != name.strip() or any(c.isspace() for c in name):
        return "contains white space"
    candidate = name[:-1] if name.endswith(".") else name
    if len(candidate) > 253:
        return "is longer than 253 characters"
    if "*" in candidate:
        return "is a wildcard; /etc/hosts cannot map wildcards"
    labels = candidate.split(".")
    for label in labels:
        if not _LABEL.match(label):
            return f"has an invalid label {label!r} (letters, digits and inner hyphens, 1-63 characters)"
    if labels[-1].isdigit():
        return "ends in a numeric label (looks like an IP address, not a name)"
    return None


def is_dns_name(name):
    return dns_name_problem(name) is None


def ip_version(address):
    """4 or 6 for a valid IP address (no prefix length, no zone), else 0."""
    # A zone index (fe80::1%eth0) is link-local to one host: not an address to hand out.
    if not isinstance(address, str) or address != address.strip() or "%" in address:
        return 0
    try:
        return ipaddress.ip_address(address).version
    except ValueError:
        return 0


def markers(marker, marker_begin="BEGIN", marker_end="END"):
    """The two marker lines ansible.builtin.blockinfile writes for ``marker``."""
    return (marker.replace("{mark}", marker_begin), marker.replace("{mark}", marker_end))


def _split_comment(line):
    body, sep, comment = line.partition("#")
    return body, sep + comment


def find_foreign_entries(content, names, marker, marker_begin="BEGIN", marker_end="END"):
    """Lines outside the managed block that map one of ``names``.

    Returns a list of dicts, in file order::

        {"line": the line as it is, "address": its address, "names": the managed names on it,
         "replacement": the line without those names, or None when nothing else is left,
         "position": "before" | "after" | "none"  (relative to the managed block)}

    Comment lines and text after ``#`` are not entries. The comparison of names is
    case-insensitive (DNS names are).
    """
    wanted = {n.lower().rstrip(".") for n in names}
    begin, end = markers(marker, marker_begin, marker_end)
    lines = content.splitlines()
    has_block = begin in lines and end in lines
    found = []
    inside = False
    seen_block = False
    for line in lines:
        if line == begin:
            inside = True
            continue
        if line == end and inside:
            inside = False
            seen_block = True
            continue
        if inside:
            continue
        body, comment = _split_comment(line)
        fields = body.split()
        if len(fields) < 2:
            continue
        address, host_names = fields[0], fields[1:]
        hits = [h for h in host_names if h.lower().rstrip(".") in wanted]
        if not hits:
            continue
        kept = [h for h in host_names if h.lower().rstrip(".") not in wanted]
        if kept:
            replacement = " ".join([address, *kept])
            if comment:
                replacement += " " + comment
        else:
            replacement = None
        position = "none" if not has_block else "after" if seen_block else "before"
        found.append(
            {
                "line": line,
                "address": address,
                "names": hits,
                "replacement": replacement,
                "position": position,
                **replace_arguments(line, replacement, position, begin, end),
            }
        )
    return found


def replace_arguments(line, replacement, position, begin, end):
    """Arguments for ansible.builtin.replace that rewrite (or remove) exactly ``line`` and
    never touch the managed block: ``before``/``after`` confine the search to the side of the
    block the line is on, since the block may hold an identical line. The replacement text is
    escaped for re.sub (backslashes)."""
    escaped = re.escape(line)
    return {
        "regexp": "^" + escaped + "$" if replacement is not None else "^" + escaped + r"(?:\n|\Z)",
        "replace": (replacement or "").replace("\\", "\\\\"),
        "before": re.escape(begin) if position == "before" else None,
        "after": re.escape(end) if position == "after" else None,
    }
