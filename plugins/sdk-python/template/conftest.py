"""pytest: make the tagship_plugin package importable (TAGSHIP_SDK, default: the folder above)."""

import os
import sys

_sdk = os.environ.get("TAGSHIP_SDK") or os.path.join(os.path.dirname(__file__), "..")
sys.path.insert(0, os.path.abspath(_sdk))

try:
    import tagship_plugin  # noqa: F401
except ImportError as e:
    raise ImportError(
        f"no tagship_plugin package in {os.path.abspath(_sdk)}: set TAGSHIP_SDK to your tagship "
        "checkout's plugins/sdk-python (in every shell: build.sh needs it too)"
    ) from e
