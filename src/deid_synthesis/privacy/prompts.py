"""The prompt check: prompts (and samples' openings) that hold a PHI string of their own dev note.

generate cuts each prompt from a dev note pseudonymized with the note's gold entities, so the
count must be 0. A string is matched as whole words regardless of case and accents (with the
folding that propagation and residual_phi use), and every annotated string with a word counts:
in its own note even "45" or a one-letter initial is that patient's. Counts only, never the
strings. generate uses `phi_word_runs` and `find_phi_runs` for its own check of a prompt.
"""
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Dict, Iterable, List, Sequence, Set, Tuple

from spacy.tokens import Doc

from clinical_deid.io import read_jsonl
from clinical_deid.folding import fold  # the folding propagation and residual_phi match with
from deid_synthesis.privacy.ngrams import WORD
from deid_synthesis.privacy.sources import read_gold

WordRun = Tuple[str, ...]
Found = Tuple[int, int, WordRun]


def folded_words(text: str) -> List[Tuple[str, int, int]]:
    """(folded word, start, end) of each `\\w+` run of the text: whole words, offsets kept."""
    return [(fold(match.group()), match.start(), match.end()) for match in WORD.finditer(text)]


def phi_word_runs(doc: Doc, min_chars: int = 1) -> Dict[WordRun, Set[str]]:
    """The folded word runs of a document's annotated strings, with their labels.

    doc (Doc): a gold document.
    min_chars (int): skip strings shorter than this (1: every string with a word counts).
    RETURNS (Dict[WordRun, Set[str]]): word run -> the labels it is annotated with.
    """
    runs: Dict[WordRun, Set[str]] = defaultdict(set)
    for ent in doc.ents:
        run = tuple(word for word, _, _ in folded_words(ent.text))
        if run and len(ent.text.strip()) >= min_chars:
            runs[run].add(ent.label_)
    return dict(runs)


def find_phi_runs(text: str, runs: Dict[WordRun, Set[str]]) -> List[Found]:
    """Where one of `runs` occurs in the text as whole words.

    text (str): the text to search.
    runs (Dict[WordRun, Set[str]]): as `phi_word_runs` gives them.
    RETURNS (List[Found]): (start, end, run) of each occurrence.
    """
    found: List[Found] = []
    if not runs:
        return found
    text_words = folded_words(text)
    runs_by_first: Dict[str, List[WordRun]] = defaultdict(list)
    for run in runs:
        runs_by_first[run[0]].append(run)
    for i, (word, start, _) in enumerate(text_words):
        for run in runs_by_first.get(word, ()):
            if i + len(run) <= len(text_words) and all(text_words[i + k][0] == run[k] for k in range(len(run))):
                found.append((start, text_words[i + len(run) - 1][2], run))
    return found


def find_own_phi(text: str, runs: Dict[WordRun, Set[str]]) -> List[Found]:
    """`find_phi_runs`, plus a string cut off by the end of the text (a prompt ending in "Nombre:
    José" of "José Luis García"): the text's last words are the first words of the string, at
    least 3 characters of them."""
    found = find_phi_runs(text, runs)
    text_words = folded_words(text)
    for run in runs:
        for k in range(min(len(run) - 1, len(text_words)), 0, -1):
            tail = text_words[len(text_words) - k:]
            if tuple(word for word, _, _ in tail) == run[:k] and tail[-1][2] - tail[0][1] >= 3:
                found.append((tail[0][1], tail[-1][2], run))
                break
    return found


def first_words(text: str, n_words: int = 3) -> str:
    """The text up to the end of its n-th whitespace-separated word (original spacing kept): how
    generate cuts a raw prompt, and the opening of a sample this check reads.

    text (str): a note.
    n_words (int): how many whitespace-separated words.
    RETURNS (str): the opening, "" for a blank text.
    """
    pieces = list(re.finditer(r"\S+", text))[:n_words]
    return text[pieces[0].start(): pieces[-1].end()] if pieces else ""


def doc_id(doc: Doc, i: int) -> str:
    """A dev document's id as generate names its prompt (the position when it has none)."""
    return str(doc.user_data.get("id", i))


def prompt_phi(records: Iterable[dict], dev_docs: Sequence[Doc], prompt_words: int = 3,
               min_chars: int = 1) -> Dict:
    """How many prompts, and samples' openings, hold a PHI string of their own dev note.

    A record's dev note is the one whose id is its `prompt_id`; its opening is as many
    whitespace-separated words of its text as its prompt has (`prompt_words` when it has none): a sample starts with
    its prompt, so this also catches a prompt field that was changed afterwards. A string
    cut off by the end of the prompt counts too (`find_own_phi`).

    records (Iterable[dict]): the samples (text, prompt_id, prompt).
    dev_docs (Sequence[Doc]): the dev split the prompts were cut from.
    prompt_words (int): opening whitespace-separated words checked in a sample without a prompt field.
    min_chars (int): as `phi_word_runs`.
    RETURNS (Dict): the counts, per label of the strings found; never the strings.
    """
    own = {doc_id(doc, i): phi_word_runs(doc, min_chars) for i, doc in enumerate(dev_docs)}
    prompts: Dict[str, str] = {}
    samples = openings_with = no_prompt_id = unknown = 0
    for record in records:
        prompt_id = record.get("prompt_id")
        if prompt_id is None:
            no_prompt_id += 1
            continue
        if str(prompt_id) not in own:
            unknown += 1
            continue
        prompt_id, prompt = str(prompt_id), record.get("prompt")
        if isinstance(prompt, str):
            prompts.setdefault(prompt_id, prompt)
        n_words = len(prompt.split()) if isinstance(prompt, str) and prompt.split() else prompt_words
        samples += 1
        openings_with += bool(find_own_phi(first_words(record["text"], n_words), own[prompt_id]))
    per_label: Counter = Counter()
    with_phi = 0
    for prompt_id, prompt in prompts.items():
        found = find_own_phi(prompt, own[prompt_id])
        with_phi += bool(found)
        per_label.update({label for _, _, run in found for label in own[prompt_id][run]})
    return {"prompts": len(prompts), "prompts_with_own_phi": with_phi, "per_label": dict(per_label.most_common()),
            "samples": samples, "sample_openings_with_own_phi": openings_with,
            "samples_without_prompt_id": no_prompt_id, "samples_with_unknown_prompt_id": unknown,
            "dev_documents": len(own), "min_chars": min_chars, "matched": "whole words, case and accents ignored"}


def check_prompts(synth_jsonl: Path, dev_path: Path, prompt_words: int = 3) -> Dict:
    """Only the prompt check of a produced run (`prompt_phi` against the dev DocBin).

    synth_jsonl (Path): the samples (JSONL).
    dev_path (Path): the gold dev DocBin the prompts were taken from.
    prompt_words (int): opening whitespace-separated words checked in a sample without a prompt field.
    RETURNS (Dict): the file names and `prompt_phi`'s counts.
    """
    records = (record for _, _, record in read_jsonl(synth_jsonl))
    return {"synthetic": str(synth_jsonl), "dev": str(dev_path),
            **prompt_phi(records, read_gold(dev_path, "dev"), prompt_words)}
