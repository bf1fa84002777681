"""Health check: GET the `url` config; healthy iff it answers HTTP 200.

Config:  url (required)  the URL to GET, e.g. https://registry.{{environment}}.example.com/health
Grants:  the URL's host (`allow_hosts` in tagship.toml, `--allow-host` on `tagship plugin run`)

Verdicts: HTTP 200 -> healthy; any other status, a timeout or a refused connection -> unhealthy
(the service is not serving); a missing `url`, a denied host or any exception -> the check's
error (the runner fails closed).
"""

# IMPORT EVERYTHING HERE, AT THE TOP. componentize-py snapshots the interpreter after importing
# this file; a module imported later (`import statistics` inside a function) is not in the
# component and fails at call time with ModuleNotFoundError.
from tagship_plugin import (
    HttpError,
    health_check,
    healthy,
    log,
    require_config,
    unhealthy,
)
from tagship_plugin import get as http_get

EXPECTED_STATUS = 200
THRESHOLD = f"HTTP status == {EXPECTED_STATUS}"


@health_check
def check(ctx):
    """Called once per check; `ctx` is the DeployContext (component, version, stage, ...).

    Return healthy(...), unhealthy(...) or unknown(...). Raise (or let an error propagate) when
    the check cannot run: the exception becomes its error, e.g.
    "ConfigError: missing config key `url`: set it under [plugins.NAME.config] (at app.py:36)".
    """
    url = require_config("url")
    try:
        response = http_get(url)
    except HttpError as e:
        if e.kind in ("timeout", "connection"):
            return unhealthy(f"{url} is not serving on {ctx.stage}: {e}", threshold=THRESHOLD)
        raise  # denied, invalid request: a configuration problem, not a health verdict
    log.debug("GET %s answered %d", url, response.status)
    return judge(url, ctx.stage, response.status)


def judge(url, stage, status):
    """The verdict for an answer: pure, so the tests call it without any host."""
    if status == EXPECTED_STATUS:
        return healthy(f"{url} answered HTTP {status} on {stage}", value=status, threshold=THRESHOLD)
    return unhealthy(
        f"{url} answered HTTP {status} on {stage}, expected {EXPECTED_STATUS}",
        value=status,
        threshold=THRESHOLD,
    )
