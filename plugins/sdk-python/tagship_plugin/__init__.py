"""tagship_plugin: write tagship plugins (health checks, notifiers, compat checks) in Python.

    from tagship_plugin import health_check, healthy, unhealthy, require_config, get

    @health_check
    def check(ctx):
        url = require_config("url")
        response = get(url)
        if response.status == 200:
            return healthy(f"{url} answered 200", value=response.status, threshold="== 200")
        return unhealthy(f"{url} answered {response.status}", value=response.status,
                         threshold="== 200")

Build the component with componentize-py (see `template/build.sh`). Any exception `check` raises
becomes the check's error, e.g. `ValueError: bad input (at app.py:12)`.

Only modules imported when `app.py` is imported end up in the component: import what you need at
the top of `app.py`, never inside a function.
"""

# Everything the SDK uses is imported here, at import time (see above).
from . import _bindings, log
from ._bindings import Err
from ._bindings import types as _types
from .config import config, config_or, require_config, require_secret, secret
from .errors import (
    ConfigError,
    HttpError,
    HttpStatusError,
    PluginError,
    ResponseError,
    format_exception,
)
from .exports import compat_check, health_check, notifier
from .http import Headers, Response, get, post_json, request
from .log import debug, error, info, trace, warn
from .reports import (
    CompatReport,
    HealthReport,
    HealthStatus,
    compatible,
    healthy,
    incompatible,
    unhealthy,
    unknown,
)

DeployContext = _types.DeployContext
WorkloadVersion = _types.WorkloadVersion
Event = _types.Event
EventKind = _types.EventKind

#: True inside the component, False on plain CPython (tests).
IN_COMPONENT = _bindings.IN_COMPONENT

__all__ = [
    "CompatReport",
    "ConfigError",
    "DeployContext",
    "Err",
    "Event",
    "EventKind",
    "Headers",
    "HealthReport",
    "HealthStatus",
    "HttpError",
    "HttpStatusError",
    "IN_COMPONENT",
    "PluginError",
    "Response",
    "ResponseError",
    "WorkloadVersion",
    "compat_check",
    "compatible",
    "config",
    "config_or",
    "debug",
    "error",
    "format_exception",
    "get",
    "health_check",
    "healthy",
    "incompatible",
    "info",
    "log",
    "notifier",
    "post_json",
    "request",
    "require_config",
    "require_secret",
    "secret",
    "trace",
    "unhealthy",
    "unknown",
    "warn",
]
