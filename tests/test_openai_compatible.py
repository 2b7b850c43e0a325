"""The OpenAI-compatible spacy-llm model: requests to its base URL only, retries with backoff,
bounded concurrency, errors without prompt text, and spacy-llm's NER task and cache on top.

The server here is a small local HTTP server that answers in the OpenAI format (a stand-in for
the client's protocol tests; the test against a real model server is issue 15's)."""
import json
import threading
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import spacy

from deid_synthesis.llm_annotation.openai_compatible import OpenAICompatibleModel, ServerError

NAME = "Ana García"


class Server:
    """Answers /v1/chat/completions; fails the first `fail_first` requests with `fail_status`."""

    def __init__(self, fail_first=0, fail_status=503):
        self.requests, self.lock = [], threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), **body})
                    n = len(server.requests)
                if n <= fail_first:
                    self.send_response(fail_status)
                    self.send_header("Location", "http://example.org/elsewhere")
                    self.end_headers()
                    return
                prompt = body["messages"][-1]["content"]
                paragraph = prompt.rsplit("Paragraph:", 1)[-1]
                answer = f"1. {NAME} | True | NOMBRE | a name" if NAME in paragraph else "1. nada | False | ==NONE== | -"
                data = json.dumps({"choices": [{"message": {"content": answer}}],
                                   "usage": {"prompt_tokens": 10, "completion_tokens": 3}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    made = []
    yield lambda **kw: made.append(Server(**kw)) or made[-1]
    for s in made:
        s.close()


def test_answers_in_order_with_retries_and_the_key_from_the_environment(server, monkeypatch):
    srv = server(fail_first=2)
    monkeypatch.setenv("DEID_TEST_KEY", "sk-test")
    model = OpenAICompatibleModel(srv.base_url, "gemma", api_key_env="DEID_TEST_KEY", backoff=0.01, max_retries=3,
                                  max_concurrency=2)
    answers = model([[f"Paragraph: {NAME} vino"], ["Paragraph: nada", f"Paragraph: {NAME}"]])
    assert [[a.split(" | ")[2] for a in doc] for doc in answers] == [["NOMBRE"], ["==NONE==", "NOMBRE"]]
    assert model.requests_sent == 5 and len(srv.requests) == 5  # 2 refused (503), retried
    assert {r["path"] for r in srv.requests} == {"/v1/chat/completions"} and srv.requests[-1]["model"] == "gemma"
    assert srv.requests[-1]["auth"] == "Bearer sk-test" and srv.requests[-1]["temperature"] == 0.0
    assert model.usage == {"prompt_tokens": 30, "completion_tokens": 9}


def test_errors_name_the_url_and_status_never_the_prompt(server):
    refused = server(fail_first=99, fail_status=400)
    model = OpenAICompatibleModel(refused.base_url, "gemma", backoff=0.0, max_retries=3)
    with pytest.raises(ServerError, match=r"chat/completions: HTTP 400 after 1 attempt") as err:
        model([[f"Paragraph: {NAME}"]])
    assert NAME not in str(err.value)
    # A redirect is not followed (no other host is ever called): refused as it is.
    moved = server(fail_first=99, fail_status=302)
    with pytest.raises(ServerError, match="HTTP 302"):
        OpenAICompatibleModel(moved.base_url, "gemma", backoff=0.0)([[NAME]])
    # Nobody listening: retried, then named.
    closed = server()
    url = closed.base_url
    closed.close()
    with pytest.raises(ServerError, match=r"ConnectionError after 3 attempt"):
        OpenAICompatibleModel(url, "gemma", backoff=0.0, max_retries=2)([[NAME]])
    for bad in ({"base_url": "localhost:8000"}, {"endpoint": "embeddings"}, {"max_concurrency": 0}):
        with pytest.raises(ValueError, match="deid.OpenAICompatible.v1"):
            OpenAICompatibleModel(**{"base_url": url, "model": "m", **bad})


def test_spacy_llm_ner_through_the_model_and_its_cache(server, tmp_path):
    """spacy-llm's NER task with the model named in a config; the second run answers from the cache
    (batches of one document: spacy-llm writes a batch to disk when it is full)."""
    srv = server()
    config = {"task": {"@llm_tasks": "spacy.NER.v3", "labels": ["NOMBRE"]},
              "model": {"@llm_models": "deid.OpenAICompatible.v1", "base_url": srv.base_url, "model": "gemma",
                        "backoff": 0.0},
              "cache": {"@llm_misc": "spacy.BatchCache.v1", "path": str(tmp_path / "cache"), "batch_size": 1,
                        "max_batches_in_mem": 4}}
    texts = [f"Paciente {NAME} ingresa.", "Sin cambios.", f"Control de {NAME}."]
    for run in range(2):
        nlp = spacy.blank("es")
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # with a context length, spacy-llm shards and does not warn
            nlp.add_pipe("llm", config={**config, "model": {**config["model"], "context_length": 2048}})
        docs = list(nlp.pipe(texts))
        assert [[(e.text, e.label_) for e in doc.ents] for doc in docs] == [[(NAME, "NOMBRE")], [], [(NAME, "NOMBRE")]]
        if run == 0:
            sent = len(srv.requests)
    assert sent == 3 and len(srv.requests) == 3  # the second run asked nothing
