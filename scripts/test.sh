#!/usr/bin/env bash
# The whole test suite, slow tests included: 24 min on this 2-core machine in a fresh clone (2026-12-06
# 10:00, 789 tests, the Spark tests about 5 min of it; the previous CI run took 1,350 s with its set-up).
# It skips only what is absent, with the reason: ../shared data, PostgreSQL, Chromium, Java.
set -euo pipefail
cd "$(dirname "$0")/.."
# --durations: the 25 slowest tests at the end, for whoever works on the suite's time.
exec .venv/bin/pytest -q --durations=25 "$@"
