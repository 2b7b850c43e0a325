"""`deid.OpenAICompatible.v1` against a real server: vLLM's CPU build serving the packaged Gemma.

tests/test_openai_compatible.py checks the client's protocol against a stand-in; here the server
is the real thing (issue 15): vLLM's OpenAI-compatible API server from `.venv-vllm` (made by
scripts/setup_vllm.sh; vLLM needs transformers 5.x, the project pins 4.x), started once per
module on a free local port and always stopped. Requests are counted from the server's own
Prometheus counter, so "the cache asked nothing" is the server's word, not the client's.

The base model has no chat template; the server is given a plain one (`--chat-template`), so the
`chat` endpoint is exercised too without a second server. The notes are made up.
"""
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests
import spacy

from deid_synthesis.llm_annotation.openai_compatible import OpenAICompatibleModel, ServerError, served_models

ROOT = Path(__file__).resolve().parents[1]
VLLM_PYTHON = ROOT / ".venv-vllm" / "bin" / "python"
SERVED = "gemma3-270m"
# Long enough for vLLM's CPU start-up on 2 busy cores (155 s measured idle).
START_TIMEOUT = float(os.environ.get("DEID_VLLM_START_TIMEOUT", "900"))
NOTES = ["Paciente Ana García Pérez, de 45 años, ingresa el 3 de marzo de 2024 en el Hospital de Teruel.",
         "Varón de 67 años remitido por el Dr. Luis Romero desde Calatayud por dolor torácico."]
CHAT_TEMPLATE = "{% for m in messages %}{{ m['content'] }}{% endfor %}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def log_tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else "(no log)"


def stop(process: subprocess.Popen) -> None:
    """SIGTERM to the server's process group (vLLM starts an engine process), then SIGKILL."""
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def require_vllm_env() -> None:
    """Skip (DEID_SKIP_VLLM=1) or fail when `.venv-vllm` is missing: setup.sh makes it, CI runs these tests."""
    if not VLLM_PYTHON.exists():
        reason = f"{VLLM_PYTHON.parent.parent} is missing: run `bash scripts/setup_vllm.sh` (vLLM's CPU build)"
        if os.environ.get("DEID_SKIP_VLLM") == "1":
            pytest.skip(reason)
        pytest.fail(reason + " or set DEID_SKIP_VLLM=1 to skip")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Base URL of a vLLM server on a free port, up and healthy; stopped after the module."""
    require_vllm_env()
    from deid_synthesis.generation.manifest import DEFAULT_CACHE
    from deid_synthesis.generation.packaged import resolve_base

    model_dir = resolve_base(SERVED, ROOT / DEFAULT_CACHE)  # a transformers folder vLLM can load
    port, log = free_port(), tmp_path_factory.mktemp("vllm") / "server.log"
    command = [str(VLLM_PYTHON), "-m", "vllm.entrypoints.openai.api_server", "--model", model_dir,
               "--served-model-name", SERVED, "--host", "127.0.0.1", "--port", str(port), "--max-model-len", "2048",
               "--dtype", "bfloat16", "--chat-template", CHAT_TEMPLATE]
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "2", "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1"}
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
                                   start_new_session=True)
    try:
        base, start = f"http://127.0.0.1:{port}", time.monotonic()
        while True:
            if process.poll() is not None:
                pytest.fail(f"vLLM server exited with {process.returncode}:\n{log_tail(log)}")
            if time.monotonic() - start > START_TIMEOUT:
                pytest.fail(f"vLLM server not healthy after {START_TIMEOUT:.0f} s:\n{log_tail(log)}")
            try:
                if requests.get(f"{base}/health", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(2)
        yield base + "/v1"
    finally:
        stop(process)


def finished_requests(base_url: str) -> float:
    """Requests the server finished, from its Prometheus counter (all finish reasons)."""
    text = requests.get(base_url.rsplit("/v1", 1)[0] + "/metrics", timeout=10).text
    counts = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
              if line.startswith("vllm:request_success_total")]
    assert counts, "no vllm:request_success_total in /metrics"
    return sum(counts)


def test_spacy_llm_ner_end_to_end_then_from_the_cache(server, tmp_path):
    """spacy-llm's NER task over the real server; a second pipeline answers from spacy-llm's
    cache and the server sees no request. (A 270M base model does not follow the NER prompt, so
    only the shape of the result is checked: spans inside the text, labels from the list.)"""
    labels = ["NOMBRE", "FECHA", "LUGAR"]
    config = {"task": {"@llm_tasks": "spacy.NER.v3", "labels": labels},
              "model": {"@llm_models": "deid.OpenAICompatible.v1", "base_url": server, "model": SERVED,
                        "endpoint": "completions", "max_tokens": 48, "max_concurrency": 2, "context_length": 2048,
                        "extra_body": {"seed": 0}},
              "cache": {"@llm_misc": "spacy.BatchCache.v1", "path": str(tmp_path / "cache"), "batch_size": 1,
                        "max_batches_in_mem": 4}}
    runs = []
    for _ in range(2):
        before = finished_requests(server)
        nlp = spacy.blank("es")
        nlp.add_pipe("llm", config=config)
        docs = list(nlp.pipe(NOTES))
        runs.append((finished_requests(server) - before, nlp.get_pipe("llm")._model.requests_sent,
                     [[(e.start_char, e.end_char, e.label_) for e in doc.ents] for doc in docs]))
        assert [doc.text for doc in docs] == NOTES
        assert {e.label_ for doc in docs for e in doc.ents} <= set(labels)
    assert runs[0][0] == runs[0][1] == len(NOTES)  # one prompt per short note, each answered once
    assert runs[1][:2] == (0, 0) and runs[1][2] == runs[0][2]  # the cache: same entities, no request


def test_concurrent_requests_come_back_in_order(server):
    """Eight prompts with four in flight at once; `echo` makes each answer start with its own
    prompt, so an answer matched to the wrong prompt would show. The chat endpoint works too."""
    prompts = [[f"Nota {i}: paciente de {20 + i} años"] for i in range(8)]
    model = OpenAICompatibleModel(server, SERVED, endpoint="completions", max_tokens=8, max_concurrency=4,
                                  extra_body={"echo": True, "seed": 0})
    in_flight, peak, lock = [0], [0], threading.Lock()
    complete = model.complete

    def counted(prompt):
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        try:
            return complete(prompt)
        finally:
            with lock:
                in_flight[0] -= 1

    model.complete = counted
    before = finished_requests(server)
    answers = model(prompts)
    assert [a[0][: len(p[0])] for a, p in zip(answers, prompts)] == [p[0] for p in prompts]
    assert peak[0] > 1 and finished_requests(server) - before == 8 and model.requests_sent == 8
    assert model.usage["completion_tokens"] > 0
    chat = OpenAICompatibleModel(server, SERVED, endpoint="chat", max_tokens=8, max_concurrency=2)
    assert all(isinstance(a[0], str) for a in chat([["Hola"], ["Adiós"]]))


def test_a_wrong_model_name_is_a_clear_error_without_the_prompt(server):
    """vLLM answers 404 for a model it does not serve: not retried, named, the note not quoted."""
    assert served_models(server) == [SERVED]
    model = OpenAICompatibleModel(server, "no-such-model", endpoint="completions", backoff=0.0)
    with pytest.raises(ServerError, match=r"/v1/completions: HTTP 404 after 1 attempt") as err:
        model([[NOTES[0]]])
    assert "García" not in str(err.value) and model.requests_sent == 1
