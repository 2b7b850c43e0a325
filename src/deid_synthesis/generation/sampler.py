"""The Hugging Face backend of `deid.CausalLM.v1`: nucleus sampling in batches on a CPU.

Hand-written rather than transformers' `generate`, and kept so because it is measured
faster (`python -m scripts.bench_generation`: naive `generate`, batch 1, adapter not
merged, against this path, same prompts and settings; the README has the figures):

* batches of prompts with left padding and a KV cache; finished rows leave the batch;
* nucleus sampling without a full sort, decoding attention without copying the cache, and
  a KV cache preallocated for the whole generation (`decoding`);
* the adapter merged into the weights (`causal_lm`);
* optional, and it changes the sampling distribution: `token_ids` restricts the output
  layer to the token ids that occur in the adaptation corpus (written by `adapt` as
  `token_ids.json`); the model then samples from its distribution renormalised over those
  tokens. Tokens it never saw in the clinical text cannot appear, which also drops scripts
  and emoji a 270M multilingual model sometimes wanders into.

Each sample uses its own random generator, so batched and one-by-one runs draw from the
same distribution; the texts match exactly only when the arithmetic does (batch shape
changes floating-point rounding).
"""
from typing import Any, Dict, List, Optional, Sequence

import torch

from deid_synthesis.generation.decoding import ATTENTION, make_cache, nucleus_sample, register_attention


def backbone(model):
    """The transformer under the output layer (hidden states in, hidden states out)."""
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    return decoder if decoder is not None else model.model


class BatchedSampler:
    """Nucleus sampling from a causal LM in batches, one random generator per sample.

    model (PreTrainedModel): the causal LM (adapter merged).
    tokenizer (PreTrainedTokenizerBase): its tokenizer.
    top_p (float): nucleus mass; temperature (float): divides the logits.
    max_new_tokens (int): most tokens per sample; batch_size (int): prompts decoded together.
    token_ids (Optional[Sequence[int]]): a restricted output layer (see the module docstring).
    """

    def __init__(self, model, tokenizer, *, top_p: float = 0.95, temperature: float = 1.0, max_new_tokens: int = 256,
                 batch_size: int = 32, token_ids: Optional[Sequence[int]] = None):
        if not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], not {top_p}")
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, not {temperature}")
        self.model, self.tokenizer = model, tokenizer
        self.top_p, self.temperature = top_p, temperature
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        self.backbone = backbone(model)
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
            register_attention()

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
        """One sample per prompt: {"text", "continuation", "token_ids", "n_tokens", "finished"}.

        prompts (Sequence[str]): the prompts.
        seeds (Sequence[int]): one seed per prompt (the sample's own generator).
        RETURNS (List[Dict[str, Any]]): the samples, in the order of the prompts.
        """
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
        config = self.model.config
        previous = config._attn_implementation
        if self.use_grouped_attention:
            config._attn_implementation = ATTENTION
        try:
            new_tokens, finished = self._decode(prompts, seeds)
        finally:
            config._attn_implementation = previous
        return [self._result(prompt, tokens, stop) for prompt, tokens, stop in zip(prompts, new_tokens, finished)]

    def _prefill(self, prompts: List[str]):
        """Run the left-padded prompts through the model: (cache, last hidden state, mask, positions)."""
        self.tokenizer.padding_side = "left"
        enc = self.tokenizer(list(prompts), return_tensors="pt", padding=True)
        device = self.head_weight.device
        input_ids, mask = enc.input_ids.to(device), enc.attention_mask.to(device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = make_cache(input_ids.shape[1] + self.max_new_tokens)
        out = self.backbone(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                            past_key_values=cache, use_cache=True)
        return cache, out.last_hidden_state[:, -1], mask, positions[:, -1]

    def _decode(self, prompts: List[str], seeds: List[int]):
        """Sample until every row ends or max_new_tokens: (new tokens per prompt, ended by <eos>)."""
        cache, hidden, mask, last_pos = self._prefill(prompts)
        device = self.head_weight.device
        generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
        active = list(range(len(prompts)))  # rows of the batch still generating, by prompt
        new_tokens: List[List[int]] = [[] for _ in prompts]
        finished = [False] * len(prompts)
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
        return new_tokens, finished

    def _result(self, prompt: str, tokens: List[int], finished: bool) -> Dict[str, Any]:
        """One sample's record: the prompt and its continuation decoded together."""
        tokenizer = self.tokenizer
        prompt_ids = tokenizer(prompt, add_special_tokens=False).input_ids
        text = tokenizer.decode(prompt_ids + tokens, skip_special_tokens=True)
        continuation = text[len(prompt):] if text.startswith(prompt) else tokenizer.decode(tokens, skip_special_tokens=True)
        return {"text": text, "continuation": continuation, "token_ids": tokens, "n_tokens": len(tokens),
                "finished": finished}


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

