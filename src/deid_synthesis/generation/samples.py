"""Per-sample seeds, degenerate samples and the restricted output vocabulary (no torch).

Each sample's seed is a function of the run seed, the prompt id and the sample index only,
so a sample's text does not depend on which other prompts share its batch, or on whether
the run was interrupted and resumed.
"""
import hashlib
import json
import re
from collections import Counter
from pathlib import Path
from typing import Iterable, List, Optional, Sequence

from clinical_deid.io import read_docbin


def sample_seed(seed: int, prompt_id: str, sample_index: int) -> int:
    """The seed of one sample: a function of the run seed, the prompt and the sample index only.

    seed (int): the run seed.
    prompt_id (str): the prompt's id (its dev document).
    sample_index (int): the sample's round.
    RETURNS (int): a 60-bit seed.
    """
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

    continuation (str): the generated text after the prompt.
    token_ids (Sequence[int]): its tokens.
    RETURNS (Optional[str]): "empty", "repeated_token", "loop", or None to keep it.
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
    """Sorted ids of every token of the texts, plus the special tokens generation needs.

    tokenizer (PreTrainedTokenizerBase): the generator's tokenizer.
    texts (Iterable[str]): the adaptation text.
    RETURNS (List[int]): the token ids.
    """
    ids = set()
    for text in texts:
        ids.update(tokenizer(text, add_special_tokens=False).input_ids)
    ids.update(i for i in (tokenizer.eos_token_id, tokenizer.bos_token_id) if i is not None)
    return sorted(ids)


def read_token_ids(path: Optional[str], tokenizer) -> Optional[List[int]]:
    """Token ids from a JSON list (`token_ids.json` of an adapter) or a DocBin's text.

    path (Optional[str]): a token_ids.json (a list, or {"token_ids": [...]}) or a .spacy corpus.
    tokenizer (PreTrainedTokenizerBase): tokenizes the corpus' text.
    RETURNS (Optional[List[int]]): the sorted ids; None (no path, or an empty list) means no
        restriction.
    """
    if not path:
        return None
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: vocabulary file not found (a token_ids.json or a .spacy corpus)")
    if path.suffix == ".spacy":
        ids = corpus_token_ids(tokenizer, (doc.text for doc in read_docbin(path)))
    else:
        data = json.loads(path.read_text(encoding="utf8"))
        ids = data["token_ids"] if isinstance(data, dict) else data
        if not all(isinstance(i, int) for i in ids):
            raise ValueError(f"{path}: expected a JSON list of token ids")
    return sorted(set(ids)) or None

