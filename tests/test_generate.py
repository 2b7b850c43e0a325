"""Generation through the spaCy config (spacy-llm) with a tiny, randomly initialised LM built offline."""
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import spacy
import srsly
import torch
from spacy.tokens import DocBin

from clinical_deid.tokenizer import count_words
from deid_synthesis.corpus.convert import make_nlp
from deid_synthesis.corpus.demo import generate_split
from deid_synthesis.generation.adapt import adapt
from deid_synthesis.generation.causal_lm import load_causal_lm
from deid_synthesis.generation.decoding import nucleus_sample
from deid_synthesis.generation.generate import (DROPPED, SAMPLES, expected_words_per_sample, generate,
                                                 samples_per_prompt)
from deid_synthesis.generation.prompts import GenerateError, first_words, make_prompts
from deid_synthesis.generation.sampler import BatchedSampler
from deid_synthesis.generation.samples import degenerate_reason
from deid_synthesis.generation.tiny_model import build_tiny_model

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "generate.cfg"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Tiny model folder and train/dev DocBins (demo notes)."""
    return build_corpus(tmp_path_factory.mktemp("gen"))


def build_corpus(folder):
    """A tiny random model (folder/model) and demo train/dev DocBins in `folder`."""
    nlp = spacy.blank("es")
    notes = {}
    for split, n in (("train", 30), ("dev", 6)):
        notes[split] = generate_split("es", split, n, seed=0)
        docbin = DocBin(store_user_data=True)
        for note in notes[split]:
            doc = nlp.make_doc(note["text"])
            doc.ents = [doc.char_span(s["start"], s["end"], label=s["label"], alignment_mode="expand")
                        for s in note["spans"]]
            doc.user_data["id"] = note["id"]
            docbin.add(doc)
        docbin.to_disk(folder / f"{split}.spacy")
    build_tiny_model(folder / "model", [n["text"] for n in notes["train"]])
    return folder


def overrides(corpus, **extra):
    settings = {"components.llm.model.base_model": str(corpus / "model"), "components.llm.model.max_new_tokens": 24,
                "components.llm.model.threads": 1, "nlp.batch_size": 4, "components.llm.model.batch_size": 4}
    settings.update(extra)
    return settings


def run(corpus, output, **kwargs):
    extra = kwargs.pop("extra", {})
    settings = dict(n_samples=3, overrides=overrides(corpus, **extra), silent=True)
    settings.update(kwargs)
    return generate(CONFIG, corpus / "dev.spacy", corpus / "train.spacy", output, **settings)


def rows(output):
    return srsly.read_jsonl(output / SAMPLES), srsly.read_jsonl(output / DROPPED)


def test_first_words():
    assert first_words("  Paciente de 45 años, varón.") == "Paciente de 45"
    assert first_words("Datos del\npaciente: Ana") == "Datos del\npaciente:"
    assert first_words("Uno") == "Uno"


def phi_docbin(path, notes):
    """A DocBin of (text, [(substring, label)], annotated) notes: ents set only when annotated."""
    nlp = spacy.blank("es")
    docbin = DocBin(store_user_data=True)
    for i, (text, spans, annotated) in enumerate(notes):
        doc = nlp.make_doc(text)
        if annotated:
            doc.ents = [doc.char_span(text.index(sub), text.index(sub) + len(sub), label=label) for sub, label in spans]
        doc.user_data["id"] = f"n{i}"
        docbin.add(doc)
    docbin.to_disk(path)
    return path


NOTES = [
    ("Ana García López, de 45 años, acude a urgencias.", [("Ana García López", "NOMBRE_SUJETO_ASISTENCIA"),
                                                           ("45 años", "EDAD_SUJETO_ASISTENCIA")], True),
    ("Nombre: José Luis Pérez. Varón de 70 años.", [("José Luis Pérez", "NOMBRE_SUJETO_ASISTENCIA"),
                                                    ("Varón", "SEXO_SUJETO_ASISTENCIA")], True),
    ("Varón de 70 años que acude.", [("Varón", "SEXO_SUJETO_ASISTENCIA")], True),
    ("Paciente mujer remitida desde Madrid.", [("mujer", "SEXO_SUJETO_ASISTENCIA")], True),
    ("Datos del paciente sin PHI.", [], True),
]


def test_prompts_carry_no_gold_phi_and_record_the_replacement(tmp_path):
    from clinical_deid.folding import fold

    prompts = make_prompts(phi_docbin(tmp_path / "dev.spacy", NOTES), n_words=3, lang="es", seed=0)
    by_id = {p["id"]: p for p in prompts}
    assert list(by_id) == ["n0", "n1", "n2", "n3", "n4"]
    for prompt, (text, spans, _) in zip(prompts, NOTES):
        folded = fold(prompt["text"])
        for sub, _ in spans:
            for word in sub.split():
                assert fold(word) not in folded.split(), (prompt["id"], "a gold PHI word is in the prompt")
        assert "[" not in prompt["text"]  # no redaction placeholder
    # A name at the start: replaced by a surrogate name, recorded (counts only, no original words).
    assert by_id["n0"]["phi"] == {"method": "surrogates", "words": 3, "replaced": 3, "dropped": 0}
    assert by_id["n1"]["phi"]["replaced"] == 2 and by_id["n1"]["text"].startswith("Nombre: ")
    # No surrogate for sex: left out, the prompt starts after it / ends before it.
    assert by_id["n2"]["text"] == "de 70 años"
    assert by_id["n2"]["phi"]["dropped"] == 1
    assert by_id["n3"]["text"] == "Paciente" and by_id["n3"]["phi"] == {"method": "surrogates", "words": 1,
                                                                         "replaced": 0, "dropped": 1}
    assert by_id["n4"]["text"] == "Datos del paciente" and by_id["n4"]["phi"]["replaced"] == 0
    assert "José" not in repr(prompts) and "García" not in repr(prompts)
    # Deterministic for a seed.
    assert make_prompts(tmp_path / "dev.spacy", 3, "es", 0) == prompts


def test_a_dev_doc_without_annotation_is_refused(tmp_path):
    path = phi_docbin(tmp_path / "raw.spacy", [NOTES[4], ("Ana García López acude.", [], False)])
    with pytest.raises(GenerateError, match=r"raw\.spacy: document n1 \(#1\) has no entity annotation") as err:
        make_prompts(path)
    assert "Ana" not in str(err.value)
    raw = make_prompts(path, raw=True)
    assert raw[1]["text"] == "Ana García López" and raw[1]["phi"]["method"] == "raw"


def test_volume_sets_k():
    # 4 x 200,000 words from 250 prompts of ~100 words each: 32 samples per prompt.
    assert samples_per_prompt(4.0, 200_000, 250, 100) == 32
    assert samples_per_prompt(0.05, 200_000, 250, 100) == 1
    with pytest.raises(GenerateError):
        samples_per_prompt(0, 1000, 10, 10)


def test_words_per_sample_from_the_gold_words():
    class TwoTokensPerWord:
        def __call__(self, text, add_special_tokens=False):
            return type("Encoding", (), {"input_ids": [0, 0] * len(text.split())})()

    # 12 tokens for 6 words: 2 tokens per word; a gold note holds 3 words on average.
    texts, word_counts = ["a b", "c d e f"], [2, 4]
    assert expected_words_per_sample(texts, word_counts, TwoTokensPerWord(), max_new_tokens=100) == 3
    assert expected_words_per_sample(texts, word_counts, TwoTokensPerWord(), max_new_tokens=4) == 2


def test_k_samples_per_prompt_with_provenance(corpus, tmp_path):
    report = run(corpus, tmp_path / "out")
    kept, dropped = (list(r) for r in rows(tmp_path / "out"))
    per_prompt = Counter(r["prompt_id"] for r in kept + dropped)
    assert len(per_prompt) == 6 and set(per_prompt.values()) == {3}
    assert report["kept"] == len(kept) and sum(report["dropped"].values()) == len(dropped) and report["complete"]
    # Words are count_words on the clinical tokenizer, for the samples and the training split alike.
    clinical = make_nlp("es")
    assert report["words"] == sum(count_words(clinical(r["text"])) for r in kept)
    train = DocBin().from_disk(corpus / "train.spacy").get_docs(clinical.vocab)
    assert report["train_words"] == sum(count_words(clinical(doc.text)) for doc in train)
    assert report["volume_reached"] == round(report["words"] / report["train_words"], 3)
    row = kept[0]
    assert row["text"].startswith(row["prompt"]) and 1 <= len(row["prompt"].split()) <= 3
    assert row["prompt_phi"]["method"] == "surrogates" and row["provenance"]["prompt_phi"] == "surrogates"
    assert report["prompt_phi"]["prompts"] == 6 and report["prompt_phi"]["method"] == "surrogates"
    assert row["provenance"]["top_p"] == pytest.approx(0.95) and row["provenance"]["temperature"] == 1.0
    assert row["provenance"]["base_model"] == str(corpus / "model") and row["provenance"]["seed"] == 0
    assert all("text" not in r for r in dropped)


def test_rounds_follow_until_the_volume_is_reached(corpus, tmp_path, monkeypatch):
    """K from the volume assumes long samples; short ones get more rounds (at most 2 K)."""
    import deid_synthesis.generation.generate as gen

    monkeypatch.setattr(gen, "expected_words_per_sample", lambda *args: 1e9)  # K = 1
    report = run(corpus, tmp_path / "short", n_samples=None, volume=1.0)
    assert report["samples_per_prompt"] == 1 and report["rounds"] == 2 and report["complete"]
    assert report["volume_reached"] < 1.0  # 2 K spent: stops there
    assert {r["sample_index"] for r in rows(tmp_path / "short")[0]} == {0, 1}
    report = run(corpus, tmp_path / "tiny", n_samples=None, volume=1e-4)
    assert report["rounds"] == 1 and report["complete"]


def test_the_same_seed_gives_the_same_text(corpus, tmp_path):
    run(corpus, tmp_path / "a")
    run(corpus, tmp_path / "b")
    run(corpus, tmp_path / "c", extra={"system.seed": 1})
    texts = {name: {r["id"]: r["text"] for r in rows(tmp_path / name)[0]} for name in "abc"}
    assert texts["a"] == texts["b"]
    assert texts["a"] != texts["c"]


def test_an_interrupted_run_resumes_without_duplicates_or_losses(corpus, tmp_path):
    run(corpus, tmp_path / "full", n_samples=4)
    run(corpus, tmp_path / "part", n_samples=4, limit=7)
    with (tmp_path / "part" / SAMPLES).open("a") as f:
        f.write('{"id": "torn line of a killed run", "te')
    report = run(corpus, tmp_path / "part", n_samples=4)
    full = {r["id"]: r["text"] for r in rows(tmp_path / "full")[0]}
    kept, dropped = (list(r) for r in rows(tmp_path / "part"))
    ids = [r["id"] for r in kept + dropped]
    assert len(ids) == len(set(ids)) == 6 * 4
    assert {r["id"]: r["text"] for r in kept} == full
    assert len(report["sessions"]) == 2 and report["complete"]


def test_a_killed_process_resumes(corpus, tmp_path):
    output = tmp_path / "killed"
    args = [sys.executable, "-m", "scripts.generate", str(CONFIG), str(corpus / "dev.spacy"),
            str(corpus / "train.spacy"), str(output), "-k", "8"]
    for key, value in overrides(corpus, **{"components.llm.model.max_new_tokens": 48}).items():
        args += [f"--{key}", str(value)]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        if (output / SAMPLES).exists() and (output / SAMPLES).read_text().count("\n") >= 8:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    kept, dropped = (list(r) for r in rows(output))
    assert 0 < len(kept) + len(dropped) < 6 * 8, "the run was to be killed half-way"
    run(corpus, output, n_samples=8, extra={"components.llm.model.max_new_tokens": 48})
    kept, dropped = (list(r) for r in rows(output))
    ids = [r["id"] for r in kept + dropped]
    assert len(ids) == len(set(ids)) == 6 * 8


def test_other_settings_are_refused_in_the_same_folder(corpus, tmp_path):
    run(corpus, tmp_path / "out")
    with pytest.raises(GenerateError, match="other settings"):
        run(corpus, tmp_path / "out", extra={"components.llm.model.top_p": 0.5})
    with pytest.raises(GenerateError, match="other settings"):  # other prompts: raw openings
        run(corpus, tmp_path / "out", raw_prompts=True)


def test_restricted_vocabulary(corpus, tmp_path):
    allowed = list(range(0, 120))
    srsly.write_json(tmp_path / "ids.json", allowed)
    model, tokenizer = load_causal_lm(str(corpus / "model"))
    sampler = BatchedSampler(model, tokenizer, max_new_tokens=30, batch_size=4, token_ids=allowed)
    for sample in sampler.generate(["Paciente de 45", "Nombre: Ana", "Se remite"], [1, 2, 3]):
        assert set(sample["token_ids"]) <= set(allowed)
    report = run(corpus, tmp_path / "out", extra={"paths.vocabulary": str(tmp_path / "ids.json")})
    assert report["provenance"]["vocabulary_size"] == 120


def test_adapter_and_its_vocabulary(corpus, tmp_path):
    adapt(corpus / "train.spacy", tmp_path / "adapter", base_model=str(corpus / "model"), max_steps=1, seq_len=32,
          batch_size=2, silent=True)
    report = run(corpus, tmp_path / "out", vocabulary="corpus", extra={"paths.adapter": str(tmp_path / "adapter")})
    provenance = report["provenance"]
    assert provenance["adapter"] == str(tmp_path / "adapter") and len(provenance["adapter_manifest"]) == 16
    assert provenance["vocabulary_size"] == len(srsly.read_json(tmp_path / "adapter" / "token_ids.json"))


def test_batched_sampling_matches_transformers_greedy(corpus):
    """With a nucleus of one token, sampling is greedy: left padding, the cache and the step masks
    (past the tiny model's 32-token sliding window) must not change it."""
    model, tokenizer = load_causal_lm(str(corpus / "model"))
    prompts = ["Paciente de 45", "Nombre: Ana García López, de", "Se"]
    samples = BatchedSampler(model, tokenizer, top_p=1e-9, max_new_tokens=48, batch_size=3).generate(prompts, [0, 1, 2])
    for prompt, sample in zip(prompts, samples):
        enc = tokenizer(prompt, return_tensors="pt")
        out = model.generate(input_ids=enc.input_ids, attention_mask=enc.attention_mask, do_sample=False,
                             max_new_tokens=48, pad_token_id=0)
        reference = [t for t in out[0, enc.input_ids.shape[1]:].tolist() if t != tokenizer.eos_token_id]
        assert sample["token_ids"] == reference[: len(sample["token_ids"])]
    assert max(s["n_tokens"] for s in samples) > 40  # past the window


@pytest.mark.parametrize("vocab,n_draws", [(500, 4000), (33000, 500)])  # batched top-k / per-row candidates
def test_nucleus_is_exact(vocab, n_draws):
    """The tokens that can be drawn are exactly transformers' top-p set."""
    from transformers.generation.logits_process import TopPLogitsWarper

    torch.manual_seed(0)
    logits = torch.randn(3, vocab) * 4
    for row in logits:
        batch = row.expand(n_draws, -1)
        drawn = set(nucleus_sample(batch, 0.9, torch.linspace(0, 0.99999, n_draws)).tolist())
        warped = TopPLogitsWarper(0.9)(None, row.unsqueeze(0).clone())
        expected = set(torch.isfinite(warped[0]).nonzero().squeeze(-1).tolist())
        assert drawn <= expected
        # every token of the nucleus whose share of it exceeds the grid step is drawn
        probs = torch.softmax(row, -1)
        share = probs / probs[list(expected)].sum()
        assert {i for i in expected if share[i] > 1 / n_draws} <= drawn


def test_degenerate_samples():
    assert degenerate_reason(" ...  ", [5, 6]) == "empty"
    assert degenerate_reason(" a a a a a a a a a", [7] * 9) == "repeated_token"
    assert degenerate_reason(" x", [1, 2, 3, 4] * 10) == "loop"
    assert degenerate_reason(" una nota normal", list(range(40))) is None
