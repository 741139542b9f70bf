#!/usr/bin/env bash
# The whole test suite, slow tests included: 7 min 58 s on 2 quiet cores in a fresh clone (2026-11-22: 414
# passed, 18 skipped because ../shared was absent; ~25 min when other work shares the cores). It skips only
# what is absent, with the reason: ../shared data, PostgreSQL, Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/pytest -q "$@"
