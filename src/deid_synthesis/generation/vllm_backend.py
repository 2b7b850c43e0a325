"""vLLM backend of `deid.CausalLM.v1` (optional: a GPU and `pip install vllm`).

The paper served its generators with vLLM. Here vLLM takes the base model and the LoRA
adapter as it is (no merge: vLLM applies LoRA in its kernels), one request per sample with
the sample's own seed, so a sample depends on its seed and not on its batch. Only imported
when the config asks for backend "vllm" or "auto"; nothing else in the project needs it.
"""
import importlib.util
from typing import Any, Dict, List, Optional, Sequence

from deid_synthesis.generation.causal_lm import load_tokenizer
from deid_synthesis.generation.manifest import DEFAULT_CACHE, has_lora, read_manifest
from deid_synthesis.generation.packaged import resolve_base


def vllm_available() -> bool:
    """Whether the vllm package and a CUDA device are there."""
    if importlib.util.find_spec("vllm") is None:
        return False
    import torch

    return torch.cuda.is_available()


class VLLMSampler:
    """Same interface as `sampler.BatchedSampler`: generate(prompts, seeds)."""

    def __init__(self, base_model: str, adapter: Optional[str], *, cache_dir=DEFAULT_CACHE, top_p: float = 0.95,
                 temperature: float = 1.0, max_new_tokens: int = 256, dtype: str = "float32",
                 gpu_memory_utilization: float = 0.85):
        if not vllm_available():
            raise RuntimeError("backend 'vllm' needs the vllm package and a CUDA device (use backend 'hf')")
        from vllm import LLM, SamplingParams
        from vllm.lora.request import LoRARequest

        path = resolve_base(base_model, cache_dir)
        self.tokenizer = load_tokenizer(base_model, cache_dir)
        self.lora = None
        kwargs: Dict[str, Any] = {}
        if has_lora(adapter):
            rank = read_manifest(adapter)["hyperparameters"]["rank"]
            kwargs.update(enable_lora=True, max_lora_rank=max(8, rank))
            self.lora = LoRARequest("adapter", 1, str(adapter))
        # vLLM prefers half precision on GPUs; float32 from the CPU default becomes bfloat16.
        self.llm = LLM(model=path, dtype="bfloat16" if dtype == "float32" else dtype, seed=0,
                       gpu_memory_utilization=gpu_memory_utilization, **kwargs)
        self._params = lambda seed: SamplingParams(top_p=top_p, temperature=temperature, max_tokens=max_new_tokens,
                                                   seed=int(seed) % (2**31), skip_special_tokens=True)

    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> List[Dict[str, Any]]:
        outputs = self.llm.generate(list(prompts), [self._params(s) for s in seeds], lora_request=self.lora,
                                    use_tqdm=False)
        results = []
        for prompt, out in zip(prompts, outputs):
            completion = out.outputs[0]
            tokens = [t for t in completion.token_ids if t != self.tokenizer.eos_token_id]
            results.append({"text": prompt + completion.text, "continuation": completion.text,
                            "token_ids": tokens, "n_tokens": len(tokens),
                            "finished": completion.finish_reason == "stop"})
        return results
