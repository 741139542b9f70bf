#!/usr/bin/env bash
# The whole test suite, slow tests included: 16 min 11 s on the 2-core machine of 2026-12-07 in a fresh clone
# (872 tests, two workers; a slower machine than the 10 min 48 s of 2026-12-06: the same city run took 1.45x
# as long); the slowest: the Spark cluster test (rules, graph and features on both engines) 152 s, the small
# demo fixture 140 s, the pre-check-only service 102 s, training against an MLflow server 78 s.
# It skips only what is absent, with the reason: ../shared data, PostgreSQL, Chromium, Java.
set -euo pipefail
cd "$(dirname "$0")/.."
# Two workers (pytest-xdist), one per core; the tests that share an expensive session fixture (the small
# demo, Spark, the running services) are each kept on one worker (tests/conftest.py groups them) so that it
# is built once.
# --durations: the 25 slowest tests at the end, for whoever works on the suite's time.
# OMP_WAIT_POLICY=PASSIVE: LightGBM's OpenMP threads sleep when idle instead of spinning; with two workers each
# training on 2 threads, spinning threads took a test from 17 s to over 10 minutes on this 2-core machine.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
exec .venv/bin/pytest -q -n "${YIBAO_TEST_WORKERS:-2}" --dist loadgroup --durations=25 "$@"
