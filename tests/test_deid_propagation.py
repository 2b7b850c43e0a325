"""Other mentions of what the model found are replaced too: the same string elsewhere, in any
case or accent form, the distinctive words of found names, a bare age's unit, and a string
that a replacement would complete again."""
import pytest
import spacy
from spacy.tokens import Span

from tests.deid_pipelines import TOKENIZER, transform_doc


def test_words_of_a_found_name_are_replaced_elsewhere():
    """"Ballesteros" of a found "Ignacio Ballesteros" is replaced where the model missed it,
    with the same surname; a capitalised word the note also writes in lower case is not."""
    text = "Valorado por Ignacio Ballesteros y Paciente Ruiz. El paciente vuelve; Ballesteros lo anota."
    nlp = spacy.blank("es", config=TOKENIZER)
    nlp.add_pipe("deid_transform", config={"rules_key": "none"})
    doc = nlp.make_doc(text)
    doc.ents = [doc.char_span(13, 32, label="NOMBRE_PERSONAL_SANITARIO"),
                doc.char_span(35, 48, label="NOMBRE_SUJETO_ASISTENCIA")]
    doc = nlp.get_pipe("deid_transform")(doc)
    out, spans = doc._.deidentified, doc._.deid_spans
    assert "Ballesteros" not in out and [s["source"] for s in spans] == ["ner", "ner", "propagated"]
    assert spans[0]["replacement"].split()[-1] == spans[2]["replacement"]
    assert "El paciente vuelve" in out  # and "Paciente" was not propagated (three spans)


def test_other_mentions_of_a_found_string_are_replaced_too():
    """The model tags "Getafe" once; its other mentions go with it, with the same surrogate.
    Short strings ("45") are not propagated: they recur by chance."""
    text = "Vive en Getafe. Edad: 45. Trasladado desde Getafe; 45 pulsaciones."
    nlp = spacy.blank("es", config=TOKENIZER)
    nlp.add_pipe("deid_transform", config={"rules_key": "none"})
    doc = nlp.make_doc(text)
    doc.ents = [doc.char_span(8, 14, label="TERRITORIO"), doc.char_span(22, 24, label="EDAD_SUJETO_ASISTENCIA")]
    doc = nlp.get_pipe("deid_transform")(doc)
    out, spans = doc._.deidentified, doc._.deid_spans
    assert "Getafe" not in out and [s["source"] for s in spans] == ["ner", "ner", "propagated"]
    assert spans[0]["replacement"] == spans[2]["replacement"]
    assert out.endswith("; 45 pulsaciones.")
    nlp.get_pipe("deid_transform").propagate = False
    assert "Getafe" in nlp.get_pipe("deid_transform")(doc)._.deidentified


def test_a_bare_age_takes_its_unit_and_goes_with_it():
    """The model tags "8" of "8 días": the age is "8 días", and its other mentions go too."""
    text = "Edad: 8 días. Neonato de 8 días de edad; 8 mg de hierro."
    nlp = spacy.blank("es", config=TOKENIZER)
    nlp.add_pipe("deid_transform", config={"rules_key": "none", "seed": 3})
    doc = nlp.make_doc(text)
    doc.ents = [doc.char_span(6, 7, label="EDAD_SUJETO_ASISTENCIA")]
    doc = nlp.get_pipe("deid_transform")(doc)
    out, spans = doc._.deidentified, doc._.deid_spans
    assert [(text[s["start"]:s["end"]], s["source"]) for s in spans] == [("8 días", "ner"), ("8 días", "propagated")]
    assert "8 días" not in out and out.endswith("; 8 mg de hierro.")


@pytest.mark.parametrize("mode", ["redact", "pseudonymize"])
@pytest.mark.parametrize("found,again", [
    ("Ana García", "ANA GARCÍA"), ("Ana García", "ana garcía"), ("ANA GARCÍA", "Ana García"),
    ("Ana García", "ANA GARCIA"), ("Ana García", "ana garcia"), ("Strauß", "STRAUSS"), ("Strauss", "STRAUß"),
    ("İnce Yılmaz", "ince yılmaz"), ("Ince", "İNCE"),
    ("Ana García", "Ana Garci\u0301a"), ("Ana Garci\u0301a", "Ana García"),  # NFD and NFC
])
def test_a_found_string_is_replaced_in_any_case_or_accent_form(found, again, mode):
    text = f"Paciente: {found}, 45 años. Control: {again} acude sola."
    _, doc = transform_doc(text, [("NOMBRE_SUJETO_ASISTENCIA", found, 0)], mode=mode, seed=1)
    out, spans = doc._.deidentified, doc._.deid_spans
    assert [s["source"] for s in spans] == ["ner", "propagated"], (found, again)
    assert text[spans[1]["start"]:spans[1]["end"]] == again  # exact offsets, marks included
    assert out.endswith(" acude sola.") and found not in out and again not in out
    if mode == "pseudonymize":  # the same surrogate, in the case of the mention
        assert spans[1]["replacement"].casefold() == spans[0]["replacement"].casefold()


def test_a_name_part_in_another_case_goes_but_a_prose_word_stays():
    """"GARCÍA" and "Garcia" alone go with the found "Ana García"; "Rosa" of a found "Rosa
    Pérez" stays where the note also writes "rosa" in lower case (a word of prose)."""
    text = "Ana García y Rosa Pérez. Vuelve GARCÍA; Garcia firma. Piel rosa. Rosa llama."
    _, doc = transform_doc(text, [("NOMBRE_SUJETO_ASISTENCIA", "Ana García", 0),
                                   ("NOMBRE_PERSONAL_SANITARIO", "Rosa Pérez", 0)], seed=4)
    out, spans = doc._.deidentified, doc._.deid_spans
    assert [text[s["start"]:s["end"]] for s in spans if s["source"] == "propagated"] == ["GARCÍA", "Garcia"]
    assert "García" not in out and "GARCÍA" not in out and "Piel rosa. Rosa llama." in out
    surname = spans[0]["replacement"].split()[-1]
    assert spans[2]["replacement"] == surname.upper() and spans[3]["replacement"] == surname


def test_a_string_that_a_replacement_completes_again_goes_too():
    """A mention glued to a replaced neighbour ("XǅA:0:") is no word in the input, but is one
    once "Xǅ" becomes a placeholder: its rest is redacted too (found by test_deid_fuzz)."""
    from spacy.tokens import Doc

    nlp = spacy.blank("es", config=TOKENIZER)
    transform = nlp.add_pipe("deid_transform", config={"rules_key": "none", "mode": "redact"})
    doc = Doc(nlp.vocab, words=["Ver", "A:0:", "y", "Xǅ", "A:0:", "."], spaces=[True, True, True, False, False, False])
    doc.ents = [Span(doc, 1, 2, label="ID_SUJETO_ASISTENCIA"), Span(doc, 3, 4, label="NOMBRE_SUJETO_ASISTENCIA")]
    doc = transform(doc)
    assert doc._.deidentified == "Ver [ID_SUJETO_ASISTENCIA] y [NOMBRE_SUJETO_ASISTENCIA][ID_SUJETO_ASISTENCIA]."
    assert doc._.deid_spans[-1]["fallback_reason"] == "Coincidence"
