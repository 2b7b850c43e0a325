"""Privacy figures against hand-worked examples, the hashed n-grams against plain sets, and
the filter against planted leaks."""
import json
import random

import numpy as np
import pytest
import srsly
from typer.testing import CliRunner

from clinical_deid.io import DataError
from clinical_deid.tokenizer import count_words
from deid_synthesis.corpus.records import CorpusError
from deid_synthesis.privacy import (PhiIndex, filter_synthetic, ngram_hashes, ngram_recall, phi_reproduction,
                                    privacy_report, word_runs)
from deid_synthesis.privacy.report import text_words
from tests.privacy_data import files, gold, nlp, SYNTH, cli, gold_doc, gold_docs, synth_rows, write_files  # noqa: F401  (fixtures)


# --- n-gram recall ----------------------------------------------------------------------


def test_word_runs_are_lowercased():
    assert word_runs("Dr. PÉREZ, NHC:12-34 c/Mayor_5") == ["dr", "pérez", "nhc", "12", "34", "c", "mayor_5"]


def test_sizes_are_count_words_and_ngrams_word_runs():
    # Sizes: count_words on the clinical tokenizer (Dr PÉREZ 3 € x DR Alberto); n-grams: \w+ runs.
    text = "Dr. PÉREZ, 3 € x DRAlberto"
    assert text_words([text]) == 7 and len(word_runs(text)) == 5


def test_ngram_recall_by_hand():
    real = ["The cat sat on the mat."]
    # real trigrams: (the cat sat) (cat sat on) (sat on the) (on the mat)                       -> 4
    # synthetic: "a cat sat on the sofa": (a cat sat) (cat sat on) (sat on the) (on the sofa)
    #            "the MAT, the cat sat!": (the mat the) (mat the cat) (the cat sat)             -> 7
    #            (none across the two texts: no (the sofa the), (sofa the mat))
    # shared: (cat sat on) (sat on the) (the cat sat)                                           -> 3
    synth = ["A cat sat on the sofa", "the MAT, the cat sat!"]
    result = ngram_recall(real, synth, n=3)
    assert result["real_ngrams"] == 4 and result["synthetic_ngrams"] == 7 and result["shared_ngrams"] == 3
    assert result["recall"] == pytest.approx(3 / 4) and result["copy_rate"] == pytest.approx(3 / 7)
    # Distinct n-grams: the same text twice counts once.
    assert ngram_recall(real, synth * 2, n=3) == result
    # The real (on the mat) spans two synthetic texts only if they were joined: not counted.
    assert ngram_recall(["on the mat"], ["sat on", "the mat"], n=3)["shared_ngrams"] == 0


def test_ngram_recall_edge_cases():
    empty = ngram_recall([], ["a b c d e"], n=5)
    assert empty["real_ngrams"] == 0 and empty["recall"] == 0.0 and empty["synthetic_ngrams"] == 1
    assert ngram_recall(["a b"], ["a b"], n=3)["real_ngrams"] == 0  # shorter than n
    assert ngram_recall(["a b c"], ["c b a"], n=1)["recall"] == 1.0  # unigrams: the vocabulary
    with pytest.raises(ValueError):
        ngram_recall(["a"], ["a"], n=0)


def plain_ngrams(texts, n):
    return {tuple(ws[i:i + n]) for ws in map(word_runs, texts) for i in range(len(ws) - n + 1)}


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8])
def test_hashing_matches_plain_sets_on_random_text(n):
    rng = random.Random(n)
    vocab = [f"w{i}" for i in range(12)] + ["Ñandú", "años", "x_y"]  # few words: many repeated n-grams

    def text():
        return " ".join(rng.choice(vocab) for _ in range(rng.randint(0, 60)))

    real, synth = [text() for _ in range(40)], [text() for _ in range(50)]
    result = ngram_recall(real, synth, n)
    plain_real, plain_synth = plain_ngrams(real, n), plain_ngrams(synth, n)
    assert result["real_ngrams"] == len(plain_real)
    assert result["synthetic_ngrams"] == len(plain_synth)
    assert result["shared_ngrams"] == len(plain_real & plain_synth)
    # Per text: which synthetic texts share an n-gram with the real ones (the filter's test).
    hashes, doc_of = ngram_hashes(synth, n)
    real_hashes = np.unique(ngram_hashes(real, n)[0])
    hashed = set(np.unique(doc_of[np.isin(hashes, real_hashes)]).tolist())
    assert hashed == {i for i, t in enumerate(synth) if plain_ngrams([t], n) & plain_real}


# --- verbatim PHI -----------------------------------------------------------------------


def test_phi_reproduction_by_hand(gold):
    result = phi_reproduction(gold, SYNTH)
    # Distinct strings (>= 3 characters): NOMBRE {Ana García López}, ID {1234567},
    # TERRITORIO {Madrid: in 3 gold docs, not identifying}, SEXO {Mujer: 2 docs, not identifying},
    # EDAD {45 años}, NOMBRE_PS {Pérez}; "M" (3 times) is too short.
    assert result["skipped_short"] == 2
    per = result["per_label"]
    assert per["NOMBRE"] == {"strings": 1, "reproduced": 1, "synthetic_docs": 1, "identifying_strings": 1,
                             "identifying_reproduced": 1, "identifying_synthetic_docs": 1}      # s0
    assert per["TERRITORIO"] == {"strings": 1, "reproduced": 1, "synthetic_docs": 1, "identifying_strings": 0,
                                 "identifying_reproduced": 0, "identifying_synthetic_docs": 0}  # s0; s3 is lower case
    assert per["ID"]["strings"] == 1 and per["ID"]["reproduced"] == 0                      # s2: 12345678 is longer
    assert per["EDAD"]["synthetic_docs"] == 1 and per["NOMBRE_PS"]["synthetic_docs"] == 1  # s1; s2's Pérezgil is not Pérez
    assert per["SEXO"]["strings"] == 1 and per["SEXO"]["reproduced"] == 0
    # 6 strings; 4 found (name, Madrid, 45 años, Pérez) in 2 notes (s0, s1);
    # identifying: all but Madrid and Mujer -> 4, of which 3 found, in s0 and s1.
    assert result["total"] == {"strings": 6, "reproduced": 4, "synthetic_docs": 2, "identifying_strings": 4,
                               "identifying_reproduced": 3, "identifying_synthetic_docs": 2}
    assert result["synthetic_documents"] == 4
    assert "Ana" not in json.dumps(result) and "Madrid" not in json.dumps(result)


def test_phi_options(gold):
    assert phi_reproduction(gold, SYNTH, ignore_case=True)["per_label"]["TERRITORIO"]["synthetic_docs"] == 2
    every = phi_reproduction(gold, SYNTH, max_gold_docs=None)["total"]
    assert every["identifying_strings"] == every["strings"] == 6
    short = phi_reproduction(gold, SYNTH, min_chars=1)
    assert short["skipped_short"] == 0 and short["per_label"]["SEXO"]["strings"] == 2  # M, Mujer
    only = phi_reproduction(gold, SYNTH, labels=["NOMBRE"])
    assert list(only["per_label"]) == ["NOMBRE"] and only["total"]["strings"] == 1
    shown = phi_reproduction(gold, SYNTH, show_strings=True)
    assert shown["per_label"]["NOMBRE"]["reproduced_strings"] == ["Ana García López"]
    assert shown["per_label"]["ID"]["reproduced_strings"] == []


def test_phi_word_boundaries_and_whitespace(nlp):
    doc = gold_doc(nlp, "Calle\nMayor 5-7, 28001.", [("Calle\nMayor 5-7", "CALLE", 0), ("28001", "CP", 0)], "g")
    index = PhiIndex([doc])
    found = lambda text: {index.strings[i] for i in index.find(text)}  # noqa: E731
    assert found("vive en Calle   Mayor 5-7.") == {"Calle Mayor 5-7"}  # whitespace runs are one space
    assert found("vive en Calle Mayor 5-78") == set()
    assert found("xCalle Mayor 5-7") == set()
    assert found("CP:28001") == {"28001"} and found("128001") == set() and found("28001_") == set()


def test_doc_frequency_counts_chunks_of_a_document_once(nlp):
    chunks = [gold_doc(nlp, "Dr. Pérez.", [("Pérez", "N", 0)], f"d#{i}") for i in range(3)]
    for chunk in chunks:
        chunk.user_data["source_id"] = "d"
    assert PhiIndex(chunks).identifying == {0}
    assert PhiIndex(chunks[:1], frequency_docs=[*chunks, gold_doc(nlp, "Pérez", [("Pérez", "N", 0)], "e")]).identifying == set()


# --- filter -----------------------------------------------------------------------------


def test_filter_removes_planted_leaks(gold, tmp_path):
    path, out = tmp_path / "synthetic.jsonl", tmp_path / "kept.jsonl"
    srsly.write_jsonl(path, synth_rows())
    real = [doc.text for doc in gold]
    counts = filter_synthetic(path, gold, real, out, max_shared_ngram=20)
    # "name" reproduces an identifying name; "run25" copies 25 words in a row (six 20-grams);
    # "run19" copies 19 (no 20-gram); "madrid" names a common place.
    assert counts == {"documents": 5, "kept": 3, "dropped": 2, "dropped_phi": 1, "dropped_shared_run": 1,
                      "drop_phi": True, "max_shared_ngram": 20, "output": str(out)}
    lines = path.read_text(encoding="utf8").splitlines(keepends=True)
    assert out.read_text(encoding="utf8") == lines[0] + lines[3] + lines[4]  # kept lines copied unchanged
    assert json.loads(lines[4]) == synth_rows()[4]
    assert not (tmp_path / "kept.jsonl.tmp").exists()
    # Each check can be switched off; without an output path it only counts.
    no_phi = filter_synthetic(path, gold, real, None, max_shared_ngram=20, drop_phi=False)
    assert no_phi["kept"] == 4 and no_phi["dropped_phi"] == 0 and no_phi["output"] is None
    assert filter_synthetic(path, gold, real, None, max_shared_ngram=None)["dropped"] == 1
    assert filter_synthetic(path, gold, real, None, max_shared_ngram=19)["dropped_shared_run"] == 2
    # A name that occurs in 2 gold notes is identifying once the bar is 2.
    assert filter_synthetic(path, gold, real, None, max_shared_ngram=None, max_gold_docs=3)["dropped_phi"] == 2


def test_bad_synthetic_jsonl_names_file_and_line(gold, tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text('{"id": "a", "text": "bien"}\n{"id": "b"}\n', encoding="utf8")
    with pytest.raises(DataError, match="broken.jsonl:2: no string field 'text'"):
        filter_synthetic(path, gold, [], tmp_path / "kept.jsonl")
    assert not (tmp_path / "kept.jsonl").exists()


# --- CLI --------------------------------------------------------------------------------


def test_cli_writes_figures_without_strings(files, gold, tmp_path):
    synth, gold_path = files
    out, kept = tmp_path / "privacy.json", tmp_path / "kept.jsonl"
    result = CliRunner().invoke(cli(), [str(synth), str(gold_path), "--output", str(out), "--filter-output", str(kept)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["ngram"]["n"] == 5 and report["real_documents"] == 4 and report["synthetic_documents"] == 5
    # Words are count_words (the gold docs hold the clinical tokenizer's tokens): 7 + 7 + 27 + 21 + 6 synthetic.
    assert report["real_words"] == sum(count_words(doc) for doc in gold) and report["synthetic_words"] == 68
    assert report["filter"]["kept"] == 3 and len(list(srsly.read_jsonl(kept))) == 3
    assert report["phi"]["total"]["identifying_reproduced"] == 1  # the name in "name"
    for text in (result.output, out.read_text()):
        assert "Ana" not in text and "Madrid" not in text and "Garc" not in text
    shown = CliRunner().invoke(cli(), [str(synth), str(gold_path), "--output", str(out), "--show-strings"])
    assert shown.exit_code == 0 and "Ana García López" in shown.output
    assert json.loads(out.read_text())["phi"]["per_label"]["NOMBRE"]["reproduced_strings"] == ["Ana García López"]


def test_cli_fails_clearly(files, tmp_path):
    synth, gold_path = files
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"id": "a", "text": "x"}\n{"id": \n', encoding="utf8")
    result = CliRunner().invoke(cli(), [str(broken), str(gold_path)])
    assert result.exit_code == 1 and "broken.jsonl:2" in result.output
    result = CliRunner().invoke(cli(), [str(synth), str(tmp_path / "nope.spacy")])
    assert result.exit_code == 1 and "nope.spacy" in result.output


def test_adaptation_subset_from_the_manifest(files, tmp_path):
    pytest.importorskip("torch")
    from deid_synthesis.generation.adapt import documents_hash, select_documents

    synth, gold_path = files
    ids = ["g0", "g1", "g2", "g3"]
    chosen = [ids[i] for i in select_documents(4, 0.5, 3)]
    manifest = tmp_path / "adapter" / "manifest.json"
    manifest.parent.mkdir()
    srsly.write_json(manifest, {"fraction": 0.5, "hyperparameters": {"seed": 3}, "documents_hash": documents_hash(chosen)})
    report = privacy_report(synth, gold_path, adapter_manifest=manifest.parent)
    assert report["real_documents"] == 2 and report["adaptation"]["documents"] == 2
    srsly.write_json(manifest, {"fraction": 0.5, "hyperparameters": {"seed": 3}, "documents_hash": "0" * 16})
    with pytest.raises(CorpusError, match="documents_hash"):
        privacy_report(synth, gold_path, adapter_manifest=manifest)
    srsly.write_json(manifest, {"fraction": 0, "hyperparameters": {"seed": 3}, "documents_hash": documents_hash([])})
    assert privacy_report(synth, gold_path, adapter_manifest=manifest)["real_documents"] == 4


def test_record_linkage_by_hand(gold):
    """A synthetic note is linked when it holds two identifying strings of one real note: the
    name and the record number of g0 together; the name alone, or strings of two notes, are not."""
    from deid_synthesis.privacy.linkage import record_linkage
    from deid_synthesis.privacy.phi import PhiIndex

    index = PhiIndex(gold)
    synth = ["Ana García López, NHC 1234567.",             # both of g0: linked
             "Ana García López vive en Madrid.",           # the name; Madrid is common: not linked
             "Ana García López y el Dr. Pérez.",           # g0's name and g1's doctor: two notes, not linked
             "nada"]
    linkage = record_linkage(index, synth)
    assert linkage == {"notes": 4, "linked_notes": 1, "share": 0.25, "max_strings_of_one_real_note": 2,
                       "label_pairs": {"ID + NOMBRE": 1}}
    assert record_linkage(index, []) ["share"] == 0.0
