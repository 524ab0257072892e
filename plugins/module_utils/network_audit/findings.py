"""Findings of the audit itself (the engine's findings keep their own codes)."""

SEVERITIES = ("error", "warning", "info")
_RANK = {"error": 3, "warning": 2, "info": 1, None: 0}


def finding(code, severity, message, source="audit"):
    if severity not in SEVERITIES:
        raise ValueError(f"severity {severity!r} must be one of {SEVERITIES}")
    return {"code": code, "severity": severity, "message": message, "source": source}


def worst_severity(findings):
    worst = None
    for f in findings:
        if _RANK.get(f.get("severity"), 0) > _RANK[worst]:
            worst = f["severity"]
    return worst


def fails(worst, fail_on):
    """True when ``worst`` reaches the threshold ``fail_on`` (none | warning | error)."""
    if fail_on == "none" or worst is None:
        return False
    if fail_on == "warning":
        return worst in ("warning", "error")
    return worst == "error"
