# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a node needs before Istio's sidecar init (istio-iptables) can run there.

The logic is split in two halves so that the decisions are unit-testable:

* ``NodeProbe`` gathers observations through two injected callables (``run(argv, data)`` and
  ``which(name)``): installed commands, the rules each iptables back end holds on the live node
  (read with ``*-save`` only), and whether the ``nat`` table and the match/target extensions can
  be loaded -- tested with ``iptables-*-restore`` inside a throwaway network namespace
  (``unshare --net``), never against the node's own ruleset.
* ``evaluate()`` turns observations into a report and a list of problems, each naming the check,
  what was found and the fix.
"""

from __future__ import annotations

import re

from ansible_collections.meshops.istio.plugins.module_utils.errors import MeshopsError

BACKENDS = ("nft", "legacy")

# A throwaway chain in the nat table; one restore per extension so that a failure names it.
PROBE_CHAIN = "MESHOPS_PREFLIGHT"
EXTENSION_RULES = {
    # istio-iptables exempts the proxy's own traffic with the owner match ...
    "owner": "-p tcp -m owner --uid-owner 1337 -j RETURN",
    # ... excludes ports with multiport ...
    "multiport": "-p tcp -m multiport --dports 15020,15021,15090 -j RETURN",
    # ... and captures traffic with REDIRECT to 15001 / 15006.
    "REDIRECT": "-p tcp -j REDIRECT --to-ports 15001",
}
EXTENSION_KERNEL_MODULES = {
    "owner": "xt_owner",
    "multiport": "xt_multiport",
    "REDIRECT": "xt_REDIRECT",
}
NAT_KERNEL_MODULES = {"nft": "nft_chain_nat", "legacy": "iptable_nat"}

COMMAND_PACKAGES = {
    "iptables": "iptables",
    "iptables-save": "iptables",
    "iptables-restore": "iptables",
    "ip6tables": "iptables",
    "nsenter": "util-linux",
    "unshare": "util-linux",
    "ip": "iproute2",
}

_VERSION_BACKEND = re.compile(r"\((nf_tables|legacy)\)")
_SAVE_CHAIN = re.compile(r"^:(\S+)\s+(\S+)")
_SAVE_COUNTERS = re.compile(r"^\[\d+:\d+\]\s+")  # "[pkts:bytes] -A ..." from iptables-save -c


class PreflightError(MeshopsError):
    """The probe itself could not run (as opposed to a node that lacks something)."""


def check_min_python_version(text):
    """``min_python_version`` as a version tuple; refused, naming the option, when it is not one."""
    try:
        return parse_version(text)
    except PreflightError as exc:
        raise PreflightError(f"min_python_version {text!r} is not a dotted version number; give one like 3.9") from exc


def parse_version(text):
    """'3.11.2' -> (3, 11, 2); raises PreflightError on anything else."""
    try:
        return tuple(int(part) for part in str(text).strip().split("."))
    except ValueError as exc:
        raise PreflightError(f"not a dotted version number: {text!r}") from exc


def backend_of_version_output(text):
    """Back end an ``iptables --version`` output names: 'nft', 'legacy' or None.

    iptables before 1.8 had no nft back end and prints no marker, so a plain
    ``iptables v1.6.1`` is legacy.
    """
    match = _VERSION_BACKEND.search(text or "")
    if match:
        return "nft" if match.group(1) == "nf_tables" else "legacy"
    if re.match(r"^ip6?tables v\d", (text or "").strip()):
        return "legacy"
    return None


def parse_save_output(text):
    """Count what an ``iptables-save`` dump holds.

    Returns a dict: ``tables`` (names in order), ``rules`` (``-A`` lines), ``user_chains``
    (chains that are not built in), ``non_accept_policies`` (built-in chains whose policy is
    not ACCEPT) and ``warnings`` (comment lines starting with '# Warning', which the nft
    variant prints when legacy tables exist).
    """
    tables = []
    rules = 0
    user_chains = 0
    non_accept = 0
    warnings = []
    for raw in (text or "").splitlines():
        line = _SAVE_COUNTERS.sub("", raw.strip())
        if not line:
            continue
        if line.startswith("#"):
            if line.lower().startswith("# warning"):
                warnings.append(line.lstrip("# ").strip())
            continue
        if line.startswith("*"):
            tables.append(line[1:])
        elif line.startswith("-A "):
            rules += 1
        elif line.startswith(":"):
            match = _SAVE_CHAIN.match(line)
            if not match:
                continue
            policy = match.group(2)
            if policy == "-":
                user_chains += 1
            elif policy != "ACCEPT":
                non_accept += 1
    return {
        "tables": tables,
        "rules": rules,
        "user_chains": user_chains,
        "non_accept_policies": non_accept,
        "warnings": warnings,
    }


def probe_ruleset(extension=None):
    """iptables-restore input that creates the throwaway chain (and one rule using ``extension``)."""
    lines = ["*nat", f":{PROBE_CHAIN} - [0:0]"]
    if extension is not None:
        lines.append(f"-A {PROBE_CHAIN} {EXTENSION_RULES[extension]}")
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def _first_line(text):
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()
    return ""


class NodeProbe:
    """Gather observations on the node. ``run(argv, data=None) -> (rc, stdout, stderr)``;
    ``which(name) -> path or None``; ``exists(path) -> bool``."""

    def __init__(self, run, which, exists):
        self._run = run
        self._which = which
        self._exists = exists

    def commands(self, names):
        return {name: self._which(name) for name in names}

    def default_backend(self):
        path = self._which("iptables")
        if not path:
            return None, ""
        rc, out, err = self._run([path, "--version"])
        text = (out or "") + (err or "")
        return (backend_of_version_output(text) if rc == 0 else None), _first_line(text)

    def _backend_tool(self, backend, tool, default_backend, family="iptables"):
        """<family>-<backend>-<tool>, or the plain <family>-<tool> when it is that back end."""
        path = self._which(f"{family}-{backend}-{tool}")
        if not path and backend == default_backend:
            path = self._which(f"{family}-{tool}")
        return path

    def backend(self, backend, default_backend, extensions, probe):
        """What one back end holds on the live node (IPv4 and IPv6, read-only) and, when
        ``probe`` is set, whether the nat table and ``extensions`` load in a throwaway netns."""
        save = self._backend_tool(backend, "save", default_backend)
        restore = self._backend_tool(backend, "restore", default_backend)
        result = {
            "installed": bool(save and restore),
            "save_command": save,
            "restore_command": restore,
            "rules": 0,
            "user_chains": 0,
            "non_accept_policies": 0,
            "tables": [],
            "in_use": False,
            "read_error": None,
            "warnings": [],
            "probes": None,
        }
        if not result["installed"]:
            return result
        save6 = self._backend_tool(backend, "save", default_backend, family="ip6tables")
        for command in (save, save6):
            if not command:
                continue
            rc, out, err = self._run([command])
            if rc != 0:
                if command == save:
                    result["read_error"] = _first_line(err) or f"exit code {rc}"
                continue
            counts = parse_save_output(out)
            result["rules"] += counts["rules"]
            result["user_chains"] += counts["user_chains"]
            result["non_accept_policies"] += counts["non_accept_policies"]
            result["tables"].extend(t for t in counts["tables"] if t not in result["tables"])
            result["warnings"].extend(w for w in counts["warnings"] if w not in result["warnings"])
        # A back end is in use when it holds anything beyond empty built-in chains.
        result["in_use"] = bool(result["rules"] or result["user_chains"] or result["non_accept_policies"])
        if probe:
            result["probes"] = self.probe_backend(restore, extensions)
        return result

    def probe_backend(self, restore, extensions):
        """Load the throwaway chain, then one rule per extension, each in a fresh netns."""
        unshare = self._which("unshare")
        if not unshare:
            return None
        probes = {}
        for name in [None, *extensions]:
            rc, _out, err = self._run([unshare, "--net", "--", restore], data=probe_ruleset(name))
            probes["nat" if name is None else name] = {
                "ok": rc == 0,
                "error": "" if rc == 0 else (_first_line(err) or f"exit code {rc}"),
            }
        return probes

    def gather(self, extensions, required_commands, bash_completion_path, python_version, probe=True):
        commands = self.commands(sorted({*required_commands, "unshare"}))
        default_backend, version_line = self.default_backend()
        backends = {
            name: self.backend(name, default_backend, extensions, probe and bool(commands["unshare"]))
            for name in BACKENDS
        }
        return {
            "commands": commands,
            "required_commands": list(required_commands),
            "bash_completion": {"path": bash_completion_path, "present": bool(self._exists(bash_completion_path))},
            "python": {"version": python_version},
            "iptables": {
                "default_backend": default_backend,
                "version": version_line,
                "backends": backends,
            },
            "extensions": list(extensions),
            "probe": probe,
        }


def _problem(check, detail, fix):
    return {"check": check, "detail": detail, "fix": fix}


def _extension_fix(name, error):
    """Userspace (the xtables library of the extension) or kernel (its module) is missing."""
    if "Couldn't load" in error or "couldn't load" in error:
        return f"apt-get install --reinstall iptables (the userspace library libxt_{name}.so is missing)"
    module = EXTENSION_KERNEL_MODULES[name]
    return f"modprobe {module} (nft back end: also nft_compat) and persist it in /etc/modules-load.d/"


def choose_backend(in_use, default_backend, installed):
    """The back end istio-iptables will write to: the one holding rules, else the default."""
    if len(in_use) == 1:
        return in_use[0]
    if default_backend in installed:
        return default_backend
    return installed[0] if installed else None


def evaluate(observations, min_python_version):
    """Report and problems from ``NodeProbe.gather()`` output (pure function)."""
    problems = []
    commands = observations["commands"]
    for name in observations["required_commands"]:
        if not commands.get(name):
            package = COMMAND_PACKAGES.get(name)
            fix = f"apt-get install {package}" if package else f"install the package that provides {name}"
            problems.append(_problem(f"command {name}", f"{name} not found in PATH or /sbin, /usr/sbin", fix))

    completion = observations["bash_completion"]
    if not completion["present"]:
        problems.append(
            _problem(
                "bash-completion",
                f"{completion['path']} does not exist",
                "apt-get install bash-completion (or set preflight_bash_completion_path to its main script)",
            )
        )

    python_version = observations["python"]["version"]
    if parse_version(python_version) < parse_version(min_python_version):
        problems.append(
            _problem(
                "python version",
                f"Python {python_version} on the node, {min_python_version} or later needed",
                f"install python3 >= {min_python_version} and point ansible_python_interpreter at it",
            )
        )

    iptables = observations["iptables"]
    backends = iptables["backends"]
    installed = [name for name in BACKENDS if backends[name]["installed"]]
    in_use = [name for name in BACKENDS if backends[name]["in_use"]]
    backend = choose_backend(in_use, iptables["default_backend"], installed)

    for name in installed:
        if backends[name]["read_error"]:
            problems.append(
                _problem(
                    f"iptables {name} rules readable",
                    f"{backends[name]['save_command']} failed: {backends[name]['read_error']}",
                    "run the preflight as root (become: true)",
                )
            )

    if not installed:
        problems.append(
            _problem(
                "iptables back end",
                "neither iptables-nft-save/-restore nor iptables-legacy-save/-restore is installed",
                "apt-get install iptables",
            )
        )
    if len(in_use) > 1:
        counts = ", ".join(
            f"{name}: {backends[name].get('rules', 0)} rules, {backends[name].get('user_chains', 0)} user chains"
            for name in in_use
        )
        problems.append(
            _problem(
                "iptables back ends in use",
                f"both back ends hold rules ({counts}); sidecar init and kube-proxy may write to different ones",
                "keep the back end kube-proxy uses, flush the other (iptables-legacy -F / iptables-nft -F for every "
                "table), and select it with update-alternatives --set iptables",
            )
        )

    nat_table = None
    extensions = {name: None for name in observations["extensions"]}
    probed = bool(backend) and backends[backend]["probes"] is not None
    if backend and observations["probe"] and not probed:
        problems.append(
            _problem(
                "iptables probe",
                "unshare is missing, so the nat table and the "
                + ", ".join(observations["extensions"])
                + " extensions could not be tested in a throwaway network namespace",
                "apt-get install util-linux",
            )
        )
    if probed:
        probes = backends[backend]["probes"]
        nat_table = probes["nat"]["ok"]
        if not nat_table:
            problems.append(
                _problem(
                    "iptables nat table",
                    f"{backend}: cannot create a chain in the nat table: {probes['nat']['error']}",
                    f"load NAT support into the kernel (modprobe {NAT_KERNEL_MODULES[backend]}) "
                    "and persist it in /etc/modules-load.d/",
                )
            )
        for name in observations["extensions"]:
            extensions[name] = probes[name]["ok"] if nat_table else False
            if nat_table and not probes[name]["ok"]:
                problems.append(
                    _problem(
                        f"iptables extension {name}",
                        f"{backend}: a rule using {name} does not load: {probes[name]['error']}",
                        _extension_fix(name, probes[name]["error"]),
                    )
                )

    report = {
        "python": observations["python"],
        "commands": commands,
        "bash_completion": completion,
        "iptables": {
            "backend": backend,
            "default_backend": iptables["default_backend"],
            "version": iptables["version"],
            "installed_backends": installed,
            "backends_in_use": in_use,
            "nat_table": nat_table,
            "extensions": extensions,
            "backends": backends,
        },
        "problems": problems,
    }
    return report
