"""Generation at scale on Ray: `deid.CausalLM.v1` with `ray_actors = N` shares each batch of prompts
between N Ray actors, each holding its own sampler (vLLM on a GPU, or the project's sampler).

The `generate` step is unchanged: same prompts, sample seeds, provenance, resume and JSONL.
A sample depends on its prompt and its seed only (vLLM: one request per sample with its own
seed; the project's sampler: one random generator per sample), not on the actor that drew
it, so N actors write the corpus one process would (with vLLM, token for token; with the
project's sampler, up to the floating-point rounding that batch shapes change, as its
docstring says). The nlp batch size (`[nlp] batch_size` of configs/generate.cfg) is what
one call shares out: make it a multiple of the actors times their own batch size.

On a GPU cluster (docs/scale_out.md): `--components.llm.model.backend vllm
--components.llm.model.ray_actors 8 --components.llm.model.ray_gpus_per_actor 1`, the base
model and the adapter on storage every node reads (or a hub name), RAY_ADDRESS set to the
cluster. The actors are started by the project's Ray engine (`clinical_deid.production.ray_engine`).
"""
from typing import Any, Callable, Dict, List, Optional, Sequence

from deid_synthesis.generation.manifest import DEFAULT_CACHE
from deid_synthesis.generation.packaged import resolve_base


class _SamplerWorker:
    """An actor's sampler; a call is one shard of prompts and seeds."""

    def __init__(self, build: Callable[[], Any]) -> None:
        self.sampler = build()

    def __call__(self, shard: Dict[str, List]) -> List[Dict[str, Any]]:
        return self.sampler.generate(shard["prompts"], shard["seeds"])


class RaySampler:
    """The sampler interface (`generate(prompts, seeds)`) over `actors` Ray actors.

    build (Callable): makes one sampler (`llm.build_sampler` with its settings); run in each actor.
    base_model / cache_dir: for the tokenizer kept here (`generate` estimates words per sample with it).
    cpus / gpus: per actor; address: a Ray cluster to join (default: RAY_ADDRESS, else a local instance).
    """

    def __init__(self, build: Callable[[], Any], actors: int, base_model: str, cache_dir: str = str(DEFAULT_CACHE),
                 cpus: int = 1, gpus: float = 0, address: Optional[str] = None) -> None:
        import functools

        from clinical_deid.production.ray_engine import RayPool

        self.pool = RayPool(functools.partial(_SamplerWorker, build), actors, cpus, address, gpus=gpus)
        self.base_model, self.cache_dir = base_model, cache_dir
        self._tokenizer = None
        self.vocabulary_size: Optional[int] = None  # set by make_causal_lm (provenance)

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(resolve_base(self.base_model, self.cache_dir))
        return self._tokenizer

    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> List[Dict[str, Any]]:
        """One sample per prompt, in their order: contiguous shares of the prompts, one per actor."""
        if len(prompts) != len(seeds):
            raise ValueError("one seed per prompt")
        size = -(-len(prompts) // self.pool.size) if prompts else 1
        handles = [self.pool.submit({"prompts": list(prompts[i:i + size]), "seeds": list(seeds[i:i + size])})
                   for i in range(0, len(prompts), size)]
        return [sample for handle in handles for sample in self.pool.result(handle)]

    def close(self) -> None:
        self.pool.close()
