#!/usr/bin/env bash
# Install with the test extras, then run the whole test suite and the lint, format and type
# checks (scripts/lint.sh). Both always run; the exit status is non-zero if either failed.
# Arguments go to pytest (e.g. one test file); SKIP_LINT=1 leaves the checks out.
EXTRAS=test
source "$(dirname "$0")/_env.sh"
status=0
"$VPY" -m pytest -q "$@" || status=$?
if [ "${SKIP_LINT:-0}" != "1" ]; then
    bash scripts/lint.sh || status=1
fi
exit "$status"
