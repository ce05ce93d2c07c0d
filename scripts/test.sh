#!/usr/bin/env bash
# Set up .venv with the test dependencies, then lint and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
.venv/bin/ruff check phichat tests benchmarks screenshots
.venv/bin/lint-imports
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
