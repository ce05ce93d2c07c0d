#!/usr/bin/env bash
# Create .venv and install phichat into it. `--test` adds the test dependencies.
#
# torch is installed first, pinned, so that resolving the project's own dependencies never
# pulls a different (multi-GB CUDA) build. Override the pin with TORCH_SPEC, e.g.
# TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128".
set -euo pipefail
cd "$(dirname "$0")/.."

extras=""
if [[ "${1:-}" == "--test" ]]; then
    extras="[test]"
fi
python="${PYTHON:-python3}"
if [[ ! -x .venv/bin/python ]]; then
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# shellcheck disable=SC2086  # TORCH_SPEC may carry extra pip arguments on purpose
.venv/bin/python -m pip install --quiet ${TORCH_SPEC:-torch==2.13.0}
.venv/bin/python -m pip install --quiet -e ".${extras}"
# The gguf backend's tests need llama-cpp-python, which compiles llama.cpp from source
# (about 5 minutes on 2 cores). It is best effort: if it cannot build here, those tests
# are skipped with the reason, and everything else still runs. PHICHAT_SKIP_GGUF=1 skips it.
if [[ -n "$extras" && "${PHICHAT_SKIP_GGUF:-0}" != "1" ]]; then
    if ! .venv/bin/python -c "import llama_cpp" 2>/dev/null; then
        echo "building llama-cpp-python for the gguf tests (a few minutes)…"
        .venv/bin/python -m pip install --quiet -e ".[gguf]" \
            || echo "llama-cpp-python did not build: the gguf backend's tests will be skipped"
    fi
fi
echo "phichat installed in .venv ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
