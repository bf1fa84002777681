"""Builders of the reports checks return (the WIT records `health-report`, `compat-report`)."""

from ._bindings import types

HealthReport = types.HealthReport
HealthStatus = types.HealthStatus
CompatReport = types.CompatReport


def _health(status, reason, value, threshold):
    return HealthReport(
        status=status,
        value=None if value is None else float(value),
        threshold=None if threshold is None else str(threshold),
        reason=str(reason),
    )


def healthy(reason, value=None, threshold=None):
    """The measured value satisfies the pass condition.

    `value`: the number measured (e.g. a status code or a ratio); `threshold`: the pass
    condition as a person reads it (`== 200`, `0.99..`)."""
    return _health(HealthStatus.HEALTHY, reason, value, threshold)


def unhealthy(reason, value=None, threshold=None):
    """The measured value violates the pass condition."""
    return _health(HealthStatus.UNHEALTHY, reason, value, threshold)


def unknown(reason, value=None, threshold=None):
    """The check ran but could not decide (e.g. no data)."""
    return _health(HealthStatus.UNKNOWN, reason, value, threshold)


def _reasons(reasons):
    if isinstance(reasons, str):
        return [reasons]
    return [str(reason) for reason in reasons]


def compatible(reasons):
    """Compatible; `reasons`: one sentence per rule evaluated (a list, or one string)."""
    return CompatReport(compatible=True, reasons=_reasons(reasons))


def incompatible(reasons):
    """Incompatible; `reasons`: one sentence per rule evaluated (a list, or one string)."""
    return CompatReport(compatible=False, reasons=_reasons(reasons))
