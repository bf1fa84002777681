"""pytest: make the tagship_plugin package importable (TAGSHIP_SDK, default: the folder above)."""

import os
import sys

_sdk = os.environ.get("TAGSHIP_SDK") or os.path.join(os.path.dirname(__file__), "..")
sys.path.insert(0, os.path.abspath(_sdk))
