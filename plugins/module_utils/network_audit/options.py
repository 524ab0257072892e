"""The node audit's options: the one source of their defaults (the module's argument spec and the
role's argument specs take them from here or document the same values) and their validation."""

from ansible_collections.meshops.istio.plugins.module_utils.errors import MeshopsError
from ansible_collections.meshops.istio.plugins.module_utils.iptables.options import (
    MAX_ID,
    OptionError,
    validate_expected,
)

DEFAULTS = {
    "proxy_uids": [1337],
    "proxy_names": ["envoy", "pilot-agent"],
    "backends": ["nft", "legacy"],
    "families": ["ipv4"],
    "node_netns": None,
    "netns_include": [],
    "runtime_lookup": True,
    "probe": False,
    "probe_timeout": 2.0,
    "workers": 0,
    "dump_timeout": 30,
    "expected": {},
    "known_pods": [],
}


class NodeAuditError(MeshopsError):
    """The node itself cannot be audited (no /proc, no iptables at all), or an option is unusable."""


MAX_DUMP_TIMEOUT = 3600


MAX_PROBE_TIMEOUT = 300


def _number(opts, key, low, high, kind=float):
    value = opts[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise NodeAuditError(f"{key}: {value!r} is not a number; give seconds between {low} and {high}")
    if not low < value <= high:
        raise NodeAuditError(f"{key}: {value} is out of range; give seconds above {low} and at most {high}")
    return kind(value)


def validate_options(options):
    """The audit's options, checked before anything is read; bad values name the option and the fix."""
    opts = dict(DEFAULTS)
    opts.update({k: v for k, v in (options or {}).items() if v is not None})
    opts["dump_timeout"] = _number(opts, "dump_timeout", 0, MAX_DUMP_TIMEOUT)
    opts["probe_timeout"] = _number(opts, "probe_timeout", 0, MAX_PROBE_TIMEOUT)
    workers = opts["workers"]
    if isinstance(workers, bool) or not isinstance(workers, int) or not 0 <= workers <= 256:
        raise NodeAuditError(f"workers: {workers!r} must be a whole number from 0 (automatic) to 256")
    for key, known in (("families", ("ipv4", "ipv6")), ("backends", ("nft", "legacy"))):
        values = list(opts[key] or [])
        if not values or any(v not in known for v in values):
            raise NodeAuditError(f"{key}: {values!r} must be a non-empty list of {', '.join(known)}")
        opts[key] = list(dict.fromkeys(values))
    for uid in opts["proxy_uids"]:
        if isinstance(uid, bool) or not isinstance(uid, int) or not 0 <= uid <= MAX_ID:
            raise NodeAuditError(f"proxy_uids: {uid!r} is not a uid; give numbers from 0 to {MAX_ID}")
    try:
        opts["expected"] = validate_expected(opts["expected"])
    except OptionError as exc:
        raise NodeAuditError(str(exc)) from None
    return opts
