"""Example: a health check that raises. The runner's verdict is `error` (exit 5) with the reason
`ValueError: the registry said no (at app.py:21)`: the exception's type, message and the line of
this file that raised it. Used by tests to show that the text reaches the verdict.

Build: ./build.sh (the template's build.sh, run on this folder).
"""

from tagship_plugin import health_check, healthy


@health_check
def check(ctx):
    verdict = ask_registry(ctx.component)
    return healthy(verdict)


def ask_registry(component):
    # An author's helper: the reported line is this innermost frame of the author's code, not
    # the line in check() that called it.
    if component:
        raise ValueError("the registry said no")
    return f"{component} is fine"
