"""The privacy report of a synthetic run: every figure against every real split it touched.

The figures at the top level (`ngram`, `phi`, `real_documents`, ...) are those against the
training side (the adaptation notes); with the dev split (the prompts' split), `splits` holds
`train`, `dev` and `union` (train + dev), the filter runs against both, and `prompt_phi`
counts the prompts holding PHI of their own dev note. In `dev` and `union`, a string is
identifying when annotated in at most `max_gold_docs` documents of train + dev together.
The sizes named "words" (`real_words`, `synthetic_words`, a split's `words`) are the project's
`count_words` on the clinical tokenizer's tokens of each text, real and synthetic alike
(`generation.word_count`); the n-grams are over their own unit (`\\w+` runs, see `privacy.ngrams`).
"""
from pathlib import Path
from typing import Dict, Optional, Sequence

from spacy.tokens import Doc

from clinical_deid.io import read_jsonl
from deid_synthesis.privacy.filtering import filter_synthetic
from deid_synthesis.privacy.linkage import record_linkage
from deid_synthesis.generation.word_count import word_counter
from deid_synthesis.privacy.ngrams import ngram_recall
from deid_synthesis.privacy.phi import PhiIndex, phi_reproduction
from deid_synthesis.privacy.prompts import prompt_phi
from deid_synthesis.privacy.sources import adaptation_docs, read_gold


def text_words(texts: Sequence[str]) -> int:
    """The words (`count_words`) of the texts. The privacy step is not told the notes' language;
    the counts are the same in every language (see `word_counter`), so "xx" counts them."""
    words_of = word_counter("xx")
    return sum(words_of(text) for text in texts)


def split_figures(real_docs: Sequence[Doc], synth_texts: Sequence[str], n: int, index: PhiIndex,
                  show_strings: bool = False) -> Dict:
    """N-gram recall and verbatim PHI reproduction of the synthetic text against one real split.

    real_docs (Sequence[Doc]): the split's gold documents.
    synth_texts (Sequence[str]): the synthetic notes.
    n (int): words per n-gram.
    index (PhiIndex): the split's PHI strings.
    show_strings (bool): add the reproduced strings (private!).
    RETURNS (Dict): documents, words (`count_words`), ngram, phi.
    """
    real_texts = [doc.text for doc in real_docs]
    return {"documents": len(real_texts), "words": text_words(real_texts),
            "ngram": ngram_recall(real_texts, synth_texts, n),
            "phi": phi_reproduction(real_docs, synth_texts, show_strings=show_strings, index=index)}


def privacy_report(synth_jsonl: Path, gold_path: Path, n: int = 5, filter_output: Optional[Path] = None,
                   max_shared_ngram: int = 20, drop_phi: bool = True, min_chars: int = 3,
                   max_gold_docs: Optional[int] = 1, ignore_case: bool = False,
                   labels: Optional[Sequence[str]] = None, show_strings: bool = False,
                   adapter_manifest: Optional[Path] = None, dev_path: Optional[Path] = None,
                   prompt_words: int = 3) -> Dict:
    """All the figures; the filter only counts unless `filter_output` is given.

    synth_jsonl (Path): the synthetic notes (JSONL).
    gold_path (Path): the gold training DocBin.
    n (int): words per n-gram of the recall (the paper: 5).
    filter_output (Optional[Path]): write the notes that pass the filter here.
    max_shared_ngram, drop_phi: as `filter_synthetic`.
    min_chars, max_gold_docs, ignore_case, labels: as `PhiIndex`.
    show_strings (bool): add the reproduced strings (private!).
    adapter_manifest (Optional[Path]): measure the training side against the part of the gold
        file the generator was adapted on (the paper's "adaptation corpus"); None: all of it.
    dev_path (Optional[Path]): the prompts' split: adds `splits`, the filter against both
        splits, and `prompt_phi`.
    prompt_words (int): opening whitespace-separated words checked in a sample without a prompt field.
    RETURNS (Dict): the report (counts; strings only with `show_strings`).
    """
    all_docs = gold_docs = read_gold(gold_path)
    adaptation = None
    if adapter_manifest is not None:
        gold_docs, adaptation = adaptation_docs(all_docs, adapter_manifest)
    records = [record for _, _, record in read_jsonl(synth_jsonl)]
    synth_texts = [record["text"] for record in records]
    index = PhiIndex(gold_docs, min_chars, max_gold_docs, ignore_case, labels, frequency_docs=all_docs)
    train = split_figures(gold_docs, synth_texts, n, index, show_strings)
    report = {
        "synthetic": str(synth_jsonl), "gold": str(gold_path), "dev": str(dev_path) if dev_path else None,
        "adaptation": adaptation,
        "real_documents": train["documents"], "real_words": train["words"],
        "synthetic_documents": len(synth_texts), "synthetic_words": text_words(synth_texts),
        "ngram": train["ngram"], "phi": train["phi"],
    }
    if dev_path is None:
        report["filter"] = filter_synthetic(synth_jsonl, gold_docs, [doc.text for doc in gold_docs], filter_output,
                                            max_shared_ngram, drop_phi, index=index)
        report["linkage"] = {**record_linkage(index, synth_texts), "against": ["train"]}
        return report
    dev_docs = read_gold(dev_path, "dev")
    every_doc, union_docs = all_docs + dev_docs, list(gold_docs) + dev_docs
    settings = (min_chars, max_gold_docs, ignore_case, labels)
    union_index = PhiIndex(union_docs, *settings, frequency_docs=every_doc)
    report["splits"] = {
        "train": train,
        "dev": split_figures(dev_docs, synth_texts, n, PhiIndex(dev_docs, *settings, frequency_docs=every_doc),
                             show_strings),
        "union": split_figures(union_docs, synth_texts, n, union_index, show_strings),
    }
    report["filter"] = {**filter_synthetic(synth_jsonl, union_docs, [doc.text for doc in union_docs], filter_output,
                                           max_shared_ngram, drop_phi, index=union_index),
                        "against": ["train", "dev"]}
    report["prompt_phi"] = prompt_phi(records, dev_docs, prompt_words)
    report["linkage"] = {**record_linkage(union_index, synth_texts), "against": ["train", "dev"]}
    return report
