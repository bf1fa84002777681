"""The one place that touches the WIT bindings componentize-py generates (`wit_world`).

Inside the component, `wit_world` is the real connection to the host. On plain CPython (pytest,
an editor) it is either missing or only stubs that raise `NotImplementedError`; the SDK then uses
its own copies of the WIT records (`_fallback`) and whatever host a test installed
(`tagship_plugin.testing.FakeHost`).

Everything is imported here, at module level, on purpose: componentize-py snapshots the
interpreter after importing `app.py`, and a module not imported by then cannot be imported later
(there is no file system inside the sandbox).
"""

import sys

# True inside the component (componentize-py's CPython is built for WASI).
IN_COMPONENT = sys.platform == "wasi"

try:
    from wit_world.imports import host as wit_host
    from wit_world.imports import http as wit_http
    from wit_world.imports import types as wit_types
except Exception:  # ImportError, or stubs too new for this Python (`typing.Self` needs 3.11)
    wit_host = None
    wit_http = None
    wit_types = None

try:
    from wit_world import exports as wit_exports
except Exception:
    wit_exports = None

try:
    from componentize_py_types import Err
except Exception:

    class Err(Exception):
        """The error case of a WIT `result` (stand-in for `componentize_py_types.Err`).

        Raising `Err(text)` from an exported function makes it return `err(text)`.
        """

        def __init__(self, value):
            super().__init__(value)
            self.value = value

        def __repr__(self):
            return f"Err({self.value!r})"


if wit_types is not None:
    types = wit_types
else:
    from . import _fallback as types
