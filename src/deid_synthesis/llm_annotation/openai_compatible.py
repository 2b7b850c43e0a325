"""An OpenAI-compatible chat/completions client as a spacy-llm model, for any server.

spacy-llm's own OpenAI models check `https://api.openai.com/v1/models` when they start
(spacy-llm issue 499), so a local vLLM, llama.cpp or Ollama server cannot be used through
them. This model (`deid.OpenAICompatible.v1`) talks to `base_url` only: it never calls another
host and follows no redirect; the key comes from an environment variable (none for a local
server) and is never logged; each request has a timeout; connection errors, 429 and 5xx are
retried with exponential backoff; at most `max_concurrency` requests are in flight. Errors name
the URL, the status and the attempt, never a prompt (prompts hold note text).

Responses are cached by spacy-llm's own cache (`[components.llm.cache]`), keyed per document, so
a killed annotation resumes without asking again.
"""
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, Iterable, List, Optional
from urllib.parse import urlparse

import requests
from spacy_llm.registry import registry

ENDPOINTS = {"chat": "chat/completions", "completions": "completions"}
RETRIED_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class ServerError(RuntimeError):
    """A request the server refused or never answered (the message names URL, status, attempts; no prompt)."""


class OpenAICompatibleModel:
    """spacy-llm model: prompts (strings) per document in, the server's completions out."""

    def __init__(self, base_url: str, model: str, endpoint: str = "chat", api_key_env: Optional[str] = "OPENAI_API_KEY",
                 timeout: float = 120.0, max_retries: int = 5, backoff: float = 1.0, max_concurrency: int = 4,
                 temperature: float = 0.0, max_tokens: int = 512, extra_body: Optional[Dict[str, Any]] = None,
                 context_length: Optional[int] = None):
        if endpoint not in ENDPOINTS:
            raise ValueError(f"deid.OpenAICompatible.v1: endpoint must be one of {sorted(ENDPOINTS)}, not {endpoint!r}")
        parsed = urlparse(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"deid.OpenAICompatible.v1: base_url must be http(s)://host[:port]/..., not {base_url!r}")
        if max_concurrency < 1 or max_retries < 0 or timeout <= 0:
            raise ValueError("deid.OpenAICompatible.v1: max_concurrency >= 1, max_retries >= 0 and timeout > 0")
        self.url = base_url.rstrip("/") + "/" + ENDPOINTS[endpoint]
        self.endpoint, self.model = endpoint, model
        self.timeout, self.max_retries, self.backoff = timeout, max_retries, backoff
        self.max_concurrency = max_concurrency
        self.body = {"temperature": temperature, "max_tokens": max_tokens, **(extra_body or {})}
        self._api_key_env = api_key_env
        self._context_length = context_length
        self.requests_sent = 0  # counted, for the resume test and the cost estimate
        self.usage: Dict[str, int] = {"prompt_tokens": 0, "completion_tokens": 0}

    @property
    def context_length(self) -> Optional[int]:
        """The served model's context (tokens): spacy-llm then shards a long note's prompt to fit it."""
        return self._context_length

    def _headers(self) -> Dict[str, str]:
        key = os.environ.get(self._api_key_env) if self._api_key_env else None
        return {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}

    def _payload(self, prompt: str) -> Dict[str, Any]:
        if self.endpoint == "chat":
            return {"model": self.model, "messages": [{"role": "user", "content": prompt}], **self.body}
        return {"model": self.model, "prompt": prompt, **self.body}

    def complete(self, prompt: str) -> str:
        """One completion, retried on connection errors, timeouts, 429 and 5xx with backoff."""
        error = "no answer"
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            self.requests_sent += 1
            try:
                response = requests.post(self.url, json=self._payload(prompt), headers=self._headers(),
                                         timeout=self.timeout, allow_redirects=False)
            except (requests.ConnectionError, requests.Timeout) as err:
                error = type(err).__name__
                continue
            if response.status_code == 200:
                return self._text(response)
            error = f"HTTP {response.status_code}"
            if response.status_code not in RETRIED_STATUS:
                break
        raise ServerError(f"{self.url}: {error} after {attempt + 1} attempt(s)")

    def _text(self, response: requests.Response) -> str:
        try:
            data = response.json()
            choice = data["choices"][0]
            text = choice["message"]["content"] if self.endpoint == "chat" else choice["text"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise ServerError(f"{self.url}: the answer is not an OpenAI-style completion") from None
        for key in self.usage:
            self.usage[key] += int((data.get("usage") or {}).get(key) or 0)
        return text or ""

    def __call__(self, prompts: Iterable[Iterable[str]]) -> Iterable[Iterable[str]]:
        per_doc = [list(doc_prompts) for doc_prompts in prompts]
        flat = [prompt for doc_prompts in per_doc for prompt in doc_prompts]
        with ThreadPoolExecutor(max_workers=self.max_concurrency) as pool:
            answers = iter(list(pool.map(self.complete, flat)))
        return [[next(answers) for _ in doc_prompts] for doc_prompts in per_doc]


@registry.llm_models("deid.OpenAICompatible.v1")
def make_openai_compatible(base_url: str, model: str, endpoint: str = "chat",
                           api_key_env: Optional[str] = "OPENAI_API_KEY", timeout: float = 120.0,
                           max_retries: int = 5, backoff: float = 1.0, max_concurrency: int = 4,
                           temperature: float = 0.0, max_tokens: int = 512,
                           extra_body: Optional[Dict[str, Any]] = None,
                           context_length: Optional[int] = None) -> OpenAICompatibleModel:
    """An OpenAI-compatible server at `base_url` (e.g. "http://localhost:8000/v1" for `vllm serve`).

    endpoint: "chat" (/chat/completions) or "completions". api_key_env: the environment variable
    holding the key (unset: no Authorization header). extra_body: more request fields (e.g. {"seed": 0}).
    context_length: the served model's context in tokens (e.g. vLLM's --max-model-len), so that spacy-llm
    shards long notes; None: not sharded (spacy-llm warns).
    """
    return OpenAICompatibleModel(base_url, model, endpoint, api_key_env, timeout, max_retries, backoff,
                                 max_concurrency, temperature, max_tokens, extra_body, context_length)


def served_models(base_url: str, timeout: float = 10.0) -> List[str]:
    """The model ids a server lists at `base_url`/models (to check a base URL before a long run)."""
    response = requests.get(base_url.rstrip("/") + "/models", timeout=timeout, allow_redirects=False)
    response.raise_for_status()
    return [item["id"] for item in response.json().get("data", [])]
