"""Synthetic notes from a (LoRA-adapted) causal LM, as a spaCy pipeline (spacy-llm).

Generation is a config (`configs/generate.cfg`): a blank pipeline whose `llm` component
names the project's model (`deid.CausalLM.v1`: base model + adapter, hub name or local
path) and task (`deid.SyntheticNotes.v1`). Each input Doc is one prompt (the first words of
a real note) and one sample index; the task derives the sample's seed from the run seed,
the prompt id and the sample index, so a sample's text does not depend on which other
prompts share its batch, or on whether the run was interrupted and resumed. The result
lands in `doc.user_data["synthetic"]`: the text (prompt included), its token count, and
why it was dropped when it is empty or degenerate.

The Hugging Face backend (`BatchedSampler`) is written for CPU throughput. Where a decoding
step of Gemma-3-270m spends its time (`python -m deid_synthesis.bench_generation` measures it):
the 262k-row output layer (2/3 of the weights), sorting 262k probabilities per row for the
nucleus, and, in the attention, copying the whole KV cache every step (transformers expands
the single key/value head to all query heads, and `DynamicCache` concatenates). So:

* batches of prompts with left padding and a KV cache; finished rows leave the batch;
* nucleus sampling without a full sort: each row sorts only the tokens above a
  probability floor that still hold p of the mass, which contain the exact nucleus of p
  (same distribution as transformers' `top_p`);
* decoding attention that treats the query heads of a key/value head as a group (no copy
  of the cache), and a KV cache preallocated for the whole generation (no concatenation);
* the adapter merged into the weights (`deid_synthesis.causal_lm`).
* Optional, and it changes the sampling distribution: `vocabulary` restricts the output
  layer to the token ids that occur in the adaptation corpus (written by `deid_synthesis.adapt`
  as `token_ids.json`); the model then samples from its distribution renormalised over
  those tokens. Tokens it never saw in the clinical text cannot appear, which also drops
  scripts and emoji a 270M multilingual model sometimes wanders into.

Each sample uses its own random generator, so batched and one-by-one runs draw from the
same distribution; the texts match exactly only when the arithmetic does (batch shape
changes floating-point rounding).
"""
import hashlib
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence

import torch
from spacy.tokens import Doc, DocBin
from spacy_llm.registry import registry

from deid_synthesis.causal_lm import DEFAULT_BASE, DEFAULT_CACHE, load_causal_lm, manifest_hash

# --------------------------------------------------------------------------
# Seeds, degenerate samples, vocabulary
# --------------------------------------------------------------------------


def sample_seed(seed: int, prompt_id: str, sample_index: int) -> int:
    """The seed of one sample: a function of the run seed, the prompt and the sample index only."""
    digest = hashlib.sha256(f"{seed}|{prompt_id}|{sample_index}".encode("utf8")).hexdigest()
    return int(digest[:15], 16)


def degenerate_reason(
    continuation: str, token_ids: Sequence[int], max_token_share: float = 0.5, min_distinct_ngrams: float = 0.25,
    ngram: int = 4,
) -> Optional[str]:
    """Why a generated continuation is not worth keeping, or None.

    "empty": no letter or digit at all. "repeated_token": one token makes up more than
    `max_token_share` of 8 or more tokens ("a a a a ..."). "loop": among 32 or more tokens,
    fewer than `min_distinct_ngrams` of the token n-grams are distinct (a phrase repeated
    over and over).
    """
    if not re.search(r"\w", continuation):
        return "empty"
    n = len(token_ids)
    if n >= 8 and Counter(token_ids).most_common(1)[0][1] > max_token_share * n:
        return "repeated_token"
    if n >= 32:
        grams = [tuple(token_ids[i : i + ngram]) for i in range(n - ngram + 1)]
        if len(set(grams)) < min_distinct_ngrams * len(grams):
            return "loop"
    return None


def corpus_token_ids(tokenizer, texts: Iterable[str]) -> List[int]:
    """Sorted ids of every token of the texts, plus the special tokens generation needs."""
    ids = set()
    for text in texts:
        ids.update(tokenizer(text, add_special_tokens=False).input_ids)
    ids.update(i for i in (tokenizer.eos_token_id, tokenizer.bos_token_id) if i is not None)
    return sorted(ids)


def read_token_ids(path: Optional[str], tokenizer) -> Optional[List[int]]:
    """Token ids from a JSON list (`token_ids.json` of an adapter) or a DocBin's text.

    None or an empty list means no restriction.
    """
    if not path:
        return None
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: vocabulary file not found (a token_ids.json or a .spacy corpus)")
    if path.suffix == ".spacy":
        from spacy.vocab import Vocab

        ids = corpus_token_ids(tokenizer, (doc.text for doc in DocBin().from_disk(path).get_docs(Vocab())))
    else:
        data = json.loads(path.read_text(encoding="utf8"))
        ids = data["token_ids"] if isinstance(data, dict) else data
        if not all(isinstance(i, int) for i in ids):
            raise ValueError(f"{path}: expected a JSON list of token ids")
    return sorted(set(ids)) or None


# --------------------------------------------------------------------------
# Decoding attention and cache (transformers' attention interface)
# --------------------------------------------------------------------------


def _grouped_query_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
    """One decoding step with fewer key/value heads than query heads, without copying the cache.

    transformers' sdpa path repeats the key/value heads to match the query heads, which copies
    the whole cache at every step. Here the query heads of a group become query rows of
    their key/value head. Prompts (several query positions) take the sdpa path.
    """
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    batch, n_heads, q_len, dim = query.shape
    n_kv = key.shape[1]
    if q_len != 1 or n_kv == n_heads:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    grouped = query.reshape(batch, n_kv, n_heads // n_kv, dim)
    mask = attention_mask[:, :, :, : key.shape[-2]] if attention_mask is not None else None
    out = torch.nn.functional.scaled_dot_product_attention(grouped, key, value, attn_mask=mask, scale=scaling)
    return out.reshape(batch, n_heads, 1, dim).transpose(1, 2), None


ATTENTION = "deid_grouped_sdpa"


def _register_attention() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(ATTENTION, _grouped_query_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(ATTENTION, sdpa_mask)


def _make_cache(capacity: int):
    from transformers import DynamicCache

    class PreallocatedCache(DynamicCache):
        """A DynamicCache whose layers live in buffers sized for the whole generation.

        Each step writes one position in place and hands out a view, where DynamicCache
        would concatenate (copy) the whole cache.
        """

        def __init__(self):
            super().__init__()
            self._buffers: List[List[torch.Tensor]] = []
            self._lengths: List[int] = []

        def update(self, key_states, value_states, layer_idx, cache_kwargs=None):
            if layer_idx == 0:
                self._seen_tokens += key_states.shape[-2]
            if len(self._buffers) <= layer_idx:
                batch, heads, _, dim = key_states.shape
                size = max(capacity, key_states.shape[-2])
                self._buffers.append([key_states.new_empty(batch, heads, size, dim) for _ in range(2)])
                self._lengths.append(0)
                self.key_cache.append(key_states)
                self.value_cache.append(value_states)
            start, end = self._lengths[layer_idx], self._lengths[layer_idx] + key_states.shape[-2]
            keys, values = self._buffers[layer_idx]
            if end > keys.shape[-2]:
                raise RuntimeError(f"cache capacity {keys.shape[-2]} exceeded")
            keys[:, :, start:end] = key_states
            values[:, :, start:end] = value_states
            self._lengths[layer_idx] = end
            self.key_cache[layer_idx] = keys[:, :, :end]
            self.value_cache[layer_idx] = values[:, :, :end]
            return self.key_cache[layer_idx], self.value_cache[layer_idx]

        def batch_select_indices(self, indices: torch.Tensor):
            for i, (keys, values) in enumerate(self._buffers):
                self._buffers[i] = [keys[indices], values[indices]]
                self.key_cache[i] = self._buffers[i][0][:, :, : self._lengths[i]]
                self.value_cache[i] = self._buffers[i][1][:, :, : self._lengths[i]]

    return PreallocatedCache()


# --------------------------------------------------------------------------
# The Hugging Face backend
# --------------------------------------------------------------------------


def nucleus_sample(logits: torch.Tensor, top_p: float, uniforms: torch.Tensor) -> torch.Tensor:
    """Indices drawn from the top-p nucleus of each row of `logits` (already divided by T).

    A token is in the nucleus when the probability mass of the tokens ranked above it is
    below p (transformers' rule). Sorting a 262k-token row per step is what makes top-p
    slow, so each row sorts only its candidates: the tokens at or above a probability
    floor, lowered until they hold p of the mass. Those are a top set holding p, so they
    contain the whole nucleus: the result is exact, not an approximation. The nucleus of a
    Gemma-3 step held a median of ~200 tokens (up to ~6,000) in our runs.
    """
    probs = torch.softmax(logits.float(), dim=-1)
    if probs.shape[-1] <= 32768:  # a restricted vocabulary: one batched top-k is cheaper
        return _nucleus_by_topk(probs, top_p, uniforms)
    floor = 1e-4
    candidates = probs >= floor
    picked = []
    for row in range(probs.shape[0]):
        p_row, mask, row_floor = probs[row], candidates[row], floor
        while True:
            index = mask.nonzero().squeeze(-1)
            values = p_row[index]
            if row_floor == 0.0 or float(values.sum()) >= top_p:
                break
            row_floor = row_floor / 16 if row_floor > 1e-12 else 0.0
            mask = p_row >= row_floor
        values, order = values.sort(descending=True)
        mass = values.cumsum(0)
        n_kept = max(1, int(((mass - values) < top_p).sum()))
        kept = mass[:n_kept]
        choice = int(torch.searchsorted(kept, uniforms[row] * kept[-1]).clamp(max=n_kept - 1))
        picked.append(index[order[choice]])
    return torch.stack(picked)


def _nucleus_by_topk(probs: torch.Tensor, top_p: float, uniforms: torch.Tensor) -> torch.Tensor:
    """The same nucleus from the top k of every row, k grown until it holds p in all rows."""
    vocab = probs.shape[-1]
    k = min(64, vocab)
    while True:
        top, index = probs.topk(k, dim=-1)
        mass = top.cumsum(-1)
        if k == vocab or bool((mass[:, -1] >= top_p).all()):
            break
        k = min(k * 4, vocab)
    keep = (mass - top) < top_p
    keep[:, 0] = True
    kept = torch.where(keep, top, torch.zeros_like(top)).cumsum(-1)
    choice = torch.searchsorted(kept, (uniforms * kept[:, -1]).unsqueeze(-1)).clamp(max=k - 1)
    return index.gather(-1, choice).squeeze(-1)


def _backbone(model):
    """The transformer under the output layer (hidden states in, hidden states out)."""
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    return decoder if decoder is not None else model.model


class BatchedSampler:
    """Nucleus sampling from a causal LM in batches, one random generator per sample."""

    def __init__(self, model, tokenizer, *, top_p: float = 0.95, temperature: float = 1.0, max_new_tokens: int = 256,
                 batch_size: int = 32, token_ids: Optional[Sequence[int]] = None):
        if not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], not {top_p}")
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, not {temperature}")
        self.model, self.tokenizer = model, tokenizer
        self.top_p, self.temperature = top_p, temperature
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        self.backbone = _backbone(model)
        head = model.get_output_embeddings()
        self.head_weight = head.weight.detach()
        self.head_bias = head.bias.detach() if getattr(head, "bias", None) is not None else None
        self.softcap = getattr(model.config, "final_logit_softcapping", None)
        eos = model.generation_config.eos_token_id
        eos = eos if isinstance(eos, list) else [eos]
        self.eos_ids = sorted({i for i in eos + [tokenizer.eos_token_id] if i is not None})
        self.token_ids = None
        if token_ids:  # a restricted output layer; it can always end a note
            self.token_ids = torch.tensor(sorted(set(token_ids) | set(self.eos_ids)), dtype=torch.long)
            self.head_weight = self.head_weight[self.token_ids].contiguous()
            if self.head_bias is not None:
                self.head_bias = self.head_bias[self.token_ids]
        self.use_grouped_attention = model.config._attn_implementation in ("sdpa", ATTENTION)
        if self.use_grouped_attention:
            _register_attention()

    def _step_masks(self, mask: torch.Tensor):
        """The attention masks of one decoding step, built directly from the padding mask.

        transformers builds them with vmapped mask functions at every step (~7 ms per step
        for Gemma-3's two kinds of layer). For a single new position they are just the
        padding mask, cut to the window for sliding-window layers. Models whose forward
        takes no per-layer-type masks and that have a sliding window get the 2D mask.
        """
        if not self.use_grouped_attention:
            return mask
        config = self.model.config
        allowed = mask.bool()[:, None, None, :]
        layer_types = getattr(config, "layer_types", None)
        if not layer_types:
            return allowed if getattr(config, "sliding_window", None) is None else mask
        masks = {"full_attention": allowed}
        if "sliding_attention" in layer_types:
            length = mask.shape[1]
            recent = torch.arange(length, device=mask.device) > length - 1 - config.sliding_window
            masks["sliding_attention"] = allowed & recent
        if set(layer_types) - set(masks):
            return mask
        return masks

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = hidden @ self.head_weight.T
        if self.head_bias is not None:
            logits = logits + self.head_bias
        if self.softcap:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits

    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> List[Dict[str, Any]]:
        """One sample per prompt: {"text", "continuation", "token_ids", "n_tokens", "finished"}."""
        if len(prompts) != len(seeds):
            raise ValueError("one seed per prompt")
        results: List[Optional[Dict[str, Any]]] = [None] * len(prompts)
        # Prompts of similar length share a batch: less padding.
        order = sorted(range(len(prompts)), key=lambda i: len(self.tokenizer(prompts[i]).input_ids))
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            for i, result in zip(chunk, self._generate_batch([prompts[i] for i in chunk], [seeds[i] for i in chunk])):
                results[i] = result
        return results  # type: ignore[return-value]

    @torch.inference_mode()
    def _generate_batch(self, prompts: List[str], seeds: List[int]) -> List[Dict[str, Any]]:
        tokenizer, config = self.tokenizer, self.model.config
        previous = config._attn_implementation
        if self.use_grouped_attention:
            config._attn_implementation = ATTENTION
        try:
            tokenizer.padding_side = "left"
            enc = tokenizer(list(prompts), return_tensors="pt", padding=True)
            device = self.head_weight.device
            input_ids, mask = enc.input_ids.to(device), enc.attention_mask.to(device)
            generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            cache = _make_cache(input_ids.shape[1] + self.max_new_tokens)
            out = self.backbone(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                                past_key_values=cache, use_cache=True)
            hidden = out.last_hidden_state[:, -1]
            active = list(range(len(prompts)))  # rows of the batch still generating, by prompt
            new_tokens: List[List[int]] = [[] for _ in prompts]
            finished = [False] * len(prompts)
            last_pos = positions[:, -1]
            eos = torch.tensor(self.eos_ids, device=device)
            for step in range(self.max_new_tokens):
                logits = self._logits(hidden) / self.temperature
                uniforms = torch.stack([torch.rand((), generator=generators[i]) for i in active]).to(device)
                picked = nucleus_sample(logits, self.top_p, uniforms)
                if self.token_ids is not None:
                    picked = self.token_ids.to(device)[picked]
                done = torch.isin(picked, eos)
                for i, token, stop in zip(active, picked.tolist(), done.tolist()):
                    if stop:
                        finished[i] = True
                    else:
                        new_tokens[i].append(token)
                keep = (~done).nonzero().squeeze(-1)
                if keep.numel() == 0 or step == self.max_new_tokens - 1:
                    break
                if keep.numel() < len(active):
                    cache.batch_select_indices(keep)
                    active = [active[r] for r in keep.tolist()]
                    picked, mask, last_pos = picked[keep], mask[keep], last_pos[keep]
                mask = torch.cat([mask, mask.new_ones(len(active), 1)], dim=1)
                last_pos = last_pos + 1
                out = self.backbone(input_ids=picked.unsqueeze(-1), attention_mask=self._step_masks(mask),
                                    position_ids=last_pos.unsqueeze(-1), past_key_values=cache, use_cache=True)
                hidden = out.last_hidden_state[:, -1]
        finally:
            config._attn_implementation = previous
        results = []
        for prompt, tokens, stop in zip(prompts, new_tokens, finished):
            prompt_ids = tokenizer(prompt, add_special_tokens=False).input_ids
            text = tokenizer.decode(prompt_ids + tokens, skip_special_tokens=True)
            continuation = text[len(prompt):] if text.startswith(prompt) else tokenizer.decode(tokens, skip_special_tokens=True)
            results.append({"text": text, "continuation": continuation, "token_ids": tokens,
                            "n_tokens": len(tokens), "finished": stop})
        return results


@torch.inference_mode()
def naive_generate(model, tokenizer, prompts: Sequence[str], seeds: Sequence[int], *, top_p: float = 0.95,
                   temperature: float = 1.0, max_new_tokens: int = 256) -> List[Dict[str, Any]]:
    """The reference path: transformers' `generate`, one prompt at a time (benchmark only)."""
    results = []
    for prompt, seed in zip(prompts, seeds):
        torch.manual_seed(int(seed))
        enc = tokenizer(prompt, return_tensors="pt").to(model.device)
        out = model.generate(input_ids=enc.input_ids, attention_mask=enc.attention_mask, do_sample=True, top_p=top_p,
                             top_k=0, temperature=temperature, max_new_tokens=max_new_tokens,
                             pad_token_id=tokenizer.pad_token_id)
        tokens = [t for t in out[0, enc.input_ids.shape[1]:].tolist() if t not in (tokenizer.pad_token_id,)]
        finished = bool(tokens) and tokens[-1] == tokenizer.eos_token_id
        tokens = [t for t in tokens if t != tokenizer.eos_token_id]
        text = tokenizer.decode(out[0], skip_special_tokens=True)
        results.append({"text": text, "continuation": text[len(prompt):], "token_ids": tokens,
                        "n_tokens": len(tokens), "finished": finished})
    return results


# --------------------------------------------------------------------------
# spacy-llm: the model and the task
# --------------------------------------------------------------------------


class CausalLMModel:
    """spacy-llm model: prompts ({"text", "seed"}) in, samples out (one per prompt)."""

    def __init__(self, sampler, settings: Dict[str, Any]):
        self.sampler = sampler
        self.settings = settings

    def __call__(self, prompts: Iterable[Iterable[dict]]) -> Iterable[Iterable[dict]]:
        per_doc = [list(p) for p in prompts]
        flat = [p for doc_prompts in per_doc for p in doc_prompts]
        samples = iter(self.sampler.generate([p["text"] for p in flat], [p["seed"] for p in flat]))
        return [[next(samples) for _ in doc_prompts] for doc_prompts in per_doc]


@registry.llm_models("deid.CausalLM.v1")
def make_causal_lm(
    base_model: str = DEFAULT_BASE,
    adapter: Optional[str] = None,
    cache_dir: str = str(DEFAULT_CACHE),
    backend: str = "hf",
    dtype: str = "float32",
    device: str = "cpu",
    threads: int = 0,
    batch_size: int = 32,
    max_new_tokens: int = 256,
    top_p: float = 0.95,
    temperature: float = 1.0,
    vocabulary: Optional[str] = None,
) -> CausalLMModel:
    """A causal LM (hub name, local folder or packaged name) with an optional LoRA adapter.

    backend: "hf" (transformers, CPU or GPU), "vllm" (needs vllm and CUDA), or "auto"
    (vllm when both are there). dtype: float32, or bfloat16 (about 1.7x faster on CPUs with
    AMX/AVX512-BF16, slightly different numbers; dynamic int8 quantisation was slower than
    float32 here, so it is not offered). vocabulary: a token_ids.json (or .spacy corpus) to restrict
    the output layer to (changes the distribution, see the module docstring). threads:
    torch's CPU threads (0: torch's default; on a machine shared with other jobs 1 is often
    faster than oversubscribed cores).
    """
    if threads:
        torch.set_num_threads(threads)
    adapter = adapter or None
    settings = {"base_model": base_model, "adapter": adapter, "adapter_manifest": manifest_hash(adapter),
                "backend": backend, "dtype": dtype, "top_p": top_p,
                "temperature": temperature, "max_new_tokens": max_new_tokens, "vocabulary": vocabulary}
    if backend == "auto":
        from deid_synthesis.generation_vllm import vllm_available

        backend = "vllm" if vllm_available() else "hf"
    if backend == "vllm":
        from deid_synthesis.generation_vllm import VLLMSampler

        sampler = VLLMSampler(base_model, adapter, cache_dir=cache_dir, top_p=top_p, temperature=temperature,
                              max_new_tokens=max_new_tokens, dtype=dtype)
        settings["backend"] = "vllm"
        return CausalLMModel(sampler, settings)
    if backend != "hf":
        raise ValueError(f"unknown backend '{backend}': use hf, vllm or auto")
    model, tokenizer = load_causal_lm(base_model, adapter, cache_dir=cache_dir, dtype=dtype, device=device)
    token_ids = read_token_ids(vocabulary, tokenizer)
    settings["vocabulary_size"] = len(token_ids) if token_ids else None
    sampler = BatchedSampler(model, tokenizer, top_p=top_p, temperature=temperature, max_new_tokens=max_new_tokens,
                             batch_size=batch_size, token_ids=token_ids)
    settings["backend"] = "hf"
    return CausalLMModel(sampler, settings)


class SyntheticNotesTask:
    """spacy-llm task: a Doc is a prompt; the sample lands in doc.user_data["synthetic"].

    The prompt id and sample index come from doc.user_data ("prompt_id", "sample_index"),
    set by `deid_synthesis.generate`; without them the prompt text is the id and the index is 0.
    """

    def __init__(self, seed: int, max_token_share: float, min_distinct_ngrams: float):
        self.seed = seed
        self.max_token_share = max_token_share
        self.min_distinct_ngrams = min_distinct_ngrams

    def generate_prompts(self, docs: Iterable[Doc]) -> Iterable[dict]:
        for doc in docs:
            prompt_id = str(doc.user_data.get("prompt_id", doc.text))
            index = int(doc.user_data.get("sample_index", 0))
            yield {"text": doc.text, "seed": sample_seed(self.seed, prompt_id, index)}

    def parse_responses(self, docs: Iterable[Doc], responses: Iterable[Any]) -> Iterable[Doc]:
        # spacy-llm hands a non-sharding task one list of responses per doc (here one sample).
        for doc, doc_responses in zip(docs, responses):
            sample = dict(list(doc_responses)[0])
            token_ids = sample.pop("token_ids")
            sample["dropped"] = degenerate_reason(sample.pop("continuation"), token_ids, self.max_token_share,
                                                  self.min_distinct_ngrams)
            sample["seed"] = sample_seed(self.seed, str(doc.user_data.get("prompt_id", doc.text)),
                                         int(doc.user_data.get("sample_index", 0)))
            doc.user_data["synthetic"] = sample
            yield doc

    @property
    def prompt_template(self) -> str:
        return "{first words of a real note}"


@registry.llm_tasks("deid.SyntheticNotes.v1")
def make_synthetic_notes_task(seed: int = 0, max_token_share: float = 0.5,
                              min_distinct_ngrams: float = 0.25) -> SyntheticNotesTask:
    """Continue each prompt into a note; flag empty and degenerate samples."""
    return SyntheticNotesTask(seed, max_token_share, min_distinct_ngrams)

