# Copyright: meshops.istio developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
name: hosts_entries_plan
short_description: "Internal to the hosts_entries role: plan the managed block of a hosts file"
version_added: 0.1.0
author: meshops.istio developers
description:
  - B(Internal) to the M(meshops.istio.hosts_entries) role, and may change without
    notice; it is not part of the collection's public interface.
  - Reads the current hosts file (as M(ansible.builtin.slurp) returns it, base64) and plans the
    whole new content, with the managed block between the BEGIN and END marker lines written,
    replaced or removed, and with O(replace=true) the managed names taken out of other lines.
  - Refuses (in C(problems)) a file it cannot change safely, before anything is written, namely text
    that is not UTF-8 or holds NUL bytes; marker lines out of order, unpaired or repeated; a
    line that looks like a marker but is not one exactly; a line inside the block that the role
    did not write.
  - Every line outside the block is kept byte for byte (line endings included), apart from the
    managed names removed with O(replace=true). New lines use the file's line ending (CRLF when
    most lines end so).
options:
  _input:
    description: The content of the hosts file, base64-encoded (the C(content) that M(ansible.builtin.slurp) returns).
    type: string
    required: true
  names:
    description: The host names the block maps (first spelling of each name wins; compared case-insensitively).
    type: list
    elements: string
    required: true
  address:
    description: The address the names map to (ignored when O(state=absent)).
    type: string
    required: true
  marker:
    description:
      - The marker template; C({mark}) becomes C(BEGIN) or C(END).
      - Blanks around it are dropped (marker lines are compared without them).
    type: string
    required: true
  state:
    description: V(present) writes the block, V(absent) removes it.
    type: string
    default: present
  replace:
    description: Remove the managed names from other lines (the line goes when no name is left).
    type: boolean
    default: false
"""

EXAMPLES = r"""
- name: Plan /etc/hosts (internal to meshops.istio.hosts_entries)
  ansible.builtin.set_fact:
    plan: "{{ slurped.content | meshops.istio.hosts_entries_plan(['jiuxi.com'], '192.0.2.10', '# {mark} managed') }}"
"""

RETURN = r"""
_value:
  description:
    - C(problems), a list of messages (empty when the file can be changed safely); C(conflicts),
      the lines outside the block that map a managed name (C(number), C(line), C(names));
      C(content), the planned text; C(differs), whether it differs from the current text;
      C(foreign_before), every line outside the block as it is; C(foreign_after), what those
      lines must be after the change.
  type: dict
"""

import base64
import binascii
import ipaddress
import re

# One DNS label (RFC 1123), for recognising the lines the role writes into the block.
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
# What separates the fields of a hosts line for the resolver (glibc: isspace() in the C locale).
# Python's str.split() also splits at a no-break space or U+2028, which the resolver keeps inside
# the field: such a line maps nothing, and must neither be taken for a mapping nor be rewritten.
_FIELD_SEPARATOR = re.compile(r"([ \t\f\v]+)")


def _is_block_entry(text):
    """True for a line as the role writes it into the block: "<IP address> <one DNS name>"."""
    fields = [field for field in _FIELD_SEPARATOR.split(text) if field.strip(" \t\f\v")]
    if len(fields) != 2 or "#" in text:
        return False
    try:
        ipaddress.ip_address(fields[0])
    except ValueError:
        return False
    labels = fields[1].rstrip(".").split(".")
    return all(_LABEL.match(label) for label in labels) and not labels[-1].isdigit()


def _loose(text):
    """A marker as a person might mistype it: case and runs of white space ignored."""
    return " ".join(text.split()).casefold()


def decode(content_b64):
    """(text, problem): the file's text, or why it cannot be handled as text."""
    try:
        raw = base64.b64decode(content_b64, validate=True)
    except (binascii.Error, ValueError, TypeError) as e:
        return None, f"could not be read (not valid base64 from slurp: {e})"
    if b"\0" in raw:
        line = raw[: raw.index(b"\0")].count(b"\n") + 1
        return None, f"holds a NUL byte on line {line}: not a text file; fix or restore the file"
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        return None, f"is not UTF-8 text (byte {e.start} on line {line}); convert that line to UTF-8"


def split_lines(text):
    """Lines split at "\\n" only (a trailing "\\r" stays part of the line), and whether the last
    line was terminated. Other characters str.splitlines() would split at stay in the line."""
    if text == "":
        return [], True
    lines = text.split("\n")
    if lines[-1] == "":
        return lines[:-1], True
    return lines, False


def find_region(lines, marker):
    """(begin index, end index) of the managed block, (None, None) when there is none, and the
    problems that make the region malformed or ambiguous."""
    begin, end = marker.replace("{mark}", "BEGIN"), marker.replace("{mark}", "END")
    begins, ends, problems = [], [], []
    for i, line in enumerate(lines):
        text = line.rstrip("\r").strip()
        if text == begin:
            begins.append(i)
        elif text == end:
            ends.append(i)
        elif _loose(text) in (_loose(begin), _loose(end)):
            problems.append(
                f"line {i + 1} {line.rstrip(chr(13))!r} looks like a marker of the managed block but is not "
                f"exactly {begin!r} or {end!r}; write it exactly so, or delete it"
            )

    def numbers(idx):
        return ", ".join(str(i + 1) for i in idx)

    if len(begins) > 1 or len(ends) > 1:
        problems.append(
            f"{len(begins)} BEGIN markers (line {numbers(begins) or '-'}) and {len(ends)} END markers "
            f"(line {numbers(ends) or '-'}): there must be at most one managed block; keep one BEGIN/END "
            "pair and delete the other marker lines together with the stale entries between them"
        )
    elif begins and not ends:
        problems.append(
            f"the BEGIN marker on line {begins[0] + 1} has no END marker, so it is unclear where the block "
            f"ends; add {end!r} after the last managed entry, or delete the BEGIN marker and the stale entries"
        )
    elif ends and not begins:
        problems.append(
            f"the END marker on line {ends[0] + 1} has no BEGIN marker, so it is unclear where the block "
            f"starts; add {begin!r} before the first managed entry, or delete the END marker and the stale entries"
        )
    elif begins and ends[0] < begins[0]:
        problems.append(
            f"the END marker on line {ends[0] + 1} comes before the BEGIN marker on line {begins[0] + 1}; "
            "put the BEGIN marker first, around the managed entries only, or delete both marker lines "
            "and the stale entries"
        )
    if problems or not begins:
        return None, None, problems
    b, e = begins[0], ends[0]
    for i in range(b + 1, e):
        text = lines[i].rstrip("\r").strip()
        if text and not _is_block_entry(text):
            problems.append(
                f"line {i + 1} {lines[i].rstrip(chr(13))!r} is inside the managed block (lines {b + 1}-{e + 1}) "
                "but was not written by this role; move it outside the block or delete it"
            )
    if problems:
        return None, None, problems
    return b, e, []


def _drop_names(line, wanted):
    """(names removed, the line without them or None when no name is left). Spacing, the
    comment and the line ending of what is left stay as they were."""
    ending = "\r" if line.endswith("\r") else ""
    body, hash_sign, comment = line[: len(line) - len(ending)].partition("#")
    tokens = _FIELD_SEPARATOR.split(body)  # [lead?, address, sep, name, sep, name, ..., trail?]
    words = [(i, t) for i, t in enumerate(tokens) if t and not _FIELD_SEPARATOR.fullmatch(t)]
    if len(words) < 2:
        return [], line
    hits = [t for _index, t in words[1:] if t.lower().rstrip(".") in wanted]
    if not hits:
        return [], line
    if len(hits) == len(words) - 1:
        return hits, None
    keep = list(tokens)
    for i, t in words[1:]:
        if t.lower().rstrip(".") in wanted:
            keep[i] = ""
            if i > 0 and _FIELD_SEPARATOR.fullmatch(keep[i - 1]):
                keep[i - 1] = ""  # the separator in front of the removed name
    return hits, "".join(keep) + hash_sign + comment + ending


def plan(content_b64, names, address, marker, state="present", replace=False):
    # Marker lines are found without their surrounding blanks, so they are written without them
    # too: a marker template with a leading or trailing blank would otherwise write a block that
    # every later run refuses as "looks like a marker but is not exactly one".
    marker = marker.strip()
    result = {
        "problems": [],
        "conflicts": [],
        "content": None,
        "differs": False,
        "foreign_before": [],
        "foreign_after": [],
    }
    text, problem = decode(content_b64)
    if problem:
        result["problems"].append(problem)
        return result
    result["content"] = text
    lines, terminated = split_lines(text)
    b, e, problems = find_region(lines, marker)
    if problems:
        result["problems"] = problems
        return result

    outside = [(i, line) for i, line in enumerate(lines) if b is None or not b <= i <= e]
    result["foreign_before"] = [line for _index, line in outside]
    wanted = {str(n).lower().rstrip(".") for n in names}
    rewritten = {}
    for i, line in outside:
        hits, replacement = _drop_names(line, wanted)
        if hits:
            result["conflicts"].append({"number": i + 1, "line": line.rstrip("\r"), "names": hits})
            rewritten[i] = replacement

    crlf = sum(1 for line in lines if line.endswith("\r")) * 2 > len(lines)
    ending = "\r" if crlf else ""
    block = []
    if state == "present":
        seen, entries = set(), []
        for name in names:
            if str(name).lower() not in seen:
                seen.add(str(name).lower())
                entries.append(f"{address} {name}")
        block = [
            line + ending for line in [marker.replace("{mark}", "BEGIN"), *entries, marker.replace("{mark}", "END")]
        ]

    new, foreign_after = [], []
    apply_replace = state == "present" and replace
    # Only the file's last line can lack its "\n"; it keeps lacking it while it stays last.
    unterminated = None if terminated else len(lines) - 1
    last_unterminated = False
    for i, line in enumerate(lines):
        if b is not None and b <= i <= e:
            if i == b:
                new.extend(block)
                last_unterminated = False
            continue
        if apply_replace and i in rewritten:
            line = rewritten[i]
            if line is None:
                continue
        new.append(line)
        foreign_after.append(line)
        last_unterminated = i == unterminated
    if b is None and block:
        new.extend(block)
        last_unterminated = False
    result["foreign_after"] = foreign_after
    content = "\n".join(new) + ("\n" if new and not last_unterminated else "")
    result["content"] = content
    result["differs"] = content != text
    return result


class FilterModule:
    def filters(self):
        return {"hosts_entries_plan": plan}
