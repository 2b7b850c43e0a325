"""Decoding pieces of the batched sampler: grouped-query attention, a preallocated KV cache,
and exact nucleus sampling without a full sort.

Hand-written on purpose: where a decoding step of Gemma-3-270m spends its time
(`python -m scripts.bench_generation --profile` measures it) is the 262k-row output layer,
sorting 262k probabilities per row for the nucleus, and, in the attention, copying the
whole KV cache every step (transformers expands the single key/value head to all query
heads, and `DynamicCache` concatenates). These replacements are what make the project's
path measured faster than transformers' `generate` (bench-generation; see the README).
"""
from typing import Callable, List, Optional

import torch


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


def register_attention() -> None:
    """Make ATTENTION known to transformers (attention function and its mask builder)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(ATTENTION, _grouped_query_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(ATTENTION, sdpa_mask)


def make_cache(capacity: int):
    """A KV cache whose layers are buffers of CAPACITY positions, filled in place (see below)."""
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


def nucleus_sample(logits: torch.Tensor, top_p: float, uniforms: torch.Tensor,
                   rescore: Optional[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = None,
                   error: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Indices drawn from the top-p nucleus of each row of `logits` (already divided by T).

    A token is in the nucleus when the probability mass of the tokens ranked above it is
    below p (transformers' rule). Sorting a 262k-token row per step is what makes top-p
    slow, so all rows at once keep only their candidates: the tokens at or above a
    probability floor (1e-4 of the mass to start with). A row whose candidates hold p of
    the mass has its whole nucleus among them, so the result is exact, not an
    approximation; the floor is lowered (down to 0, the full row) for the rows where they
    do not. The nucleus of a Gemma-3 step held a median of ~200 tokens (up to ~10,000).

    With `rescore`, `logits` are approximate (a bfloat16 output layer) and within `error`
    of the exact ones: the candidates get their exact logits from `rescore`, and a row is
    accepted only when the candidates that stay above the floor by more than the error
    hold p of the mass, so that no other token can belong to its nucleus. The nucleus
    and its probabilities are then the exact ones, except that the mass outside the
    candidates (the normaliser's tail) comes from the approximate logits.

    logits (torch.Tensor): (rows, vocabulary) logits, divided by the temperature.
    top_p (float): the nucleus mass.
    uniforms (torch.Tensor): one uniform draw in [0, 1) per row (each sample's own generator).
    rescore (Optional[Callable]): (rows, columns) -> the exact logits of those rows and columns.
    error (Optional[torch.Tensor]): per row, a bound on |exact - approximate logit|.
    RETURNS (torch.Tensor): one token index per row.
    """
    n_rows, vocab = logits.shape
    if rescore is None and vocab <= 32768:  # a restricted vocabulary: one batched top-k is cheaper
        return _nucleus_by_topk(torch.softmax(logits.float(), dim=-1), top_p, uniforms)
    picked = torch.empty(n_rows, dtype=torch.long, device=logits.device)

    def take(rows, probs, columns, k):
        picked[rows] = columns[_draw(probs, top_p, uniforms[rows], k)]

    _nucleus_rows(logits, top_p, take, rescore, error)
    return picked


def nucleus_probs(logits: torch.Tensor, top_p: float, rescore=None, error=None) -> torch.Tensor:
    """The nucleus distributions `nucleus_sample` draws from, dense (rows, vocabulary): for tests."""
    result = torch.zeros(logits.shape, dtype=torch.float64)

    def take(rows, probs, columns, k):
        values, order = _top(probs, k)
        keep = (values.cumsum(-1) - values) < top_p
        keep[:, 0] = True
        values = torch.where(keep, values, torch.zeros_like(values)).double()
        result[rows.unsqueeze(-1), columns[order]] = values / values.sum(-1, keepdim=True)

    _nucleus_rows(logits, top_p, take, rescore, error)
    return result


def _nucleus_rows(logits, top_p, take, rescore=None, error=None) -> None:
    """Find each row's nucleus among its candidates; TAKE(rows, probs, columns, k) gets the rows done."""
    n_rows = logits.shape[0]
    top = logits.max(dim=-1, keepdim=True).values.float()
    weights = (logits.float() - top).exp_()  # exp(logit - row max): unnormalised probabilities
    totals = weights.sum(-1)
    slack = torch.ones(n_rows) if error is None else error.float().exp()
    pending, floor = torch.arange(n_rows, device=logits.device), 1e-4
    while pending.numel():
        rows_w = weights if pending.numel() == n_rows else weights[pending]
        total = totals[pending]
        pairs = (rows_w >= (floor * total).unsqueeze(-1)).nonzero()  # (row, column) of each candidate
        columns = pairs[:, 1].unique()  # the union of the rows' candidates
        counts = torch.bincount(pairs[:, 0], minlength=len(pending))
        approx = rows_w[:, columns]
        if rescore is None:
            exact, norm = approx, total
        else:
            exact = (rescore(pending, columns).float() - top[pending]).exp_()
            norm = total - approx.sum(-1) + exact.sum(-1)  # exact candidates, approximate tail
        probs = exact / norm.unsqueeze(-1)
        # Tokens outside the candidates are below floor * total * slack / norm (exact probability).
        sure = probs >= (floor * total * slack[pending] / norm).unsqueeze(-1)
        done = ((probs * sure).sum(-1) >= top_p) | (floor == 0.0)
        if done.any():
            k = int(counts[done].max())  # a row's nucleus lies within its own candidates
            take(pending[done], probs[done], columns, k)
        pending = pending[~done]
        floor = floor / 16 if floor > 1e-12 else 0.0


def _top(probs: torch.Tensor, k: int):
    """The k largest values of each row and their columns, descending (a sort: torch's topk is slow for large k)."""
    k = max(1, min(k, probs.shape[-1]))
    if k <= 64:
        return probs.topk(k, dim=-1)
    values, order = probs.sort(dim=-1, descending=True)
    return values[:, :k], order[:, :k]


def _draw(probs: torch.Tensor, top_p: float, uniforms: torch.Tensor, k: int) -> torch.Tensor:
    """Per row, the column drawn from the nucleus held by the row's k most probable columns."""
    values, order = _top(probs, k)
    mass = values.cumsum(-1)
    keep = (mass - values) < top_p
    keep[:, 0] = True
    kept = torch.where(keep, values, torch.zeros_like(values)).cumsum(-1)
    choice = torch.searchsorted(kept, (uniforms * kept[:, -1]).unsqueeze(-1)).squeeze(-1)
    choice = torch.minimum(choice, keep.sum(-1) - 1)
    return order.gather(-1, choice.unsqueeze(-1)).squeeze(-1)


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

