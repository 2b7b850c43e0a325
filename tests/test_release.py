"""The release gate: the bundle of a run is built only when its privacy figures pass (or forced, and
then the datasheet says so); nothing real goes in."""
import srsly
import pytest
import spacy
from spacy.tokens import DocBin

import clinical_deid.tokenizer  # noqa: F401  (registers the clinical tokenizer)
from deid_synthesis.release import ReleaseInputs, ReleaseRefused, build_release, sha256

TOKENIZER = {"nlp": {"tokenizer": {"@tokenizers": "deid.clinical_tokenizer.v1"}}}
THRESHOLDS = {"max_mia_auc": 0.6, "max_linkage": 0, "max_verbatim": 0, "max_ngram_recall": 0.5}
GOLD = [("Paciente Rosa Beltrán Ferrer, NHC 7984385, vive en Madrid.",
         [("NOMBRE_SUJETO_ASISTENCIA", "Rosa Beltrán Ferrer"), ("ID_SUJETO_ASISTENCIA", "7984385"),
          ("TERRITORIO", "Madrid")]),
        ("Varón de Madrid visto el 03/04/2019.", [("TERRITORIO", "Madrid"), ("FECHAS", "03/04/2019")])]


def docbin(nlp, rows, path, user_data=None):
    out = DocBin(store_user_data=True)
    for k, (text, ents) in enumerate(rows):
        doc = nlp.make_doc(text)
        doc.ents = [doc.char_span(text.index(s), text.index(s) + len(s), label=label) for label, s in ents]
        doc.user_data.update(user_data(k) if user_data else {})
        out.add(doc)
    out.to_disk(path)


def make_run(tmp_path, synthetic_text):
    nlp = spacy.blank("es", config=TOKENIZER)
    docbin(nlp, GOLD, tmp_path / "train.spacy")
    docbin(nlp, GOLD[1:], tmp_path / "dev.spacy")
    corpus = tmp_path / "synthetic-r-pseudo"
    corpus.mkdir()
    chunk = (synthetic_text, [("NOMBRE_SUJETO_ASISTENCIA", "Lucía Prats")] if "Lucía Prats" in synthetic_text else [])
    meta = lambda k: {"id": "S0001-real-dev-id#0", "source_id": "S0001-real-dev-id", "chunk": 0,  # noqa: E731
                      "provenance": {"prompt": "Paciente Rosa Beltrán"}}
    docbin(nlp, [chunk], corpus / "train.spacy", meta)
    docbin(nlp, [], corpus / "dev.spacy")
    srsly.write_json(corpus / "annotate.json", {"chunks": 1, "words": 6, "entities": 1,
                                                "pseudonymized": {"replaced": 1, "key": "given"}})
    srsly.write_jsonl(tmp_path / "samples.jsonl", [{"id": "S0001-real-dev-id", "text": synthetic_text,
                                                    "prompt": "Paciente Rosa Beltrán", "prompt_id": "S0001-real-dev-id"}])
    srsly.write_json(tmp_path / "membership.json", {"auc": 0.51, "tpr_at_low_fpr": 0.0, "low_fpr": 0.01})
    return ReleaseInputs(corpus, tmp_path / "samples.jsonl", [tmp_path / "train.spacy", tmp_path / "dev.spacy"],
                         membership=tmp_path / "membership.json")


def test_a_run_that_passes_is_released_with_nothing_real(tmp_path):
    inputs = make_run(tmp_path, "Lucía Prats vive en Madrid desde hace años.")
    sheet = build_release(inputs, tmp_path / "bundle", THRESHOLDS, licences={"real corpus": "CC BY 4.0"})
    assert [row["passed"] for row in sheet["checks"]] == [True] * 4 and not sheet["forced"]
    bundle = tmp_path / "bundle"
    names = sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file())
    assert names == ["SHA256SUMS", "corpus/dev.spacy", "corpus/notes.jsonl", "corpus/train.spacy", "datasheet.json",
                     "datasheet.md"]
    sums = dict(line.split("  ")[::-1] for line in (bundle / "SHA256SUMS").read_text().splitlines())
    assert sums == {name: sha256(bundle / name) for name in names if name != "SHA256SUMS"}
    assert list(srsly.read_jsonl(bundle / "corpus" / "notes.jsonl")) == [
        {"id": "synthetic-00001", "text": "Lucía Prats vive en Madrid desde hace años."}]
    nlp = spacy.blank("es")
    (doc,) = DocBin().from_disk(bundle / "corpus" / "train.spacy").get_docs(nlp.vocab)
    assert [(e.text, e.label_) for e in doc.ents] == [("Lucía Prats", "NOMBRE_SUJETO_ASISTENCIA")]
    assert doc.user_data == {"id": "synthetic-00001#0", "source_id": "synthetic-00001", "chunk": 0}
    everything = b"".join(p.read_bytes() for p in bundle.rglob("*") if p.is_file())
    for real in (b"S0001-real-dev-id", "Beltrán".encode(), b"7984385", b'"prompt"', b"provenance"):
        assert real not in everything
    assert "CC BY 4.0" in (bundle / "datasheet.md").read_text()


def test_the_gate_refuses_a_leaking_run_unless_forced(tmp_path):
    inputs = make_run(tmp_path, "Rosa Beltrán Ferrer, NHC 7984385, ingresa.")
    with pytest.raises(ReleaseRefused, match=r"linkage: 1 > 0; verbatim: 2 > 0") as refused:
        build_release(inputs, tmp_path / "bundle", THRESHOLDS)
    assert "Beltrán" not in str(refused.value) and not (tmp_path / "bundle").exists()
    sheet = build_release(inputs, tmp_path / "bundle", THRESHOLDS, force=True)
    assert sheet["forced"] and sheet["failed_checks"] == ["linkage", "verbatim"]
    assert (tmp_path / "bundle" / "datasheet.md").read_text().splitlines()[2].startswith(
        "**FORCED RELEASE: failed checks: linkage, verbatim.**")
    # An adapter never attacked fails its check: not measured is not passed.
    inputs.membership = None
    with pytest.raises(ReleaseRefused, match="^membership: not measured; linkage"):
        build_release(inputs, tmp_path / "other", THRESHOLDS)
