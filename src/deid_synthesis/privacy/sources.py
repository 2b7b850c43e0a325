"""The real side of the privacy figures: the gold splits a run touched, and the adaptation notes.

Each gold document is tagged with its split, so that strings counted over several splits never
merge two files' positional ids ("0", "1") into one document.
"""
from pathlib import Path
from typing import Dict, List, Tuple

import srsly
from spacy.tokens import Doc

from clinical_deid.io import read_docbin
from deid_synthesis.corpus.records import CorpusError
from deid_synthesis.generation.adapt import documents_hash, select_documents


def read_gold(path: Path, split: str = "train") -> List[Doc]:
    """The gold Docs of one real split, each tagged with its split (see `tag_sources`).

    path (Path): the split's DocBin.
    split (str): its name ("train", "dev").
    RETURNS (List[Doc]): the documents. Raises clinical_deid.io.DataError naming the file when
        it is missing or unreadable.
    """
    return tag_sources(read_docbin(path), split)


def tag_sources(docs: List[Doc], split: str) -> List[Doc]:
    """Prefix each document's source id with its split (in place); returns the documents."""
    for i, doc in enumerate(docs):
        source = doc.user_data.get("source_id") or doc.user_data.get("id") or i
        doc.user_data["source_id"] = f"{split}/{source}"
    return docs


def adaptation_docs(gold_docs: List[Doc], manifest_path: Path) -> Tuple[List[Doc], Dict]:
    """The gold documents an adapter was trained on, chosen as `generation.adapt` chose them.

    Reads the fraction and seed from the adapter's manifest.json and checks the documents'
    hash against it. A fraction of 0 (no adaptation) gives all the gold documents: the
    figures are then the chance overlap of the base model with the real text.

    gold_docs (List[Doc]): the whole gold training split.
    manifest_path (Path): the adapter's manifest.json, or its folder.
    RETURNS (Tuple[List[Doc], Dict]): the documents, and what they are (manifest, fraction,
        seed, documents, measured_against).
    """
    manifest_path = Path(manifest_path)
    if manifest_path.is_dir():
        manifest_path = manifest_path / "manifest.json"
    if not manifest_path.is_file():
        raise CorpusError(f"{manifest_path}: no such file (expected the adapter's manifest.json)")
    manifest = srsly.read_json(manifest_path)
    fraction, seed = manifest["fraction"], manifest["hyperparameters"]["seed"]
    info = {"manifest": str(manifest_path), "fraction": fraction, "seed": seed}
    if fraction == 0:
        return gold_docs, {**info, "documents": 0, "measured_against": "all gold documents (no adaptation)"}
    indices = select_documents(len(gold_docs), fraction, seed)
    chosen = [gold_docs[i] for i in indices]
    ids = [str(gold_docs[i].user_data.get("id", i)) for i in indices]
    if documents_hash(ids) != manifest["documents_hash"]:
        raise CorpusError(f"{manifest_path}: the adapter was trained on other documents than this gold file's "
                          f"{fraction:.0%} (documents_hash differs): pass the training DocBin it was adapted on")
    return chosen, {**info, "documents": len(chosen), "measured_against": "adaptation documents"}
