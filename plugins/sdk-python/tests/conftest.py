"""pytest for the SDK itself: `tagship_plugin` from this checkout, no componentize-py needed."""

import importlib.util
import itertools
import os
import sys
import textwrap

import pytest

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

_counter = itertools.count()


@pytest.fixture
def load_app(tmp_path):
    """Writes `files` ({relative path: source}) into a fresh folder and imports its `app.py` as a
    new module, as an author's plugin would be; returns the module."""

    def load(files):
        for name, source in files.items():
            path = tmp_path / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(source).lstrip("\n"))
        sys.path.insert(0, str(tmp_path))
        try:
            name = f"author_app_{next(_counter)}"
            spec = importlib.util.spec_from_file_location(name, tmp_path / "app.py")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module
        finally:
            sys.path.remove(str(tmp_path))

    return load
