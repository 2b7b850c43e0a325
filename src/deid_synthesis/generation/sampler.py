"""The Hugging Face backend of `deid.CausalLM.v1`: nucleus sampling in batches on a CPU.

Hand-written rather than transformers' `generate`, and kept so because it is measured
faster (`python -m scripts.bench_generation`: naive `generate`, batch 1, adapter not
merged, against this path, same prompts and settings; the README has the figures):

* batches of prompts with left padding and a KV cache; finished rows leave the batch;
* nucleus sampling without a full sort, decoding attention without copying the cache, and
  a KV cache preallocated for the whole generation (`decoding`);
* the adapter merged into the weights (`causal_lm`);
* optional, same distribution: `head_dtype="bfloat16"` computes the 262k-row output layer
  from a bfloat16 copy of its weight (AMX on recent Intel CPUs, about 2.5x faster than
  float32), then gives the nucleus candidates their exact float32 logits again
  (`decoding.nucleus_sample`, with a proven bound on the bfloat16 error), so the nucleus
  and its probabilities stay those of the float32 model;
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
    head_dtype (str): "float32", or "bfloat16" for the faster output layer with exact rescoring
        of the nucleus candidates (same distribution; see the module docstring). With a
        bfloat16 model it changes nothing.
    """

    def __init__(self, model, tokenizer, *, top_p: float = 0.95, temperature: float = 1.0, max_new_tokens: int = 256,
                 batch_size: int = 32, token_ids: Optional[Sequence[int]] = None, head_dtype: str = "float32"):
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
        if head_dtype not in ("float32", "bfloat16"):
            raise ValueError(f"head_dtype must be float32 or bfloat16, not {head_dtype}")
        self.head_fast, self.head_norm = None, 0.0
        if head_dtype == "bfloat16" and self.head_weight.dtype == torch.float32:
            self.head_fast = self.head_weight.to(torch.bfloat16)  # a copy: ~340 MB for Gemma-3's 262k rows
            self.head_norm = float(self.head_weight.norm(dim=-1).max())
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

    def _logits(self, hidden: torch.Tensor, columns: Optional[torch.Tensor] = None, fast: bool = False):
        """Logits divided by the temperature: all rows of the output layer, or COLUMNS; FAST: the bfloat16 copy."""
        if fast:  # the hidden state as two bfloat16 halves, one matmul: its rounding is not shared by all rows
            high = hidden.to(torch.bfloat16)
            both = torch.cat([high, (hidden - high.float()).to(torch.bfloat16)]) @ self.head_fast.T
            logits = both[: len(hidden)].float() + both[len(hidden):]
        else:
            weight = self.head_weight if columns is None else self.head_weight[columns]
            logits = hidden @ weight.T
        if self.head_bias is not None:
            logits = logits + (self.head_bias if columns is None else self.head_bias[columns])
        if self.softcap:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits / self.temperature if self.temperature != 1.0 else logits

    def _fast_error(self, hidden: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """Per row, a bound on |fast logit - float32 logit| (divided by the temperature).

        The hidden state h is split exactly enough (two bfloat16 halves, 2^-18 |h| left
        over); rounding the weight to bfloat16 (8 significant bits) moves each product by at
        most 2^-9 |h_i w_i|, so a logit by at most 2^-9 |h| |w| (Cauchy-Schwarz, |w| the
        largest row norm). Products are summed in float32, and each half's sums rounded to
        bfloat16 (2^-9 of the largest |logit|, itself at most |h| |w|). Bias, softcap
        (1-Lipschitz) and temperature keep it a bound; 2% on top covers the float32 sums.
        Why split h: its rounding error would shift the logits of all tokens alike, and the
        tail of the normaliser (approximate logits) with them; the weight's errors are
        independent from row to row and average out there.
        """
        products = hidden.float().norm(dim=-1) * self.head_norm
        largest = products
        if self.head_bias is None and not self.softcap:  # the logits themselves: a tighter bound
            low, high = logits.aminmax(dim=-1)
            largest = torch.maximum(low.abs(), high.abs()).float() * self.temperature
        return (products + largest) * 2.0 ** -9 * 1.02 / self.temperature

    def _nucleus_inputs(self, hidden: torch.Tensor):
        """(logits, rescore, error) for `decoding.nucleus_sample` / `nucleus_probs`: exact, or bfloat16 + rescoring."""
        if self.head_fast is None:
            return self._logits(hidden), None, None
        approx = self._logits(hidden, fast=True)
        return approx, lambda rows, cols: self._logits(hidden[rows], cols), self._fast_error(hidden, approx)

    def _sample(self, hidden: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
        """One token per row of HIDDEN (last hidden states), from the nucleus of the full output layer."""
        logits, rescore, error = self._nucleus_inputs(hidden)
        return nucleus_sample(logits, self.top_p, uniforms, rescore, error)

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
            uniforms = torch.stack([torch.rand((), generator=generators[i]) for i in active]).to(device)
            picked = self._sample(hidden, uniforms)
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

