"""The indirection between the SDK and the runner: every host call goes through `current()`.

Inside the component that is `WitHost`, which calls the WIT imports. In tests it is whatever was
installed with `install()` (see `tagship_plugin.testing.FakeHost`). A host is any object with:

    log(level: str, message: str) -> None        # level: trace, debug, info, warn, error
    config(key: str) -> str | None
    secret(name: str) -> str | None
    fetch(method: str, url: str, headers: list[tuple[str, str]], body: bytes | None)
        -> tuple[int, list[tuple[str, str]], bytes]   # status, headers, body
        # raises tagship_plugin.HttpError when the request produced no response
"""

from . import _bindings
from .errors import HttpError

LEVELS = ("trace", "debug", "info", "warn", "error")

# WIT case class name (componentize-py: `HttpError_<Case>`) -> WIT case name.
_HTTP_ERROR_KINDS = {
    "HttpError_Denied": "denied",
    "HttpError_InvalidRequest": "invalid-request",
    "HttpError_Timeout": "timeout",
    "HttpError_TooLarge": "too-large",
    "HttpError_Connection": "connection",
}


def http_error_from_wit(value, method=None, url=None):
    """The `HttpError` exception for a WIT `http-error` value."""
    kind = _HTTP_ERROR_KINDS.get(type(value).__name__, type(value).__name__)
    return HttpError(kind, str(getattr(value, "value", value)), method, url)


class WitHost:
    """The runner, through the WIT imports of the component."""

    def log(self, level, message):
        _bindings.wit_host.log(getattr(_bindings.wit_host.Level, level.upper()), message)

    def config(self, key):
        return _bindings.wit_host.config(key)

    def secret(self, name):
        return _bindings.wit_host.secret(name)

    def fetch(self, method, url, headers, body):
        http = _bindings.wit_http
        request = http.Request(method=method, url=url, headers=list(headers), body=body)
        try:
            response = http.fetch(request)
        except _bindings.Err as err:
            raise http_error_from_wit(err.value, method, url) from None
        return response.status, list(response.headers), bytes(response.body)


_installed = None


def install(host):
    """Make `host` the one every SDK call uses; returns the one it replaces (or None)."""
    global _installed
    previous = _installed
    _installed = host
    return previous


def current():
    if _installed is not None:
        return _installed
    if _bindings.IN_COMPONENT and _bindings.wit_host is not None:
        return _WIT_HOST
    raise RuntimeError(
        "tagship_plugin: no host outside the component; in tests, install a fake one: "
        "`with tagship_plugin.testing.FakeHost(config={...}): ...`"
    )


_WIT_HOST = WitHost()
