#!/usr/bin/env bash
# Builds this folder's plugin.wasm with the template's build script.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec "$here/../../template/build.sh" "$here"
