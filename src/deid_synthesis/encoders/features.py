"""Contextual features from a frozen transformer encoder, for a CNN annotator to read.

Fine-tuning a 12-layer encoder on 2 CPU cores takes hours per run and its NER head learns
slowly (docs/results.md, "Annotators"). A frozen encoder costs one forward pass per note:
multilingual-e5-small reads MEDDOCAN at about 2,700 tokens/s in bfloat16 on these cores. The
`deid_encoder_features` component runs it over overlapping windows of the note, pools each
spaCy token's wordpieces (mean over the pieces that overlap it, each piece averaged over the
windows that hold it) and stores the chosen layers side by side in `doc._.deid_encoder`
(float16, one row per token). A CNN NER then reads them next to its own tok2vec
(`deid.Tok2VecWithEncoder.v1`, encoders.feature_layer) and trains at CNN speed and learning rate.

During training the component is frozen and annotating (`[training] frozen_components` and
`annotating_components`); it keeps the features of up to `cache_size` notes in memory, keyed by
a hash of their text, so that only the first epoch pays for the encoder. The cache lives in the
process only: nothing derived from a note is written anywhere but into the doc.

The encoder is saved inside the component's folder (float16 safetensors and its tokenizer), so
a trained annotator is one pipeline directory, as with spacy-transformers.
"""
import hashlib
from collections import OrderedDict
from pathlib import Path
from typing import Iterable, Iterator, List, Sequence, Tuple

import numpy
from spacy.language import Language
from spacy.tokens import Doc
from spacy.util import minibatch

EXTENSION = "deid_encoder"
ENCODER_DIR = "encoder"
PRECISIONS = ("fp32", "bf16", "auto")


class EncoderFeaturesError(ValueError):
    """The encoder features cannot be computed as configured (the message says why)."""


def ensure_extension() -> None:
    """Register `Doc._.deid_encoder` (features of each token, float16 [n_tokens, width])."""
    if not Doc.has_extension(EXTENSION):
        Doc.set_extension(EXTENSION, default=None)


def windows(n_pieces: int, window: int, stride: int) -> List[Tuple[int, int]]:
    """[start, end) ranges of at most `window` pieces, `stride` apart, covering 0..n_pieces.

    The last window ends at n_pieces; an empty text has no window.
    """
    if window < 1 or not 0 < stride <= window:
        raise EncoderFeaturesError(f"window = {window}, stride = {stride}: need 0 < stride <= window")
    spans: List[Tuple[int, int]] = []
    start = 0
    while start < n_pieces:
        end = min(start + window, n_pieces)
        spans.append((start, end))
        if end == n_pieces:
            break
        start += stride
    return spans


def token_index_of_chars(doc: Doc) -> numpy.ndarray:
    """For each character of doc.text, the index of the token holding it (-1: whitespace)."""
    index = numpy.full(len(doc.text), -1, dtype="int64")
    for token in doc:
        index[token.idx:token.idx + len(token.text)] = token.i
    return index


def pool_to_tokens(doc: Doc, offsets: Sequence[Tuple[int, int]], piece_vectors: numpy.ndarray) -> numpy.ndarray:
    """Mean of the wordpiece vectors overlapping each token; zeros for a token with none."""
    width = piece_vectors.shape[1] if piece_vectors.ndim == 2 else 0
    sums = numpy.zeros((len(doc), width), dtype="float32")
    counts = numpy.zeros((len(doc), 1), dtype="float32")
    char_token = token_index_of_chars(doc)
    for piece, (start, end) in enumerate(offsets):
        tokens = numpy.unique(char_token[start:end])
        tokens = tokens[tokens >= 0]
        sums[tokens] += piece_vectors[piece]
        counts[tokens] += 1
    return sums / numpy.maximum(counts, 1)


class EncoderFeatures:
    """Sets `doc._.deid_encoder` from a frozen encoder (module docstring)."""

    def __init__(self, nlp: Language, name: str, model: str, layers: Sequence[int], window: int,
                 stride: int, batch_size: int, precision: str, cache_size: int) -> None:
        if precision not in PRECISIONS:
            raise EncoderFeaturesError(f"precision = {precision!r}: use one of {', '.join(PRECISIONS)}")
        if not layers:
            raise EncoderFeaturesError("layers is empty: name at least one hidden layer (e.g. [-1])")
        windows(1, window - 2, stride)  # checks the window settings before any encoder loads
        ensure_extension()
        self.name = name
        self.vocab = nlp.vocab
        self.model_name = str(model)
        self.cfg = {"layers": [int(layer) for layer in layers], "window": window, "stride": stride,
                    "batch_size": batch_size, "precision": precision}
        self.cache_size = cache_size
        self._cache: "OrderedDict[str, numpy.ndarray]" = OrderedDict()
        self._encoder = None
        self._tokenizer = None

    # The encoder loads when first needed: a saved pipeline loads it from its own folder.
    def _load(self, source: str) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        try:
            self._tokenizer = AutoTokenizer.from_pretrained(source, use_fast=True)
            self._encoder = AutoModel.from_pretrained(source, torch_dtype=torch.float32).eval()
        except (OSError, ValueError) as error:  # ValueError: not a hub name (huggingface_hub)
            raise EncoderFeaturesError(f"{self.name}: cannot load the encoder {source!r} "
                                       f"(a Hugging Face name, or a local folder offline; `spacy project run "
                                       f"prepare-encoder` writes cache/encoders/multilingual-e5-small): {error}") from None
        n_layers = self._encoder.config.num_hidden_layers
        bad = [layer for layer in self.cfg["layers"] if not -n_layers - 1 <= layer <= n_layers]
        if bad:
            raise EncoderFeaturesError(f"{self.name}: layers {bad} out of range: the encoder has "
                                       f"{n_layers} layers (0 = embeddings, -1 = last)")

    @property
    def encoder(self):
        if self._encoder is None:
            self._load(self.model_name)
        return self._encoder

    @property
    def width(self) -> int:
        """Features per token: the encoder's hidden size times the number of layers."""
        return int(self.encoder.config.hidden_size) * len(self.cfg["layers"])

    def __call__(self, doc: Doc) -> Doc:
        return next(self.pipe([doc]))

    def pipe(self, docs: Iterable[Doc], batch_size: int = 8) -> Iterator[Doc]:
        for batch in minibatch(docs, size=batch_size):
            keys = [self._key(doc) for doc in batch] if self.cache_size > 0 else [None] * len(batch)
            found = [self._cache.get(key) if key else None for key in keys]
            missing = [i for i, features in enumerate(found) if features is None]
            for i, features in zip(missing, self.features([batch[i] for i in missing]) if missing else []):
                found[i] = features
            for doc, key, features in zip(batch, keys, found):
                if key:  # newest last: the oldest note leaves first when the cache is full
                    self._cache[key] = features
                    self._cache.move_to_end(key)
                    while len(self._cache) > self.cache_size:
                        self._cache.popitem(last=False)
                doc._.set(EXTENSION, features)
                yield doc

    def _key(self, doc: Doc) -> str:
        tokens = "\x00".join(f"{token.idx}:{len(token.text)}" for token in doc)
        return hashlib.sha256(f"{doc.text}\x01{tokens}".encode("utf8", "surrogatepass")).hexdigest()

    def features(self, docs: Sequence[Doc]) -> List[numpy.ndarray]:
        """The features of each doc (float16 [len(doc), width]), computed now."""
        encoder, tokenizer = self.encoder, self._tokenizer
        pieces = [tokenizer(doc.text, add_special_tokens=False, return_offsets_mapping=True,
                            verbose=False) for doc in docs]
        vectors = self._piece_vectors([piece["input_ids"] for piece in pieces])
        return [pool_to_tokens(doc, piece["offset_mapping"], piece_vectors).astype("float16")
                for doc, piece, piece_vectors in zip(docs, pieces, vectors)]

    # Long: one pass over all windows of the batch's docs, then each piece's mean over windows.
    def _piece_vectors(self, ids_per_doc: Sequence[List[int]]) -> List[numpy.ndarray]:
        import torch

        tokenizer, cfg = self._tokenizer, self.cfg
        jobs = [(d, start, end) for d, ids in enumerate(ids_per_doc)
                for start, end in windows(len(ids), cfg["window"] - 2, cfg["stride"])]
        sums = [numpy.zeros((len(ids), self.width), dtype="float32") for ids in ids_per_doc]
        counts = [numpy.zeros((len(ids), 1), dtype="float32") for ids in ids_per_doc]
        prefix = tokenizer.build_inputs_with_special_tokens([-1]).index(-1)  # [CLS]-like tokens before the text
        autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=self._use_bf16())
        for batch in minibatch(jobs, size=cfg["batch_size"]):
            inputs = [tokenizer.build_inputs_with_special_tokens(ids_per_doc[d][start:end])
                      for d, start, end in batch]
            length = max(len(ids) for ids in inputs)
            pad = tokenizer.pad_token_id or 0
            input_ids = torch.tensor([ids + [pad] * (length - len(ids)) for ids in inputs])
            mask = torch.tensor([[1] * len(ids) + [0] * (length - len(ids)) for ids in inputs])
            with torch.no_grad(), autocast:
                hidden = self.encoder(input_ids=input_ids, attention_mask=mask, output_hidden_states=True).hidden_states
            stacked = torch.cat([hidden[layer] for layer in cfg["layers"]], dim=-1).float().numpy()
            for row, (d, start, end) in enumerate(batch):
                sums[d][start:end] += stacked[row, prefix:prefix + end - start]
                counts[d][start:end] += 1
        return [total / numpy.maximum(count, 1) for total, count in zip(sums, counts)]

    def _use_bf16(self) -> bool:
        precision = self.cfg["precision"]
        if precision == "auto":
            import torch

            return bool(getattr(torch.backends.cpu, "get_cpu_capability", lambda: "")() in ("AVX512", "AMX"))
        return precision == "bf16"

    def to_disk(self, path, *, exclude: Iterable[str] = tuple()) -> None:
        import torch

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        # float16 on disk, from a copy of the weights: the encoder in memory keeps float32
        half = {name: tensor.to(torch.float16) for name, tensor in self.encoder.state_dict().items()}
        self.encoder.save_pretrained(path / ENCODER_DIR, state_dict=half)
        self._tokenizer.save_pretrained(path / ENCODER_DIR)

    def from_disk(self, path, *, exclude: Iterable[str] = tuple()) -> "EncoderFeatures":
        self._load(str(Path(path) / ENCODER_DIR))
        return self


@Language.factory(
    "deid_encoder_features",
    default_config={"model": "cache/encoders/multilingual-e5-small", "layers": [-4, -3, -2, -1],
                    "window": 256, "stride": 192, "batch_size": 8, "precision": "auto", "cache_size": 0},
)
def make_encoder_features(nlp: Language, name: str, model: str, layers: List[int], window: int, stride: int,
                          batch_size: int, precision: str, cache_size: int) -> EncoderFeatures:
    """The `deid_encoder_features` component (module docstring)."""
    return EncoderFeatures(nlp, name, model, layers, window, stride, batch_size, precision, cache_size)
