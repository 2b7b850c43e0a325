"""Synthetic notes from a (LoRA-adapted) causal LM, as a spaCy pipeline (spacy-llm).

Generation is a config (`configs/generate.cfg`): a blank pipeline whose `llm` component
names the project's model (`deid.CausalLM.v1`: base model + adapter, hub name or local
path) and task (`deid.SyntheticNotes.v1`). Each input Doc is one prompt (the first words of
a real note) and one sample index; the task derives the sample's seed from the run seed,
the prompt id and the sample index (`samples.sample_seed`). The result lands in
`doc.user_data["synthetic"]`: the text (prompt included), its token count, and why it was
dropped when it is empty or degenerate.

Both names are registered when this module is imported and are also declared as entry
points (groups `thinc_llm_models` / `thinc_llm_tasks`, where spacy-llm's registries look),
so a config that names them loads without importing anything first. torch is imported only
when the model is built.
"""
import functools
from typing import Any, Dict, Iterable, Optional

from spacy.tokens import Doc
from spacy_llm.registry import registry

from deid_synthesis.generation.manifest import DEFAULT_BASE, DEFAULT_CACHE, manifest_hash
from deid_synthesis.generation.samples import degenerate_reason, read_token_ids, sample_seed


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


# Long: 13 options, one per config setting, and their documentation (the body is about 30 lines).
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
    head_dtype: str = "float32",
    ray_actors: int = 0,
    ray_address: Optional[str] = None,
    ray_gpus_per_actor: float = 0,
) -> CausalLMModel:
    """A causal LM (hub name, local folder or packaged name) with an optional LoRA adapter.

    backend: "hf" (transformers, CPU or GPU), "vllm" (vLLM's CUDA build, or its CPU build in an
    environment of its own: `.venv-vllm`, see `bench-vllm`), or "auto" (vllm when it is there). dtype: float32, or bfloat16 (about 1.7x faster on CPUs with
    AMX/AVX512-BF16, slightly different numbers; dynamic int8 quantisation was slower than
    float32 here, so it is not offered). vocabulary: a token_ids.json (or .spacy corpus) to restrict
    the output layer to (changes the distribution, see `sampler`). threads:
    torch's CPU threads (0: torch's default; on a machine shared with other jobs 1 is often
    faster than oversubscribed cores). head_dtype: "float32", or "bfloat16" for the output
    layer (hf backend): a bfloat16 copy of its weight for all 262k rows, the nucleus
    candidates rescored in float32, so the sampling distribution stays the float32 one
    (`sampler`); about twice the tokens/s on 2 cores with AMX (bench-generation).
    ray_actors: 0 (this process), or that many Ray actors, each with its own sampler of these
    settings (`threads` CPUs and `ray_gpus_per_actor` GPUs each; a cluster at `ray_address`, else
    RAY_ADDRESS, else a local instance), sharing each batch of prompts (`ray_sampler`).
    """
    if threads:
        import torch

        torch.set_num_threads(threads)
    adapter = adapter or None
    settings = {"base_model": base_model, "adapter": adapter, "adapter_manifest": manifest_hash(adapter),
                "backend": backend, "dtype": dtype, "top_p": top_p,
                "temperature": temperature, "max_new_tokens": max_new_tokens, "vocabulary": vocabulary,
                "head_dtype": head_dtype}
    if backend == "auto":
        from deid_synthesis.generation.vllm_backend import vllm_available

        backend = "vllm" if vllm_available() else "hf"
    if backend not in ("hf", "vllm"):
        raise ValueError(f"unknown backend '{backend}': use hf, vllm or auto")
    settings["backend"] = backend
    build = functools.partial(build_sampler, backend, base_model, adapter, cache_dir, dtype, device, batch_size,
                              max_new_tokens, top_p, temperature, vocabulary, head_dtype)
    if ray_actors:
        from deid_synthesis.generation.ray_sampler import RaySampler

        sampler = RaySampler(build, ray_actors, base_model, cache_dir, cpus=max(1, threads),
                             gpus=ray_gpus_per_actor, address=ray_address or None)
        if backend == "hf":  # the provenance of one process: the restricted vocabulary's size
            token_ids = read_token_ids(vocabulary, sampler.tokenizer)
            sampler.vocabulary_size = len(token_ids) if token_ids else None
    else:
        sampler = build()
    settings["vocabulary_size"] = getattr(sampler, "vocabulary_size", None)
    return CausalLMModel(sampler, settings)


def build_sampler(backend: str, base_model: str, adapter: Optional[str], cache_dir: str, dtype: str, device: str,
                  batch_size: int, max_new_tokens: int, top_p: float, temperature: float, vocabulary: Optional[str],
                  head_dtype: str):
    """The sampler of `make_causal_lm`'s settings (module-level, so that Ray can send it to its actors)."""
    if backend == "vllm":
        from deid_synthesis.generation.vllm_backend import VLLMSampler

        return VLLMSampler(base_model, adapter, cache_dir=cache_dir, top_p=top_p, temperature=temperature,
                           max_new_tokens=max_new_tokens, dtype=dtype)
    from deid_synthesis.generation.causal_lm import load_causal_lm
    from deid_synthesis.generation.sampler import BatchedSampler

    model, tokenizer = load_causal_lm(base_model, adapter, cache_dir=cache_dir, dtype=dtype, device=device)
    token_ids = read_token_ids(vocabulary, tokenizer)
    sampler = BatchedSampler(model, tokenizer, top_p=top_p, temperature=temperature, max_new_tokens=max_new_tokens,
                             batch_size=batch_size, token_ids=token_ids, head_dtype=head_dtype)
    sampler.vocabulary_size = len(token_ids) if token_ids else None
    return sampler


class SyntheticNotesTask:
    """spacy-llm task: a Doc is a prompt; the sample lands in doc.user_data["synthetic"].

    The prompt id and sample index come from doc.user_data ("prompt_id", "sample_index"),
    set by `deid_synthesis.generation.generate`; without them the prompt text is the id and the index is 0.
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
