"""The voting annotator (deid_synthesis.ensemble): the vote, and a real saved pipeline of members.

The members are real spaCy pipelines whose 'ner' component is an entity ruler, so that each one's
entities are known and the ensemble's loading, voting, saving and scoring run as they do on
trained CNNs.
"""
import shutil

import pytest
import spacy
from hypothesis import given, settings
from hypothesis import strategies as st
from spacy.tokens import DocBin
from spacy.training import Example
from typer import Typer
from typer.testing import CliRunner

from deid_synthesis.ensemble import (EnsembleError, best_min_votes, build_ensemble, majority, scores_by_min_votes,
                                     vote)
from scripts.build_ensemble import main

app = Typer()
app.command()(main)

TEXT = "Paciente Ana Pérez, 54 años, ingresa en Hospital La Paz de Madrid."


def at(phrase, label):
    start = TEXT.index(phrase)
    return start, start + len(phrase), label


NAME, AGE, HOSPITAL, CITY = at("Ana Pérez", "NAME"), at("54 años", "AGE"), at("Hospital La Paz", "HOSPITAL"), at("Madrid", "CITY")


def member(path, patterns):
    """A saved pipeline whose 'ner' finds exactly `patterns` (label, phrase)."""
    nlp = spacy.blank("es")
    ruler = nlp.add_pipe("entity_ruler", name="ner")
    ruler.add_patterns([{"label": label, "pattern": phrase} for label, phrase in patterns])
    nlp.to_disk(path)
    return str(path)


@pytest.fixture
def members(tmp_path):
    """Three members: all find the name; two find the age and the hospital as such; one the city."""
    name, age, hospital = ("NAME", "Ana Pérez"), ("AGE", "54 años"), ("HOSPITAL", "Hospital La Paz")
    return [member(tmp_path / "a", [name, age, hospital]),
            member(tmp_path / "b", [name, age, ("HOSPITAL", "Hospital La Paz de Madrid")]),
            member(tmp_path / "c", [name, ("AGE", "54"), hospital, ("CITY", "Madrid")])]


def ents(doc):
    return [(e.start_char, e.end_char, e.label_) for e in doc.ents]


def test_majority():
    assert [majority(n) for n in (1, 2, 3, 4, 5)] == [1, 2, 2, 3, 3]


def test_vote_keeps_what_a_quorum_predicts():
    long_hospital, short_age = at("Hospital La Paz de Madrid", "HOSPITAL"), at("54", "AGE")
    a, b, c = [NAME, AGE, HOSPITAL], [NAME, AGE, long_hospital], [NAME, short_age, HOSPITAL, CITY]
    assert vote([a, b, c], 2) == [(NAME, 3), (AGE, 2), (HOSPITAL, 2)]
    assert vote([a, b, c], 3) == [(NAME, 3)]
    # Overlapping candidates settle by votes (AGE over "54"), then length ("...de Madrid" over CITY).
    assert vote([a, b, c], 1) == [(NAME, 3), (AGE, 2), (HOSPITAL, 2), (CITY, 1)]
    assert vote([[long_hospital], [CITY]], 1) == [(long_hospital, 1)]


def test_vote_counts_a_member_once():
    assert vote([[NAME, NAME], []], 2) == []


spans = st.tuples(st.integers(0, 30), st.integers(1, 8), st.sampled_from(["A", "B"])).map(
    lambda t: (t[0], t[0] + t[1], t[2]))


def non_overlapping(entities):
    kept = []
    for start, end, label in entities:
        if all(end <= s or e <= start for s, e, _ in kept):
            kept.append((start, end, label))
    return kept


@settings(max_examples=200)
@given(st.lists(st.lists(spans, max_size=6).map(non_overlapping), min_size=1, max_size=5), st.integers(1, 5))
def test_vote_properties(member_entities, min_votes):
    kept = vote(member_entities, min_votes)
    for (entity, n) in kept:
        assert n >= min_votes and n == sum(entity in m for m in member_entities)
    for (s1, e1, _), _ in kept:
        assert sum(not (e1 <= s2 or e2 <= s1) for (s2, e2, _), _ in kept) == 1
    if min_votes >= majority(len(member_entities)):
        # A strict majority never overlaps itself: nothing it voted for is dropped.
        everything = {e for m in member_entities for e in m if sum(e in x for x in member_entities) >= min_votes}
        assert {e for e, _ in kept} == everything


def test_ensemble_pipeline_votes_saves_and_loads_alone(members, tmp_path):
    nlp = build_ensemble(members)
    assert nlp.pipe_names == ["deid_ensemble_ner"]
    assert ents(nlp(TEXT)) == [NAME, AGE, HOSPITAL]
    assert ents(build_ensemble(members, min_votes=3)(TEXT)) == [NAME]
    assert ents(build_ensemble(members, min_votes=1)(TEXT)) == [NAME, AGE, HOSPITAL, CITY]
    nlp.to_disk(tmp_path / "ensemble")
    members_strings = "".join(p.read_text(encoding="utf8") for p in (tmp_path / "ensemble").rglob("member*/**/strings.json"))
    assert members_strings and "ingresa" not in members_strings  # text they processed: pruned
    for path in members:
        shutil.rmtree(path)  # the saved ensemble holds its members
    loaded = spacy.load(tmp_path / "ensemble")
    assert [ents(d) for d in loaded.pipe([TEXT, "Nada que ver."], batch_size=1)] == [[NAME, AGE, HOSPITAL], []]
    assert loaded.get_pipe("deid_ensemble_ner").labels == ("AGE", "CITY", "HOSPITAL", "NAME")


def test_ensemble_scores_as_the_ner_does(members):
    nlp = build_ensemble(members)
    gold = nlp.make_doc(TEXT)
    gold.ents = [gold.char_span(s, e, label=l) for s, e, l in (NAME, AGE, CITY)]
    scores = nlp.evaluate([Example(nlp.make_doc(TEXT), gold)])
    assert scores["ents_p"] == pytest.approx(2 / 3) and scores["ents_r"] == pytest.approx(2 / 3)
    assert "token_f" in scores and "spans_merged_f" in scores


def test_bad_ensembles_say_what_is_wrong(members, tmp_path):
    with pytest.raises(EnsembleError, match="no member"):
        build_ensemble([])
    with pytest.raises(EnsembleError, match="min_votes = 4"):
        build_ensemble(members, min_votes=4)
    with pytest.raises(EnsembleError, match="missing"):
        build_ensemble(members + [str(tmp_path / "missing")])
    no_ner = spacy.blank("es")
    no_ner.add_pipe("sentencizer")
    no_ner.to_disk(tmp_path / "no_ner")
    with pytest.raises(EnsembleError, match="no 'ner' component"):
        build_ensemble(members + [str(tmp_path / "no_ner")])


def test_min_votes_is_chosen_on_gold_docs(members):
    nlp = build_ensemble(members)
    gold = nlp.make_doc(TEXT)
    gold.ents = [gold.char_span(s, e, label=l) for s, e, l in (NAME, AGE, HOSPITAL, CITY)]
    scores = scores_by_min_votes(nlp, [gold])
    assert [(s["tp"], s["fp"], s["fn"]) for s in scores["members"]] == [(3, 0, 1), (2, 1, 2), (3, 1, 1)]
    votes = scores["votes"]
    assert {k: (s["tp"], s["fp"], s["fn"]) for k, s in votes.items()} == {1: (4, 0, 0), 2: (3, 0, 1), 3: (1, 0, 3)}
    assert best_min_votes(votes) == 1
    assert best_min_votes({1: {"f": 0.9}, 2: {"f": 0.9}, 3: {"f": 0.5}}) == 2


def test_build_ensemble_command(members, tmp_path):
    gold = spacy.blank("es").make_doc(TEXT)
    gold.ents = [gold.char_span(s, e, label=l) for s, e, l in (NAME, AGE, HOSPITAL, CITY)]
    DocBin(docs=[gold]).to_disk(tmp_path / "dev.spacy")
    runner = CliRunner()
    out = tmp_path / "training" / "ensemble" / "model-best"
    for name, path in zip("ab", members):  # trained pipelines as the train step leaves them
        shutil.copytree(path, tmp_path / "training" / name / "model-best")
    args = [str(out), "a", "b", members[2], "--under", str(tmp_path / "training"), "--dev", str(tmp_path / "dev.spacy")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "1 votes: P 1.0000 R 1.0000 F 1.0000" in result.output
    saved = "".join(p.read_text(encoding="utf8") for p in out.rglob("strings.json"))
    assert "ingresa" not in saved and "Paciente" not in saved  # the dev note's words are not kept
    loaded = spacy.load(out)
    assert loaded.config["components"]["deid_ensemble_ner"]["min_votes"] == 1
    assert ents(loaded(TEXT)) == [NAME, AGE, HOSPITAL, CITY]
    result = runner.invoke(app, [str(out), members[2], str(tmp_path / "missing")])
    assert result.exit_code == 1 and "missing: cannot load" in " ".join(result.output.split())
