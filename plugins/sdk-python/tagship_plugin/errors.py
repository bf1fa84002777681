"""The SDK's exceptions, and how any exception becomes the one-line `Err` text of a plugin."""

import os

_SDK_DIR = os.path.dirname(os.path.normpath(__file__))


class PluginError(Exception):
    """Base class of the errors the SDK raises."""


class ConfigError(PluginError):
    """A configuration key or secret the plugin needs is missing."""


class HttpError(PluginError):
    """A request produced no response: the WIT `http-error` from the host.

    `kind` is the WIT case (`denied`, `invalid-request`, `timeout`, `too-large`, `connection`),
    `detail` the host's text; `str(error)` is one line, e.g. `denied: host example.com is not
    granted`. `method` and `url` name the request (not part of `str`, so a secret URL stays out
    of messages).
    """

    _PREFIX = {
        "denied": "denied",
        "invalid-request": "invalid request",
        "timeout": "timeout",
        "too-large": "response too large",
        "connection": "connection failed",
    }

    def __init__(self, kind, detail, method=None, url=None):
        super().__init__(kind, detail)
        self.kind = kind
        self.detail = detail
        self.method = method
        self.url = url

    def describe(self):
        """One line, e.g. `denied: host example.com is not granted`."""
        return f"{self._PREFIX.get(self.kind, self.kind)}: {self.detail}"

    def __str__(self):
        return self.describe()


class HttpStatusError(PluginError):
    """`Response.raise_for_status()` on a non-2xx answer, e.g. `HTTP 503: upstream down`."""

    def __init__(self, message, response):
        super().__init__(message)
        self.response = response
        self.status = response.status


class ResponseError(PluginError, ValueError):
    """A response body is not what was asked for (not UTF-8 text, not JSON)."""


# --- exception -> `Err` text -------------------------------------------------------------------


def format_exception(exc, fn=None):
    """`ValueError: the message (at app.py:12)`: the exception's type and message, and where in
    the author's code it happened (the innermost frame outside the SDK and installed packages;
    paths relative to the directory of `fn`, the decorated function)."""
    name = type(exc).__name__
    try:
        message = str(exc)
    except Exception:  # a broken __str__ must not hide the error
        message = ""
    head = f"{name}: {message}" if message else name
    location = author_location(exc, fn)
    return f"{head} (at {location})" if location else head


def author_location(exc, fn=None):
    """`app.py:12` for the innermost frame of `exc`'s traceback that is the author's code, or the
    first line of `fn` when none is (e.g. the SDK rejected what `fn` returned); None if unknown."""
    app_dir = _app_dir(fn)
    frames = _frames(exc)
    for filename, lineno, _name in reversed(frames):
        if _is_author_file(filename, app_dir):
            return f"{_display(filename, app_dir)}:{lineno}"
    if app_dir is None:
        # No idea where the author's code lives: the innermost frame outside the SDK.
        for filename, lineno, _name in reversed(frames):
            if not _in_dir(filename, _SDK_DIR) and not _is_library(filename):
                return f"{os.path.basename(filename)}:{lineno}"
    code = getattr(fn, "__code__", None)
    if code is not None:
        return f"{_display(code.co_filename, app_dir)}:{code.co_firstlineno}"
    return None


def traceback_summary(exc, fn=None):
    """The frames of `exc` outside the SDK, innermost last: `app.py:12 in check, ...`."""
    app_dir = _app_dir(fn)
    parts = [
        f"{_display(filename, app_dir)}:{lineno} in {name}"
        for filename, lineno, name in _frames(exc)
        if not _in_dir(filename, _SDK_DIR)
    ]
    return ", ".join(parts)


def _frames(exc):
    frames = []
    tb = getattr(exc, "__traceback__", None)
    while tb is not None:
        code = tb.tb_frame.f_code
        frames.append((os.path.normpath(code.co_filename), tb.tb_lineno, code.co_name))
        tb = tb.tb_next
    return frames


def _app_dir(fn):
    code = getattr(fn, "__code__", None)
    if code is None or code.co_filename.startswith("<"):
        return None
    return os.path.dirname(os.path.normpath(code.co_filename))


def _in_dir(filename, directory):
    if directory is None:
        return False
    if directory == "":  # the app was loaded by a relative path: its files are relative too
        return not os.path.isabs(filename) and not filename.startswith("<")
    return filename.startswith(directory.rstrip(os.sep) + os.sep)


def _is_library(filename):
    parts = filename.split(os.sep)
    return (
        filename.startswith("<")
        or "site-packages" in parts
        or "dist-packages" in parts
        or ".venv" in parts
        or any(p.startswith("python3") for p in parts)  # .../lib/python3.11/json/decoder.py
    )


def _is_author_file(filename, app_dir):
    if app_dir is None or _in_dir(filename, _SDK_DIR) or not _in_dir(filename, app_dir):
        return False
    return not _is_library(filename[len(app_dir) :])


def _display(filename, app_dir):
    if app_dir == "" and _in_dir(filename, app_dir):
        return filename
    if app_dir is not None and _in_dir(filename, app_dir):
        return filename[len(app_dir.rstrip(os.sep)) + 1 :]
    return os.path.basename(filename)
