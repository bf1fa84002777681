"""The decorators that make a plain function the plugin's export.

    @health_check
    def check(ctx):
        return healthy("...")

defines, in the function's module, the class componentize-py exports (`Health`, `Notify` or
`Compat`, after the WIT interface), and returns the function itself unchanged, so tests call it
directly. The exported method calls the function and turns any exception it raises into the
WIT `err` string, e.g. `ValueError: the registry said no (at app.py:12)`: without that, an
uncaught exception traps the sandbox and the runner only reports that Python threw.
"""

from . import _bindings, _host
from .errors import author_location, format_exception, traceback_summary
from .reports import CompatReport, HealthReport, HealthStatus

Err = _bindings.Err


def health_check(fn):
    """Exports `fn(ctx: DeployContext) -> HealthReport` as the plugin's `check` (world
    `health-check`). Return `healthy(...)`, `unhealthy(...)` or `unknown(...)`."""
    return _export(fn, "health_check", "Health", "check", "health-check", _health_result)


def notifier(fn):
    """Exports `fn(event: Event) -> None` as the plugin's `notify` (world `notifier`). Raise to
    report a failed delivery (the runner logs it; a notifier never blocks a deploy)."""
    return _export(fn, "notifier", "Notify", "notify", "notifier", _no_result)


def compat_check(fn):
    """Exports `fn(ctx: DeployContext) -> CompatReport` as the plugin's `check` (world
    `compat-check`). Return `compatible([...])` or `incompatible([...])`."""
    return _export(fn, "compat_check", "Compat", "check", "compat-check", _compat_result)


def call_export(fn, arg, check_result=None):
    """Calls `fn(arg)` as the export does: the (checked) result, or `Err(text)` for any
    exception (an `Err` raised by `fn` passes unchanged)."""
    try:
        result = fn(arg)
    except Err:
        raise
    except BaseException as exc:  # noqa: BLE001 - everything must become the check's error
        text = format_exception(exc, fn)
        _log_traceback(fn, exc, text)
        raise Err(text) from None
    if check_result is not None:
        problem = check_result(result)
        if problem:
            location = author_location(None, fn)  # the first line of `fn`
            text = f"TypeError: {_name(fn)}() returned {problem}"
            raise Err(f"{text} (at {location})" if location else text)
        if isinstance(result, HealthReport) and isinstance(result.value, int):
            result.value = float(result.value)  # WIT f64; also accept an int (e.g. a status)
    return result


def _export(fn, decorator, class_name, method, world, check_result):
    if not callable(fn):
        raise TypeError(f"@{decorator} decorates a function, not {fn!r}")
    module = getattr(fn, "__module__", None)
    namespace = getattr(fn, "__globals__", None)
    if namespace is None:
        raise TypeError(f"@{decorator} decorates a plain function defined at module level")
    existing = namespace.get(class_name)
    if existing is not None:
        if getattr(existing, "__tagship_export__", None) is not None:
            raise TypeError(
                f"{module}: two @{decorator} functions ({_name(existing.__tagship_export__)} "
                f"and {_name(fn)}); a plugin exports exactly one"
            )
        raise TypeError(
            f"{module}: @{decorator} defines `{class_name}`, which the module already defines; "
            "remove one of them"
        )
    if (
        _bindings.IN_COMPONENT
        and _bindings.wit_exports is not None
        and not hasattr(_bindings.wit_exports, class_name)
    ):
        raise TypeError(
            f"{module} uses @{decorator}, which needs world `{world}`, but the component is "
            f"built for another world: build with `componentize-py -w {world}` "
            f"(build.sh: TAGSHIP_WORLD={world})"
        )

    def export(self, arg):
        return call_export(fn, arg, check_result)

    export.__name__ = method
    export.__doc__ = fn.__doc__
    cls = type(
        class_name,
        (),
        {
            method: export,
            "__module__": module,
            "__doc__": f"The `{world}` export of {module}, made by @{decorator} from "
            f"{_name(fn)}().",
            "__tagship_export__": fn,
        },
    )
    namespace[class_name] = cls
    fn.__tagship_export__ = cls
    return fn


def _name(fn):
    return getattr(fn, "__name__", repr(fn))


def _health_result(result):
    if isinstance(result, HealthReport) and isinstance(result.status, HealthStatus):
        return None
    return f"{_describe(result)}, not a HealthReport: return healthy(...), unhealthy(...) or unknown(...)"


def _compat_result(result):
    if isinstance(result, CompatReport):
        return None
    return f"{_describe(result)}, not a CompatReport: return compatible([...]) or incompatible([...])"


def _no_result(_result):
    return None


def _describe(value):
    if value is None:
        return "None"
    return f"a {type(value).__name__}"


def _log_traceback(fn, exc, text):
    """The frames of the failure in the runner's log (debug level): the `err` has one line only."""
    try:
        _host.current().log(
            "debug",
            f"{_name(fn)}() failed: {text}; traceback, innermost last: "
            f"{traceback_summary(exc, fn)}",
        )
    except Exception:  # no host (a test without FakeHost): the Err says enough
        pass
