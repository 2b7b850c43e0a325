"""Adapt a causal LM to the text of the gold training notes with LoRA (no labels).

The paper adapts its generator with QLoRA (rank 8, alpha 32) on plain next-token language
modelling over the gold training split, and ablates the share of training documents used
(0, 5, 25, 50, 95 %). Here the documents are shuffled once with the seed and the first
`fraction` of them are used, so a given seed always picks the same documents and a smaller
fraction is a subset of a larger one. A fraction of 0 writes a manifest and no adapter: the
generator is then the base model.

Writes OUTPUT/adapter_config.json + adapter_model.safetensors (peft), OUTPUT/token_ids.json
(the token ids of the adaptation text, for the optional restricted output vocabulary of
generation) and OUTPUT/manifest.json (base model, fraction, hash of the documents used,
hyper-parameters, loss curve, time). No text is printed or stored besides the adapter.

This module is plain Python (the document choice is used by `privacy` and `grid`); the
training itself, with torch and peft, is `lora`.
"""
import hashlib
import random
import time
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import srsly
from wasabi import msg

from clinical_deid.io import DataError, atomic_open, read_docbin
from deid_synthesis.generation.manifest import DEFAULT_BASE, DEFAULT_CACHE, MANIFEST

DEFAULT_TARGETS = "q_proj,k_proj,v_proj,o_proj"
PRECISIONS = ("fp32", "bf16", "auto")
# Made-up canary records planted by `--canaries` (privacy.canaries), beside the adapter.
CANARIES = "canaries.json"
# The peak learning rate of the published runs (the paper's QLoRA setting).
DEFAULT_LEARNING_RATE = 2e-4
# CPU flags of native bfloat16 arithmetic (AVX512-BF16, AMX): without them, bfloat16 autocast is
# emulated and slower than float32.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


class AdaptError(ValueError):
    """Options or input that adaptation cannot use (the message names the file or option)."""


def cpu_has_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether the CPU does bfloat16 natively (Linux's CPU flags; False where they cannot be read)."""
    try:
        flags = cpuinfo.read_text(encoding="utf-8", errors="replace").split()
    except OSError:
        return False
    return any(flag in flags for flag in BF16_CPU_FLAGS)


def resolve_precision(precision: str) -> bool:
    """Whether adaptation runs in bfloat16 autocast.

    precision (str): fp32, bf16, or auto (bf16 where the CPU has AVX512-BF16 or AMX, else fp32;
        the autocast applies on the CPU only, so auto on a GPU machine is fp32 there too).
    RETURNS (bool): True for bfloat16.
    """
    if precision not in PRECISIONS:
        raise AdaptError(f"unknown precision '{precision}': use {', '.join(PRECISIONS)}")
    return precision == "bf16" or (precision == "auto" and cpu_has_bf16())


def read_texts(path: Path) -> List[Dict[str, str]]:
    """The texts of a DocBin, in file order.

    path (Path): the corpus (.spacy).
    RETURNS (List[Dict[str, str]]): [{"id", "text"}]; the id falls back to the position.
    """
    try:
        docs = read_docbin(path)
    except DataError as err:  # the file and what is wrong with it, no text
        raise AdaptError(f"{err} (run the convert step first)") from None
    return [{"id": str(doc.user_data.get("id", i)), "text": doc.text} for i, doc in enumerate(docs)]


def select_documents(n_docs: int, fraction: float, seed: int) -> List[int]:
    """Indices of the documents used: the first `fraction` of a seeded shuffle, sorted.

    n_docs (int): documents in the split.
    fraction (float): share used, in [0, 1]; a positive share uses at least one document.
    seed (int): the shuffle's seed.
    RETURNS (List[int]): the chosen indices, sorted.
    """
    if not 0 <= fraction <= 1:
        raise AdaptError(f"fraction must be between 0 and 1, not {fraction}")
    order = list(range(n_docs))
    random.Random(seed).shuffle(order)
    n = round(fraction * n_docs)
    if fraction > 0 and n == 0:
        n = 1
    return sorted(order[:n])


def documents_hash(ids: Sequence[str]) -> str:
    """Short hash of a set of document ids: names the documents an adapter was trained on."""
    return hashlib.sha256("\n".join(sorted(ids)).encode("utf8")).hexdigest()[:16]


def write_json(data, path: Path) -> None:
    """srsly.write_json's format, written atomically."""
    with atomic_open(path) as handle:
        handle.write(srsly.json_dumps(data, indent=2))


def plan_adapter(train_path: Path, output_dir: Path, base_model: str, fraction: float,
                 hyper: Dict) -> Tuple[List[Dict[str, str]], List[Dict[str, str]], Dict]:
    """Choose the documents and start the manifest; clears the adapter files of an earlier run.

    RETURNS (Tuple[List, List, Dict]): all documents, the chosen ones, the manifest so far.
    """
    docs = read_texts(train_path)
    chosen = [docs[i] for i in select_documents(len(docs), fraction, hyper["seed"])]
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("adapter_config.json", "adapter_model.safetensors", MANIFEST):
        (output_dir / stale).unlink(missing_ok=True)
    manifest = {"base_model": str(base_model), "train": str(train_path), "fraction": fraction,
                "n_documents": len(chosen), "n_documents_total": len(docs),
                "documents_hash": documents_hash([d["id"] for d in chosen]), "hyperparameters": hyper,
                "adapter": bool(chosen)}
    return docs, chosen, manifest


def add_canaries(texts: List[str], output_dir: Path, manifest: Dict, per_repeat: int, repeats: Sequence[int],
                 seed: int, lang: str) -> List[str]:
    """The adaptation texts with canary records mixed in (`privacy.canaries`); writes them to
    OUTPUT/canaries.json and records how many in the manifest."""
    from deid_synthesis.privacy.canaries import make_canaries, with_canaries

    planted = make_canaries(per_repeat, repeats, seed, lang, avoid_text="\n".join(texts))
    write_json(planted, output_dir / CANARIES)
    manifest["canaries"] = {"per_repeat": per_repeat, "repeats": list(repeats), "file": CANARIES,
                            "documents_added": sum(c["repeats"] for c in planted)}
    return with_canaries(texts, planted, seed)


# Long: 25 keyword options, one a flag of its command line (the body is about 40 lines).
def adapt(
    train_path: Path,
    output_dir: Path,
    base_model: str = DEFAULT_BASE,
    fraction: float = 1.0,
    seed: int = 0,
    rank: int = 8,
    alpha: int = 32,
    dropout: float = 0.05,
    target_modules: str = DEFAULT_TARGETS,
    learning_rate: float = DEFAULT_LEARNING_RATE,
    epochs: float = 1.0,
    max_steps: int = 0,
    seq_len: int = 256,
    batch_size: int = 8,
    grad_accum: int = 1,
    warmup: float = 0.05,
    quantization: str = "auto",
    vocabulary: str = "full",
    bf16: bool = False,
    cache_dir: Path = DEFAULT_CACHE,
    threads: int = 0,
    silent: bool = False,
    canaries: int = 0,
    canary_repeats: Sequence[int] = (1, 4, 16),
    lang: str = "es",
) -> Dict:
    """Train the adapter and write it with its manifest (options as `python -m scripts.adapt` names them).

    train_path (Path): the gold training DocBin (text only); output_dir (Path): the adapter folder.
    quantization (str): auto (4-bit with CUDA and bitsandbytes), 4bit or none. vocabulary (str): full,
    or corpus (softmax over the adaptation text's tokens only). silent (bool): no messages, no bar.
    canaries (int): made-up canary records added per repetition count in `canary_repeats`, each as
    often as its count (`privacy.canaries`; written to OUTPUT/canaries.json), in `lang`'s template.
    RETURNS (Dict): the manifest.
    """
    start = time.perf_counter()
    if threads:
        import torch

        torch.set_num_threads(threads)
    if quantization not in ("auto", "4bit", "none"):
        raise AdaptError(f"unknown quantization '{quantization}': use auto, 4bit or none")
    if vocabulary not in ("full", "corpus"):
        raise AdaptError(f"unknown vocabulary '{vocabulary}': use full or corpus")
    hyper = {"rank": rank, "alpha": alpha, "dropout": dropout, "target_modules": target_modules.split(","),
             "learning_rate": learning_rate, "epochs": epochs, "max_steps": max_steps, "seq_len": seq_len,
             "batch_size": batch_size, "grad_accum": grad_accum, "warmup": warmup, "seed": seed,
             "vocabulary": vocabulary, "bf16": bf16}
    docs, chosen, manifest = plan_adapter(train_path, output_dir, base_model, fraction, hyper)
    output_dir = Path(output_dir)
    from deid_synthesis.generation.causal_lm import load_tokenizer
    from deid_synthesis.generation.samples import corpus_token_ids

    tokenizer = load_tokenizer(base_model, cache_dir)
    texts = [d["text"] for d in chosen]
    (output_dir / CANARIES).unlink(missing_ok=True)
    if canaries and chosen:
        texts = add_canaries(texts, output_dir, manifest, canaries, canary_repeats, seed, lang)
    token_ids = corpus_token_ids(tokenizer, texts) if chosen else []
    write_json(token_ids, output_dir / "token_ids.json")
    if not chosen:
        manifest.update({"loss_curve": [], "seconds": round(time.perf_counter() - start, 1), "quantization": None})
        write_json(manifest, output_dir / MANIFEST)
        if not silent:
            msg.info(f"Fraction 0: no adaptation, the base model is the generator → {output_dir / MANIFEST}")
        return manifest
    from deid_synthesis.generation.lora import train_adapter

    trained = train_adapter(texts, output_dir, hyper, base_model, cache_dir, quantization,
                            token_ids, f"{len(chosen)}/{len(docs)} documents ({fraction:.0%})", silent)
    versions = trained.pop("versions")
    manifest.update({**trained, "seconds": round(time.perf_counter() - start, 1), "versions": versions})
    write_json(manifest, output_dir / MANIFEST)
    if not silent:
        curve = manifest["loss_curve"]
        msg.good(f"Adapted on {len(chosen)} documents in {manifest['seconds'] / 60:.1f} min "
                 f"(loss {curve[0][1]:.3f} → {curve[-1][1]:.3f}) → {output_dir}")
    return manifest
