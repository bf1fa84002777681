"""Log lines into the runner's log, tagged with the plugin's name by the host.

    from tagship_plugin import log
    log.info("GET %s answered %d", url, status)     # %-style arguments, like `logging`

The host rate-limits lines and redacts the values of granted secrets; a line break is written as
`\\n`. `print()` also reaches the runner's log (at info level), but prefer these.
"""

from . import _host


def _log(level, message, args):
    text = str(message)
    if args:
        try:
            text = text % args
        except (TypeError, ValueError):
            text = " ".join([text, *map(str, args)])
    _host.current().log(level, text)


def trace(message, *args):
    """Logs at trace level."""
    _log("trace", message, args)


def debug(message, *args):
    """Logs at debug level."""
    _log("debug", message, args)


def info(message, *args):
    """Logs at info level."""
    _log("info", message, args)


def warn(message, *args):
    """Logs at warn level."""
    _log("warn", message, args)


warning = warn


def error(message, *args):
    """Logs at error level."""
    _log("error", message, args)
