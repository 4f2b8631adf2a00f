#!/usr/bin/env bash
# Lint, format check and type check, with the tools and settings of pyproject.toml ([tool.ruff],
# [tool.mypy]) as installed in .venv by the test extras (scripts/test.sh installs them).
# Every check runs even when an earlier one fails, so one run shows everything; the exit status
# is non-zero when any failed. Arguments, if given, replace the default paths (e.g. one file).
# Findings are listed one a line; run ruff itself (without --output-format) to see each in context.
set -uo pipefail
cd "$(dirname "$0")/.."
VPY=.venv/bin/python
if [ "$#" -gt 0 ]; then
    PATHS=("$@")
    TYPED=("$@")
else
    PATHS=(resshift_core nodes tests workflows scripts weights __init__.py)
    # Not the root __init__.py: it is the pack's entry point, imported by ComfyUI as a package named
    # after the folder, so mypy (which names modules from the repository root) cannot resolve its
    # relative imports. ruff still checks it.
    TYPED=(resshift_core nodes tests workflows scripts weights)
fi

failed=()
run() {
    local name=$1
    shift
    echo "== $name"
    "$@" || failed+=("$name")
}
run "ruff check" "$VPY" -m ruff check --output-format concise "${PATHS[@]}"
run "ruff format --check" "$VPY" -m ruff format --check --output-format concise "${PATHS[@]}"
run "mypy" "$VPY" -m mypy "${TYPED[@]}"

if [ "${#failed[@]}" -gt 0 ]; then
    echo "lint: failed: ${failed[*]}"
    exit 1
fi
echo "lint: all clean"
