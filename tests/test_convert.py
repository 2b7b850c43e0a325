"""Conversion end to end: the report's warnings, `prepare` (a folder's parts, the dev hold-out,
the staging that keeps the old corpus whole), the real MEDDOCAN corpus and the command line.

The real corpus is read from ../shared/data; assertions compare counts, file names and line
numbers, never its text."""
import json

import pytest
import typer
from typer.testing import CliRunner

from deid_synthesis.corpus.convert import convert, print_report
from deid_synthesis.corpus.prepare import prepare
from deid_synthesis.corpus.records import CorpusError
from scripts.convert import main
from convert_support import DATA, load, run, assert_names, JSONL_GOOD, jsonl, JSONL_CASES

def test_zero_entities_warns(tmp_path, capsys):
    path = tmp_path / "none.jsonl"
    path.write_text(json.dumps({"text": "Ana vive.", "spans": []}) + "\n", encoding="utf-8")
    report, _ = run(tmp_path, path, "jsonl")
    assert report["entities"] == 0 and report["warnings"]
    print_report(report)
    out = capsys.readouterr().out
    assert "no entities" in out and "✔" not in out  # no success mark over it (issue 12)
    _, _ = run(tmp_path, jsonl(tmp_path, json.dumps({**JSONL_GOOD, "id": "other"})), "jsonl")


def test_prepare_holds_out_dev(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    def write(name, n):
        with (data / name).open("w", encoding="utf-8") as f:
            for i in range(n):
                f.write(json.dumps({"id": f"{name}-{i}", "text": f"Paciente {i} en Lund.",
                                    "spans": [{"start": 13 + len(str(i)), "end": 17 + len(str(i)), "label": "LOC"}]}) + "\n")
    write("train.jsonl", 20)
    write("test.jsonl", 3)

    def dev_ids(out, seed):
        reports = prepare(data, out, "jsonl", "es", dev_share=0.2, seed=seed)
        assert reports["dev"] == {"held_out_from_train": {"train": 16, "dev": 4}, "seed": seed}
        train, dev, test = (load(out / f"{s}.spacy") for s in ("train", "dev", "test"))
        assert (len(train), len(dev), len(test)) == (16, 4, 3)
        ids_train = {d.user_data["id"] for d in train}
        ids_dev = {d.user_data["id"] for d in dev}
        assert not ids_train & ids_dev
        assert ids_train | ids_dev == {f"train.jsonl-{i}" for i in range(20)}
        assert all(len(d.ents) == 1 for d in train + dev)
        assert json.loads((out / "report.json").read_text())["dev"]["seed"] == seed
        return ids_dev

    first = dev_ids(tmp_path / "out1", 7)
    assert dev_ids(tmp_path / "out2", 7) == first
    others = [dev_ids(tmp_path / f"out{s}", s) for s in range(3)]
    assert any(ids != first for ids in others)


def test_prepare_needs_train_and_test(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.jsonl").write_text(json.dumps(JSONL_GOOD) + "\n", encoding="utf-8")
    with pytest.raises(CorpusError) as err:
        prepare(data, tmp_path / "out", "jsonl", "es")
    assert "test" in str(err.value)


def test_prepare_failure_leaves_the_old_corpus_whole(tmp_path):
    # The train part used to be written (and the old one replaced) before the test part failed.
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    for split in ("train", "dev", "test"):
        (data / f"{split}.jsonl").write_text(json.dumps(JSONL_GOOD) + "\n", encoding="utf-8")
    prepare(data, out, "jsonl", "es")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    (data / "train.jsonl").write_text(json.dumps(JSONL_GOOD) + "\n" + json.dumps({**JSONL_GOOD, "id": "t2"}) + "\n")
    (data / "test.jsonl").write_text('{"text": "Ana", "spans": [\n', encoding="utf-8")
    with pytest.raises(CorpusError) as err:
        prepare(data, out, "jsonl", "es")
    assert_names(err, data / "test.jsonl", 1)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no staging folder left either


def test_prepare_hold_out_needs_two_documents(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for split in ("train", "test"):
        (data / f"{split}.jsonl").write_text(json.dumps(JSONL_GOOD) + "\n", encoding="utf-8")
    with pytest.raises(CorpusError) as err:  # one document went to dev, train was left empty
        prepare(data, tmp_path / "out", "jsonl", "es")
    assert "train.jsonl" in str(err.value)  # the part read, not the staged DocBin
    assert not (tmp_path / "out" / "train.spacy").exists()


@pytest.mark.slow
def test_meddocan_counts(tmp_path):
    root = DATA / "meddocan"
    if not root.is_dir():
        pytest.skip(f"{root} not found")
    expected = {"train": (500, 11333), "dev": (250, 5801), "test": (250, 5661)}
    for split, (n_docs, n_ents) in expected.items():
        report = convert(root / split, tmp_path / f"{split}.spacy", "brat", "es")
        assert report["skipped"] == {}
        assert (report["source_documents"], report["documents"]) == (n_docs, n_docs)
        assert report["source_spans"] == report["entities"] == n_ents
        assert all(m["action"] == "split" for m in report["misaligned"])
        if split == "train":
            assert report["entities_per_label"]["TERRITORIO"] == 1875
            assert report["entities_per_label"]["FECHAS"] == 1231
    # Spot check of the BOM trap on the real data: entity texts equal the .ann strings.
    docs = load(tmp_path / "train.spacy")
    bom_ids = {p.stem for p in (root / "train").glob("*.txt") if p.read_bytes().startswith(b"\xef\xbb\xbf")}
    assert bom_ids
    checked, wrong = 0, []  # document ids only: never show the corpus's text
    for doc in docs:
        if doc.user_data["id"] not in bom_ids:
            continue
        ann = (root / "train" / f"{doc.user_data['id']}.ann").read_text(encoding="utf-8")
        gold = [line.split("\t")[2] for line in ann.splitlines() if line.startswith("T")]
        if sorted(e.text for e in doc.ents) != sorted(gold):
            wrong.append(doc.user_data["id"])
        checked += 1
    assert wrong == []
    assert checked == len(bom_ids)


def cli():
    app = typer.Typer()
    app.command()(main)
    return app


def test_cli_fails_on_malformed_file(tmp_path):
    path = jsonl(tmp_path, JSONL_CASES["malformed_line"], name="broken.jsonl")
    out = tmp_path / "out.spacy"
    result = CliRunner().invoke(cli(), [str(path), str(out), "--format", "jsonl", "--lang", "es"])
    assert result.exit_code == 1
    assert "broken.jsonl:2" in result.output
    assert not out.exists()


def test_cli_lenient_writes_report(tmp_path):
    path = jsonl(tmp_path, JSONL_CASES["malformed_line"], name="broken.jsonl")
    out = tmp_path / "out.spacy"
    report_path = tmp_path / "report.json"
    result = CliRunner().invoke(cli(), [str(path), str(out), "-f", "jsonl", "-l", "es", "--lenient",
                                        "--report", str(report_path)])
    assert result.exit_code == 0, result.output
    report = json.loads(report_path.read_text())
    assert report["skipped"] == {"malformed_line": 1}
    assert report["entities"] == 2
    assert len(load(out)) == 2
