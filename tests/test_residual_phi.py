"""The production check of residual PHI: found strings gone, missed ones counted, violations caught."""
import json

import spacy
from spacy.tokens import DocBin
from typer.testing import CliRunner

import clinical_deid.tokenizer  # noqa: F401  (registers the clinical tokenizer)
from clinical_deid.deidentify import deidentify_main
from deid_synthesis.residual_phi import (
    GoldDoc, check_document, occurrences, read_gold, read_outputs, read_spans, residual_check,
)
from scripts.residual_phi import main

TEXT = "Paciente Ana García, 45 años. Sexo: H. HTA. La Sra. García vive en Madrid."


def gold(text=TEXT, *phrases, doc_id="d1"):
    """A GoldDoc whose entities are (label, string, nth occurrence) of `phrases`."""
    ents = []
    for label, string, nth in phrases:
        start = -1
        for _ in range(nth + 1):
            start = text.index(string, start + 1)
        ents.append((start, start + len(string), label))
    return GoldDoc(doc_id, text, sorted(ents))


def apply(text, replacements):
    """Output text and spans (as deidentify's --spans-output) of (start, end, new, label, kind)."""
    out, spans, pos = [], [], 0
    for start, end, new, label, kind in sorted(replacements):
        out.append(text[pos:start])
        out_start = sum(map(len, out))
        out.append(new)
        spans.append({"start": start, "end": end, "label": label, "kind": kind, "source": "ner",
                      "out_start": out_start, "out_end": out_start + len(new), "replacement": new})
        pos = end
    out.append(text[pos:])
    return "".join(out), spans


def span_of(doc, string, nth=0):
    start = -1
    for _ in range(nth + 1):
        start = doc.text.index(string, start + 1)
    return start, start + len(string)


def test_found_phi_replaced_is_no_violation():
    doc = gold(TEXT, ("NOMBRE_SUJETO_ASISTENCIA", "Ana García", 0), ("TERRITORIO", "Madrid", 0))
    output, spans = apply(TEXT, [(*span_of(doc, "Ana García"), "Rosa Pinto", "NOMBRE_SUJETO_ASISTENCIA", "name"),
                                 (*span_of(doc, "Madrid"), "Lugo", "TERRITORIO", "territory")])
    rows = check_document(doc, output, spans)
    assert [(r["found"], r["leaked"], r["violation"]) for r in rows] == [(True, False, False)] * 2


def test_missed_phi_counts_as_residual():
    doc = gold(TEXT, ("NOMBRE_SUJETO_ASISTENCIA", "Ana García", 0), ("TERRITORIO", "Madrid", 0))
    output, spans = apply(TEXT, [(*span_of(doc, "Ana García"), "Rosa Pinto", "NOMBRE_SUJETO_ASISTENCIA", "name")])
    result, rows = residual_check([doc], {"d1": output}, {"d1": spans})
    madrid = next(r for r in rows if r["label"] == "TERRITORIO")
    assert madrid["found"] is False and madrid["leaked"] and not madrid["violation"]
    overall = result["overall"]
    assert (overall["gold_entities"], overall["not_found"], overall["leaked"], overall["violations"]) == (2, 1, 1, 0)
    assert overall["residual_share"] == 0.5 and overall["not_found_share"] == 0.5
    assert result["per_label"]["TERRITORIO"]["residual_share"] == 1.0
    assert result["per_label"]["NOMBRE_SUJETO_ASISTENCIA"]["residual_share"] == 0.0


def test_found_string_left_in_the_output_is_a_violation_with_its_cause():
    # "García" found in "Ana García" (replaced) but its second mention was missed.
    doc = gold(TEXT, ("NOMBRE_SUJETO_ASISTENCIA", "García", 0), ("NOMBRE_SUJETO_ASISTENCIA", "García", 1))
    output, spans = apply(TEXT, [(*span_of(doc, "García"), "Pinto", "NOMBRE_SUJETO_ASISTENCIA", "name")])
    result, rows = residual_check([doc], {"d1": output}, {"d1": spans})
    assert [(r["found"], r["violation"]) for r in rows] == [(True, True), (False, False)]
    assert rows[0]["causes"] == ["missed_mention"]
    assert result["violation_ids"] == ["d1"] and result["overall"]["violations_not_kept_by_policy"] == 1
    # A surrogate that writes the original back; the same string in text no gold entity covers.
    doc = gold(TEXT, ("EDAD_SUJETO_ASISTENCIA", "45", 0))
    output, spans = apply(TEXT, [(*span_of(doc, "45"), "45", "EDAD_SUJETO_ASISTENCIA", "age")])
    assert check_document(doc, output, spans)[0]["causes"] == ["replacement"]
    text = TEXT + " Dosis 45 mg."
    doc = gold(text, ("EDAD_SUJETO_ASISTENCIA", "45", 0))
    output, spans = apply(text, [(*span_of(doc, "45"), "47", "EDAD_SUJETO_ASISTENCIA", "age")])
    assert check_document(doc, output, spans)[0]["causes"] == ["elsewhere"]


def test_a_kept_label_is_policy_but_a_kept_span_over_other_phi_is_not():
    """SEXO mapped to "keep" (label_map) stays in the text by design."""
    doc = gold(TEXT, ("SEXO_SUJETO_ASISTENCIA", "H", 0), ("NOMBRE_SUJETO_ASISTENCIA", "García", 1))
    sex = span_of(doc, "H.")[0]
    output, spans = apply(TEXT, [(sex, sex + 1, "H", "SEXO_SUJETO_ASISTENCIA", "keep")])
    rows = check_document(doc, output, spans)
    assert rows[0]["causes"] == ["kept_by_policy"] and rows[1]["found"] is False
    # A predicted sex span running over a name keeps the name: not by policy.
    start, end = sex, span_of(doc, "García", 1)[1]
    output, spans = apply(TEXT, [(start, end, TEXT[start:end], "SEXO_SUJETO_ASISTENCIA", "keep")])
    result, rows = residual_check([doc], {"d1": output}, {"d1": spans})
    # ... and "García" of "Ana García", which no gold entity covers here, is there too.
    assert rows[1]["causes"] == ["inside_kept_span", "elsewhere"]
    assert result["overall"]["violations"] == 2 and result["overall"]["violations_not_kept_by_policy"] == 1


def test_word_match_ignores_strings_glued_to_a_word():
    assert occurrences("Sexo: H. HTA. Hospital", "H") == [6]
    assert occurrences("pH 5,5; gripe A (H1N1); T2 N0 M0", "H") == []  # one character: glued to any letter or digit
    assert occurrences("T2 N0 M0", "N0") == [3] and occurrences("45 años", "4") == []
    assert occurrences("Sexo: H. HTA. Hospital", "H", "substring") == [6, 9, 14]
    assert occurrences("1945, 45 años", "45") == [6]
    assert occurrences("MartínezNºCol", "Martínez") == [0]  # camel-case glue is a boundary
    doc = gold(TEXT, ("SEXO_SUJETO_ASISTENCIA", "H", 0))
    output, spans = apply(TEXT, [(*span_of(doc, "H."), "[X].", "SEXO_SUJETO_ASISTENCIA", "redact")])
    assert not check_document(doc, output, spans)[0]["leaked"]
    assert check_document(doc, output, spans, match="substring")[0]["causes"] == ["elsewhere"]


def test_without_spans_only_the_residual_is_known():
    doc = gold(TEXT, ("TERRITORIO", "Madrid", 0))
    result, rows = residual_check([doc], {"d1": TEXT})
    assert rows[0]["found"] is None and rows[0]["leaked"] and result["overall"]["not_found"] is None
    result, _ = residual_check([doc, doc._replace(id="d2")], {"d1": TEXT})
    assert result["documents_without_output"] == 1 and result["ids_without_output"] == ["d2"]


PATTERNS = [("NOMBRE_SUJETO_ASISTENCIA", "Ana García"), ("EDAD_SUJETO_ASISTENCIA", "45 años"),
            ("TERRITORIO", "Madrid")]


def test_cli_on_the_production_command_output(tmp_path):
    """deidentify on a .txt folder, then the check from a DocBin: found PHI gone, nothing printed."""
    nlp = spacy.blank("es", config={"nlp": {"tokenizer": {"@tokenizers": "deid.clinical_tokenizer.v1"}}})
    nlp.add_pipe("entity_ruler").add_patterns([{"label": l, "pattern": p} for l, p in PATTERNS])
    notes = {"a": TEXT, "b": "Control de Luis Pérez en Madrid."}
    gold_phrases = {"a": [("NOMBRE_SUJETO_ASISTENCIA", "Ana García", 0), ("EDAD_SUJETO_ASISTENCIA", "45 años", 0),
                          ("TERRITORIO", "Madrid", 0), ("NOMBRE_SUJETO_ASISTENCIA", "García", 1)],
                    "b": [("NOMBRE_SUJETO_ASISTENCIA", "Luis Pérez", 0), ("TERRITORIO", "Madrid", 0)]}
    (tmp_path / "in").mkdir()
    docbin = DocBin(store_user_data=True)
    for doc_id, text in notes.items():
        (tmp_path / "in" / f"{doc_id}.txt").write_text(text, encoding="utf8")
        g = gold(text, *gold_phrases[doc_id], doc_id=doc_id)
        doc = nlp.make_doc(text)
        doc.ents = [doc.char_span(s, e, label=l) for s, e, l in g.ents]
        doc.user_data["id"] = doc_id
        docbin.add(doc)
    docbin.to_disk(tmp_path / "gold.spacy")
    deidentify_main(nlp, tmp_path / "in", tmp_path / "out", spans_output=tmp_path / "spans.jsonl", silent=True,
                    key=bytes(range(32)))

    gold_docs = read_gold(tmp_path / "gold.spacy")
    assert [d.id for d in gold_docs] == ["a", "b"]
    outputs = read_outputs(tmp_path / "out", ids=[d.id for d in gold_docs])
    result, rows = residual_check(gold_docs, outputs, read_spans(tmp_path / "spans.jsonl"))
    overall = result["overall"]
    # Found: Ana García, 45 años, Madrid (twice), the second García (a word of a found name,
    # propagated); missed: Luis Pérez.
    assert (overall["gold_entities"], overall["found"], overall["not_found"]) == (6, 5, 1)
    assert overall["violations"] == 0 and overall["leaked"] == 1
    assert result["per_label"]["TERRITORIO"]["leaked"] == 0

    out_json = tmp_path / "residual.json"
    res = CliRunner().invoke(_app(), [str(tmp_path / "gold.spacy"), str(tmp_path / "out"), "--spans",
                                      str(tmp_path / "spans.jsonl"), "--output", str(out_json),
                                      "--markdown", str(tmp_path / "residual.md"), "--strict"])
    assert res.exit_code == 0, res.output
    written = out_json.read_text(encoding="utf8") + (tmp_path / "residual.md").read_text(encoding="utf8")
    for phi in ("Ana", "García", "Madrid", "Luis", "Pérez", "45 años"):
        assert phi not in res.output and phi not in written
    assert json.loads(out_json.read_text())["overall"]["residual_share"] == round(1 / 6, 4)


def _app():
    import typer

    app = typer.Typer()
    app.command()(main)
    return app


def test_any_case_or_accent_form_is_a_leak():
    """Upper, lower, title case, accents dropped, ß/ss, Turkish İ, NFC/NFD: all the same string.
    Offsets are the output's own, even where folding changes the length."""
    import unicodedata

    from clinical_deid.folding import fold
    from deid_synthesis.residual_phi import occurrence_spans

    for output, needle in [("Vista por GARCÍA hoy", "García"), ("vista por garcía hoy", "García"),
                           ("Vista por García hoy", "GARCÍA"), ("Vista por GARCIA hoy", "García"),
                           ("Vista por Garcia hoy", "GARCÍA"), ("Calle STRASSE 5", "Straße"),
                           ("Calle Straße 5", "strasse"), ("Sra. İNCE hoy", "ince"), ("Sra. ince hoy", "İnce"),
                           (unicodedata.normalize("NFD", "Vista por García hoy"), "García"),
                           ("Vista por García hoy", unicodedata.normalize("NFD", "García"))]:
        spans = occurrence_spans(output, needle)
        assert len(spans) == 1, (output, needle)
        start, end = spans[0]
        assert fold(output[start:end]) == fold(needle)
        assert output[end:end + 1] in (" ", "")  # the whole word, marks included
    assert occurrence_spans("STRASSE", "Straße") == [(0, 7)] and occurrence_spans("Straße", "STRASSE") == [(0, 6)]
    assert occurrence_spans("GARCÍAS", "García") == []  # still as a word
    # One character: as written (sex "H" is not "24 h").
    assert occurrences("Sexo: H. Cada 24 h.", "H") == [6]
    # The check sees it: a found name written again in upper case is a violation.
    text = "Paciente Ana García. GARCÍA vuelve."
    doc = gold(text, ("NOMBRE_SUJETO_ASISTENCIA", "García", 0))
    output, spans = apply(text, [(*span_of(doc, "García"), "Pinto", "NOMBRE_SUJETO_ASISTENCIA", "name")])
    assert check_document(doc, output, spans)[0]["causes"] == ["elsewhere"]


def test_a_label_name_inside_its_redaction_placeholder_is_no_leak():
    """A kinship word annotated as FAMILIARES ("familiares") and redacted: the placeholder
    "[FAMILIARES_SUJETO_ASISTENCIA]" holds the label's name, not the note's text. The same
    word left elsewhere in the output is still a leak."""
    text = "Sus familiares refieren disnea."
    doc = gold(text, ("FAMILIARES_SUJETO_ASISTENCIA", "familiares", 0))
    label = "FAMILIARES_SUJETO_ASISTENCIA"
    output, spans = apply(text, [(*span_of(doc, "familiares"), f"[{label}]", label, "redact")])
    assert [(r["found"], r["leaked"]) for r in check_document(doc, output, spans)] == [(True, False)]
    twice = text + " Los familiares llaman."
    doc = gold(twice, (label, "familiares", 0))
    output, spans = apply(twice, [(*span_of(doc, "familiares"), f"[{label}]", label, "redact")])
    rows = check_document(doc, output, spans)
    assert [(r["leaked"], r["causes"]) for r in rows] == [(True, ["elsewhere"])]
