#!/usr/bin/env bash
# Install with the test extras, then run the whole test suite.
EXTRAS=test
source "$(dirname "$0")/_env.sh"
"$VPY" -m pytest -q "$@"
