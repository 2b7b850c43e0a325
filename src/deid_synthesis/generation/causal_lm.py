"""Load the generator: a causal LM from a hub name, a local folder, or a packaged GGUF.

Adaptation (`lora`), generation (`llm`, `sampler`) and the benchmark all load their model
here, so they agree on what a base-model name means (see `packaged.resolve_base`). For
inference the LoRA weights are merged into the base weights, so generation costs what the
base model costs.
"""
from pathlib import Path
from typing import Optional, Tuple, Union

import torch

from deid_synthesis.generation.manifest import DEFAULT_BASE, DEFAULT_CACHE, ModelLoadError, has_lora, read_manifest
from deid_synthesis.generation.packaged import resolve_base

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def load_tokenizer(base: str, cache_dir: Union[str, Path] = DEFAULT_CACHE):
    """The base model's tokenizer, with the end-of-sequence token as padding when it has none.

    base (str): packaged name, folder or hub name.
    cache_dir (Union[str, Path]): where packaged models are prepared.
    RETURNS (PreTrainedTokenizerBase): the tokenizer.
    """
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_base(base, cache_dir))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(
    base: str = DEFAULT_BASE,
    adapter: Optional[Union[str, Path]] = None,
    *,
    cache_dir: Union[str, Path] = DEFAULT_CACHE,
    dtype: str = "float32",
    device: str = "cpu",
    merge: bool = True,
    attn_implementation: Optional[str] = None,
) -> Tuple[torch.nn.Module, object]:
    """Load (model, tokenizer) for inference, with the adapter merged unless merge=False.

    An adapter trained on another base model is refused: merging it would silently give
    a different model than the manifest says.

    base (str): packaged name, folder or hub name.
    adapter (Optional[Union[str, Path]]): an adapter folder, or None for the base model.
    dtype (str): float32, bfloat16 or float16.
    device (str): torch device.
    merge (bool): merge the LoRA weights into the base weights.
    attn_implementation (Optional[str]): transformers' attention implementation.
    RETURNS (Tuple[torch.nn.Module, object]): the model (eval mode) and its tokenizer.
    """
    from transformers import AutoModelForCausalLM

    if dtype not in DTYPES:
        raise ModelLoadError(f"unknown dtype '{dtype}': use one of {sorted(DTYPES)}")
    if adapter:
        manifest = read_manifest(adapter)
        if manifest.get("base_model") not in (None, str(base)):
            raise ModelLoadError(
                f"{adapter}: adapter was trained on '{manifest['base_model']}', not on '{base}'"
            )
    path = resolve_base(base, cache_dir)
    kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
    model = AutoModelForCausalLM.from_pretrained(path, torch_dtype=DTYPES[dtype], **kwargs)
    tokenizer = load_tokenizer(base, cache_dir)
    if has_lora(adapter):
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
        if merge:
            model = model.merge_and_unload()
    model.to(device)
    model.eval()
    return model, tokenizer
