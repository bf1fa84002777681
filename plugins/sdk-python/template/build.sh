#!/usr/bin/env bash
# Builds plugin.wasm, a tagship plugin component, from app.py with componentize-py.
#
#   ./build.sh [APP_DIR]        # APP_DIR: where app.py is; default: this script's folder
#
# Environment:
#   TAGSHIP_WIT    the tagship WIT: a folder with tagship.wit, or the file itself
#                  (default: ../../../wit from this script, i.e. the tagship checkout's wit/)
#   TAGSHIP_SDK    the folder holding the tagship_plugin package
#                  (default: .. from this script, i.e. plugins/sdk-python)
#   TAGSHIP_WORLD  health-check, notifier or compat-check
#                  (default: from the decorator app.py uses, else health-check)
#   PYTHON         the Python that creates the venv (default: python3; the component runs
#                  the CPython 3.14 componentize-py embeds, whatever this one is)
#
# Dependencies of app.py: `.venv/bin/pip install NAME` (pure-Python packages); the build takes
# them from .venv's site-packages.
#
# Creates APP_DIR/.venv with the pinned componentize-py, copies the WIT to APP_DIR/wit, writes
# the bindings (wit_world/, for editors; the build makes its own) and APP_DIR/plugin.wasm.
# About 20 s and 400 MB of memory; the component is about 18 MB.
set -euo pipefail

COMPONENTIZE_PY_VERSION=0.25.1

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
app_dir="$(cd "${1:-$here}" && pwd)"
wit_src="${TAGSHIP_WIT:-$here/../../../wit}"
sdk_dir="$(cd "${TAGSHIP_SDK:-$here/..}" && pwd)"
python="${PYTHON:-python3}"

cd "$app_dir"
if [ ! -f app.py ]; then
    echo "build.sh: no app.py in $app_dir" >&2
    exit 2
fi
if [ ! -f "$sdk_dir/tagship_plugin/__init__.py" ]; then
    echo "build.sh: no tagship_plugin package in $sdk_dir: set TAGSHIP_SDK to your tagship checkout's plugins/sdk-python" >&2
    exit 2
fi

world="${TAGSHIP_WORLD:-}"
if [ -z "$world" ]; then
    if grep -Eq '^@(tagship_plugin\.)?notifier\b' app.py; then
        world=notifier
    elif grep -Eq '^@(tagship_plugin\.)?compat_check\b' app.py; then
        world=compat-check
    else
        world=health-check
    fi
fi

# The WIT: a copy beside the app, so the build does not depend on where the checkout is.
rm -rf wit
mkdir wit
if [ -d "$wit_src" ]; then
    cp "$wit_src"/*.wit wit/
elif [ -f "$wit_src" ]; then
    cp "$wit_src" wit/
else
    echo "build.sh: no WIT at $wit_src: set TAGSHIP_WIT to your tagship checkout's wit/" >&2
    exit 2
fi

# The pinned componentize-py, in a venv of the app's own.
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
if [ "$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("componentize-py"))' 2>/dev/null)" != "$COMPONENTIZE_PY_VERSION" ]; then
    .venv/bin/pip install --quiet --disable-pip-version-check "componentize-py==$COMPONENTIZE_PY_VERSION"
fi

# Stub bindings for editors and type checkers (the build generates the real ones itself).
rm -rf wit_world componentize_py_types.py componentize_py_runtime.pyi componentize_py_async_support poll_loop.py
.venv/bin/componentize-py -d wit -w "$world" bindings .

echo "build.sh: building plugin.wasm (world $world) ..."
start=$(date +%s)
# VIRTUAL_ENV: componentize-py also takes packages from .venv's site-packages (pure Python only).
VIRTUAL_ENV="$app_dir/.venv" .venv/bin/componentize-py -d wit -w "$world" \
    componentize app -p . -p "$sdk_dir" -o plugin.wasm
echo "build.sh: $app_dir/plugin.wasm: $(du -h plugin.wasm | cut -f1), $(( $(date +%s) - start )) s"
