"""The config benchmark on tiny data: every variant measured in one run with its ratio, training
updates timed, bad overrides refused with the part named."""
from pathlib import Path

import pytest
import srsly
import typer
from typer.testing import CliRunner

from deid_synthesis.bench_configs import inference_speed, update_speed
from deid_synthesis.corpus.convert import convert
from deid_synthesis.corpus.demo import generate_split
from scripts.bench_configs import app, parse_overrides

ROOT = Path(__file__).resolve().parent.parent
FAST = {"components.tok2vec.model.encode.width": 32, "components.tok2vec.model.encode.depth": 1}


@pytest.fixture(scope="module")
def docbin(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench")
    srsly.write_jsonl(folder / "test.jsonl", generate_split("es", "test", 6, seed=0))
    convert(folder / "test.jsonl", folder / "test.spacy", "jsonl", "es")
    return folder / "test.spacy"


def test_variants_measured_in_one_run(docbin):
    result = inference_speed({"as is": {}, "fast": FAST}, ROOT / "configs/ner_cpu.cfg", docbin, rounds=1)
    assert set(result["variants"]) == {"as is", "fast"} and all(v > 0 for v in result["variants"].values())
    assert result["tokens"] > 100 and result["load_before"] >= 0


def test_updates_are_timed(docbin):
    result = update_speed(ROOT / "configs/ner_cpu.cfg", docbin, n_docs=6, n_updates=2, words_per_batch=300)
    assert 1 <= len(result["updates"]) <= 2 and result["words_per_second"] > 0
    assert all(u["docs"] >= 1 and u["words"] > 0 for u in result["updates"])


def test_overrides_parse_and_bad_ones_are_named():
    assert parse_overrides("a.b=64,c.d=x,e.f=false") == {"a.b": 64, "c.d": "x", "e.f": False}
    assert parse_overrides('rows=[5000,2500],attrs=["NORM","SHAPE"]') == {"rows": [5000, 2500], "attrs": ["NORM", "SHAPE"]}
    with pytest.raises(typer.BadParameter, match="'width' is not name=value"):
        parse_overrides("a.b=1,width")


def test_cli_prints_ratios(docbin, tmp_path):
    result = CliRunner().invoke(app, ["speed", str(ROOT / "configs/ner_cpu.cfg"), str(docbin), "--rounds", "1",
                                      "--variant", "tiny:components.tok2vec.model.encode.width=32",
                                      "--output", str(tmp_path / "out.json")])
    assert result.exit_code == 0, result.output
    assert "x as is" in result.output and "tiny" in result.output and "load average" in result.output
    assert set(srsly.read_json(tmp_path / "out.json")["variants"]) == {"as is", "tiny"}
