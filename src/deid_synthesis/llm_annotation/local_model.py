"""The project's own local causal LM as a spacy-llm model: an LLM annotator with no server.

spacy-llm's built-in Hugging Face models accept a fixed list of hub names only. This model
(`deid.LocalChatLM.v1`) takes what the generator takes (`generation.causal_lm`): a packaged name
(`smollm2-135m-instruct`, the offline instruction-tuned default; `gemma3-270m`), a local folder
or a hub name, with an optional LoRA adapter. A prompt goes through the tokenizer's chat
template when it has one (as a user turn), as plain text when not. Decoding is greedy, so an
annotation is reproducible; in batches whose prompts reuse the KV cache of the part they share
(the instructions and examples: most of a few-shot prompt, read once per run), each prompt's
own rest left-padded after it; decoding attention reads the grouped key/value heads in place
(`generation.decoding`, as the generator does) rather than copying the cache at every step;
an answer ends at a blank line or a new "Paragraph:". Token counts are summed in `usage`, as the
server model does, for the cost estimate of the same run on a served model.
"""
from typing import Dict, Iterable, List, Optional, Sequence

from spacy_llm.registry import registry

from deid_synthesis.generation.manifest import DEFAULT_CACHE

DEFAULT_ANNOTATOR_MODEL = "smollm2-135m-instruct"
# Where an answer of spacy-llm's NER format ends: a small model goes on with a new paragraph.
STOP_STRINGS = ("\n\n", "Paragraph:", "\nQ:")


def copy_cache(cache):
    """A deep copy of a transformers KV cache (generate extends the one it is given)."""
    import copy

    return copy.deepcopy(cache)


def has_sliding_window(config) -> bool:
    """Whether some attention layer of the model sees only a window of recent positions."""
    types = getattr(config, "layer_types", None)
    if types:
        return "sliding_attention" in types
    return bool(getattr(config, "sliding_window", None)) and getattr(config, "use_sliding_window", True)


def cut_at_stop(text: str, stop_strings: Sequence[str]) -> str:
    """The answer before the first stop string (generate stops after it, and keeps it)."""
    for stop in stop_strings:
        text = text.split(stop, 1)[0] if stop.strip() else text.rstrip()
    return text.strip()


class LocalChatModel:
    """spacy-llm model: prompts (strings) per document in, greedy completions out."""

    def __init__(self, model, tokenizer, *, max_new_tokens: int = 256, batch_size: int = 8,
                 context_length: Optional[int] = None, chat_template: bool = True,
                 stop_strings: Sequence[str] = STOP_STRINGS):
        if max_new_tokens < 1 or batch_size < 1:
            raise ValueError("deid.LocalChatLM.v1: max_new_tokens and batch_size must be at least 1")
        self.model, self.tokenizer = model, tokenizer
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        self.use_chat = bool(chat_template and getattr(tokenizer, "chat_template", None))
        limit = getattr(model.config, "max_position_embeddings", None)
        self._context_length = context_length or limit
        self.usage: Dict[str, int] = {"prompt_tokens": 0, "cached_prompt_tokens": 0, "completion_tokens": 0}
        self.requests_sent = 0
        self.stop_strings = list(stop_strings)
        if self.stop_strings:  # transformers fails late on a stop string the tokenizer cannot spell
            from transformers import StopStringCriteria

            try:
                StopStringCriteria(tokenizer, self.stop_strings)
            except ValueError:
                raise ValueError(f"deid.LocalChatLM.v1: the tokenizer cannot spell the stop strings "
                                 f"{self.stop_strings!r}; set stop_strings = [] or others") from None
        self.min_prefix = 16
        self._prefix_ids: List[int] = []
        self._prefix_cache = None

    @property
    def context_length(self) -> Optional[int]:
        """Tokens the model reads at once: spacy-llm shards a long note's prompt to fit."""
        return self._context_length

    def _as_text(self, prompt: str) -> str:
        if not self.use_chat:
            return prompt
        return self.tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                                  add_generation_prompt=True)

    def _shared_with_cache(self, batch_ids: List[List[int]]) -> int:
        """Tokens every prompt of the batch shares with the cached prefix (each keeps one to read)."""
        shared = min(len(self._prefix_ids), min(len(ids) for ids in batch_ids) - 1)
        for ids in batch_ids:
            same = 0
            while same < shared and ids[same] == self._prefix_ids[same]:
                same += 1
            shared = same
        return shared

    def _prefix_for(self, batch_ids: List[List[int]]):
        """The KV cache of what the batch's prompts share, once per batch row, and its length.

        Every prompt of a run starts with the same instructions, label definitions and examples
        (thousands of tokens with few-shot examples): they are read once and kept, not once per note.
        """
        import torch
        from transformers import DynamicCache

        shared = self._shared_with_cache(batch_ids)
        if shared < self.min_prefix:  # a new prefix: what this batch's prompts share
            first, shortest = batch_ids[0], min(len(ids) for ids in batch_ids) - 1
            common = next((i for i in range(shortest) if any(ids[i] != first[i] for ids in batch_ids)), shortest)
            if common < self.min_prefix:
                return None, 0
            cache = DynamicCache()
            with torch.inference_mode():
                self.model(input_ids=torch.tensor([first[:common]]), past_key_values=cache, use_cache=True)
            self._prefix_ids, self._prefix_cache, shared = first[:common], cache, common
        cache = copy_cache(self._prefix_cache)
        cache.crop(shared)
        cache.batch_repeat_interleave(len(batch_ids))
        return cache, shared

    def complete(self, prompts: List[str]) -> List[str]:
        """Greedy completions of a batch: [shared prefix (cached)][padding][each prompt's own rest].

        A model with sliding-window layers (Gemma) would count the padding inside its window, so
        there each prompt is decoded alone (still from the cached prefix): the same answers either way.
        """
        import torch

        if len(prompts) > 1 and has_sliding_window(self.model.config):
            return [answer for prompt in prompts for answer in self.complete([prompt])]
        tokenizer = self.tokenizer
        pad = tokenizer.pad_token_id
        batch_ids = [tokenizer(self._as_text(p), add_special_tokens=not self.use_chat).input_ids for p in prompts]
        cache, shared = self._prefix_for(batch_ids)
        width = max(len(ids) - shared for ids in batch_ids)
        rows = [ids[:shared] + [pad] * (width - len(ids) + shared) + ids[shared:] for ids in batch_ids]
        masks = [[1] * shared + [0] * (width - len(ids) + shared) + [1] * (len(ids) - shared) for ids in batch_ids]
        with torch.inference_mode():
            out = self.model.generate(input_ids=torch.tensor(rows), attention_mask=torch.tensor(masks),
                                      past_key_values=cache, do_sample=False, max_new_tokens=self.max_new_tokens,
                                      pad_token_id=pad, eos_token_id=tokenizer.eos_token_id,
                                      stop_strings=self.stop_strings or None, tokenizer=tokenizer)
        new = out[:, shared + width:]
        self.requests_sent += len(prompts)
        self.usage["prompt_tokens"] += sum(len(ids) for ids in batch_ids)
        self.usage["cached_prompt_tokens"] += shared * len(prompts)
        self.usage["completion_tokens"] += int((new != pad).sum())
        return [cut_at_stop(tokenizer.decode(row, skip_special_tokens=True), self.stop_strings) for row in new]

    def __call__(self, prompts: Iterable[Iterable[str]]) -> Iterable[Iterable[str]]:
        per_doc = [list(p) for p in prompts]
        flat = [p for doc_prompts in per_doc for p in doc_prompts]
        answers: List[str] = []
        for start in range(0, len(flat), self.batch_size):
            answers.extend(self.complete(flat[start:start + self.batch_size]))
        found = iter(answers)
        return [[next(found) for _ in doc_prompts] for doc_prompts in per_doc]


@registry.llm_models("deid.LocalChatLM.v1")
def make_local_chat_lm(base_model: str = DEFAULT_ANNOTATOR_MODEL, adapter: Optional[str] = None,
                       cache_dir: str = str(DEFAULT_CACHE), dtype: str = "float32", max_new_tokens: int = 256,
                       batch_size: int = 8, threads: int = 0, context_length: Optional[int] = None,
                       chat_template: bool = True, stop_strings: Sequence[str] = STOP_STRINGS) -> LocalChatModel:
    """A local causal LM (packaged name, folder or hub name, optional LoRA adapter) for spacy-llm tasks.

    dtype: float32, or bfloat16 (about twice as fast on CPUs with AMX, other rounding);
    max_new_tokens: most tokens of one answer; batch_size: prompts decoded together;
    stop_strings: where an answer ends; threads: torch
    CPU threads (0: torch's default); context_length: tokens per prompt before spacy-llm shards
    (default: the model's own); chat_template: wrap prompts in the tokenizer's chat template
    when it has one.
    """
    import torch

    from deid_synthesis.generation.causal_lm import load_causal_lm

    if threads:
        torch.set_num_threads(threads)
    from deid_synthesis.generation.decoding import ATTENTION, register_attention

    register_attention()  # decoding attention that does not copy the KV cache per step (3x here)
    model, tokenizer = load_causal_lm(base_model, adapter, cache_dir=cache_dir, dtype=dtype,
                                      attn_implementation=ATTENTION)
    return LocalChatModel(model, tokenizer, max_new_tokens=max_new_tokens, batch_size=batch_size,
                          context_length=context_length, chat_template=chat_template, stop_strings=stop_strings)
