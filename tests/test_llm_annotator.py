"""The LLM annotator: its span parser, few-shot examples from gold, the local model's prefix
cache, and the built pipeline through `annotate` (DocBin, report, spacy-llm's cache on resume).

The local model here is a tiny randomly initialised LM built offline (its answers are noise);
what is checked is the real loading, prompting, caching and bookkeeping code. The real
served model is tests/test_llm_server.py's."""
from pathlib import Path

import pytest
import spacy
import srsly
from spacy_llm.registry import registry

from clinical_deid.io import read_docbin
from deid_synthesis.annotate import annotate
from deid_synthesis.corpus.convert import convert
from deid_synthesis.corpus.demo.notes import generate_split
from deid_synthesis.generation.causal_lm import load_causal_lm
from deid_synthesis.generation.tiny_model import build_tiny_model
from deid_synthesis.llm_annotation.build import build_llm_annotator, llm_config
from deid_synthesis.llm_annotation.examples import gold_examples, make_gold_examples
from deid_synthesis.llm_annotation.local_model import LocalChatModel, cut_at_stop, has_sliding_window
from deid_synthesis.llm_annotation.spans import AlignedSpanParser
from deid_synthesis.privacy import PhiIndex

ROOT = Path(__file__).resolve().parent.parent
LABELS = ["NOMBRE_SUJETO_ASISTENCIA", "HOSPITAL", "FECHAS"]


def ner_task():
    return registry.llm_tasks.get("spacy.NER.v3")(labels=LABELS)


def parse(misaligned, text, answer):
    nlp = spacy.blank("es")
    doc = nlp.make_doc(text)
    parser = AlignedSpanParser(misaligned)
    spans = list(parser(ner_task(), [[doc]], [[answer]]))[0][0]
    return doc, spans, parser.counts


ANSWER = ("1. Ana García | True | NOMBRE_SUJETO_ASISTENCIA | the patient\n"
          "2. dolor | False | ==NONE== | a symptom\n"
          "3. Pedro Ruiz | True | NOMBRE_SUJETO_ASISTENCIA | made up\n"
          "4. hospital clínico | True | HOSPITAL | case differs\n"
          "5. 12/03 | True | FECHAS | part of a token\n"
          "6. algo | True | NO_SUCH_LABEL | unknown label\n"
          "not a line of the format")
TEXT = "Ana García, con dolor, ingresa en el Hospital Clínico el 12/03/2020."


def test_parser_finds_named_spans_and_counts_the_rest():
    doc, spans, counts = parse("split", TEXT, ANSWER)
    assert [(s.text, s.label_) for s in spans] == [("Ana García", "NOMBRE_SUJETO_ASISTENCIA"),
                                                   ("Hospital Clínico", "HOSPITAL"), ("12/03", "FECHAS")]
    assert counts["named"] == 4 and counts["not_in_text"] == 1 and counts["not_in_text:NOMBRE_SUJETO_ASISTENCIA"] == 1
    assert counts["misaligned"] == 1 and counts["misaligned:FECHAS"] == 1 and counts["dropped"] == 0
    assert doc.text == TEXT  # split: tokens cut at the span's edges, the text unchanged


@pytest.mark.parametrize("policy,expected,dropped", [("expand", "12/03/2020", 0), ("contract", None, 1),
                                                     ("skip", None, 1)])
def test_parser_misaligned_policies(policy, expected, dropped):
    _, spans, counts = parse(policy, TEXT, ANSWER)
    dates = [s.text for s in spans if s.label_ == "FECHAS"]
    assert dates == ([expected] if expected else [])
    assert counts["misaligned"] == 1 and counts["dropped"] == dropped


def test_parser_reads_spans_in_order_after_the_previous_one():
    answer = "1. Ana | True | NOMBRE_SUJETO_ASISTENCIA | x\n2. Ana | True | NOMBRE_SUJETO_ASISTENCIA | x"
    _, spans, _ = parse("split", "Ana vio a Ana.", answer)
    assert [s.start_char for s in spans] == [0, 10]
    with pytest.raises(ValueError, match="misaligned must be one of"):
        AlignedSpanParser("error")


@pytest.fixture(scope="module")
def gold_train(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gold")
    srsly.write_jsonl(folder / "train.jsonl", generate_split("es", "train", 30, seed=3))
    convert(folder / "train.jsonl", folder / "train.spacy", "jsonl", "es")
    return folder / "train.spacy"


def test_examples_cover_labels_and_hold_no_identifying_gold_string(gold_train):
    docs = read_docbin(gold_train)
    examples = gold_examples(gold_train, 4, 40, 0, "es")
    assert len(examples) == 4
    shown = {span["label"] for eg in examples for span in eg["spans"]}
    assert len(shown) >= 6  # the greedy pick shows many labels, not 4 passages of names
    for eg in examples:
        assert len(eg["text"].split()) <= 60
        for span in eg["spans"]:
            assert span["text"] in eg["text"] and span["is_entity"]
    index = PhiIndex(docs, min_chars=3, max_gold_docs=1)
    identifying = [index.strings[i] for i in index.identifying]
    assert identifying and not [s for s in identifying if any(s in eg["text"] for eg in examples)]
    assert gold_examples(gold_train, 4, 40, 0, "es") == examples  # seeded


def test_no_path_or_no_examples_is_zero_shot(gold_train):
    assert make_gold_examples(None, 4)() == [] and make_gold_examples(str(gold_train), 0)() == []
    with pytest.raises(ValueError, match="no such DocBin"):
        make_gold_examples("missing/train.spacy", 2)()


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory, gold_train):
    texts = [doc.text for doc in read_docbin(gold_train)]
    return str(build_tiny_model(tmp_path_factory.mktemp("lm") / "model", texts))


@pytest.mark.parametrize("window", [True, False])
def test_prefix_cache_and_batching_give_the_same_answers(tiny_lm, window):
    """Greedy answers from the shared-prefix cache in a padded batch equal each prompt decoded alone
    (a sliding-window model, as the tiny Gemma is, decodes the batch's prompts one by one)."""
    model, tokenizer = load_causal_lm(tiny_lm)
    if not window:  # the same weights as a model with full attention only (as SmolLM2 has)
        model.config.layer_types = ["full_attention"] * len(model.config.layer_types)
        model.config.sliding_window = 4096
        for layer in model.model.layers:
            layer.self_attn.sliding_window = None
    assert has_sliding_window(model.config) == window
    head = "Instrucciones: extraer nombres y fechas del texto clínico. Ejemplo: nada."
    prompts = [f"{head} Texto: paciente de {n} años ingresa" + " hoy" * n for n in (3, 9, 5)]
    cached = LocalChatModel(model, tokenizer, max_new_tokens=6, batch_size=3, stop_strings=())
    cached.min_prefix = 4
    together = cached.complete(prompts)
    assert cached.usage["cached_prompt_tokens"] > 0
    alone = LocalChatModel(model, tokenizer, max_new_tokens=6, batch_size=1, stop_strings=())
    alone.min_prefix = 10_000  # never cache
    assert together == [alone.complete([p])[0] for p in prompts]
    assert alone.usage["cached_prompt_tokens"] == 0


def test_answer_is_cut_at_a_stop_string():
    assert cut_at_stop("1. a | True | X | r\n\nParagraph: more", ("\n\n", "Paragraph:")) == "1. a | True | X | r"


def test_built_pipeline_annotates_loads_without_gold_and_resumes_from_cache(tiny_lm, gold_train, tmp_path):
    overrides = {"paths.examples": str(gold_train), "paths.cache": str(tmp_path / "cache"),
                 "components.llm.model.base_model": tiny_lm, "components.llm.model.max_new_tokens": 8,
                 "components.llm.model.stop_strings": [],
                 "components.llm.task.examples.n": 2}
    config = llm_config(ROOT / "configs/llm_ner.cfg", [ROOT / "configs/llm/labels_meddocan.cfg",
                                                        ROOT / "configs/llm/model_local.cfg"], overrides)
    built = build_llm_annotator(config, tmp_path / "llm")
    assert built["examples"] == 2 and len(built["labels"]) == 21
    saved = (tmp_path / "llm" / "config.cfg").read_text()
    assert "deid.GoldNERExamples.v1" not in saved and (tmp_path / "llm/llm/task/prompt_examples").exists()
    gold_train.rename(gold_train.with_suffix(".moved"))  # the saved pipeline does not read gold again
    try:
        nlp = spacy.load(tmp_path / "llm")
        assert len(nlp.get_pipe("llm").task.prompt_examples) == 2
        notes = tmp_path / "notes.jsonl"
        srsly.write_jsonl(notes, [{"id": f"n{i}", "text": note["text"], "seed": i}
                                  for i, note in enumerate(generate_split("es", "dev", 3, seed=1))])
        first = annotate(nlp, notes, tmp_path / "out.spacy", max_words=64, batch_size=4)
        assert first["llm"]["requests"] == first["chunks"] > 0 and first["llm"]["usage"]["prompt_tokens"] > 0
        assert first["llm"]["usage_per_1000_notes"]["prompt_tokens"] > 0
        again = annotate(spacy.load(tmp_path / "llm"), notes, tmp_path / "out2.spacy", max_words=64, batch_size=4)
        assert again["llm"]["requests"] == 0 and again["chunks"] == first["chunks"]
        assert len(read_docbin(tmp_path / "out2.spacy")) == first["chunks"]
    finally:
        gold_train.with_suffix(".moved").rename(gold_train)
