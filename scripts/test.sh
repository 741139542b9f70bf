#!/usr/bin/env bash
# The whole test suite, slow tests included (about a minute on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/pytest -q "$@"
