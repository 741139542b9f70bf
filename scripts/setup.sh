#!/usr/bin/env bash
# Set up everything on a fresh machine: uv, then the locked Python environment in .venv, then the investigator
# page's graph library (Cytoscape.js, pinned, sha512-checked, into serving/ui/vendor/; skipped when present).
# NPM_CONFIG_REGISTRY: an npm mirror to fetch it from instead of registry.npmjs.org.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v uv >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check "uv==0.13.8"
fi
uv sync --frozen --all-extras --python python3.11 --quiet
.venv/bin/python -m serving.ui.assets --registry "${NPM_CONFIG_REGISTRY:-https://registry.npmjs.org}"
echo "环境就绪 environment ready: .venv (yibao: .venv/bin/yibao)"
