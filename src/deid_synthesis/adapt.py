"""Adapt a causal LM to the text of the gold training notes with LoRA (no labels).

The paper adapts its generator with QLoRA (rank 8, alpha 32) on plain next-token language
modelling over the gold training split, and ablates the share of training documents used
(0, 5, 25, 50, 95 %). Here the documents are shuffled once with the seed and the first
`fraction` of them are used, so a given seed always picks the same documents and a smaller
fraction is a subset of a larger one. A fraction of 0 writes a manifest and no adapter: the
generator is then the base model.

Each note is cut into blocks of `seq_len` tokens, every block starting with <bos> (the
last one of a note ends with <eos> and is padded). With 4-bit QLoRA where a CUDA device and
bitsandbytes are present, plain LoRA elsewhere (on a CPU, fp32).

Writes OUTPUT/adapter_config.json + adapter_model.safetensors (peft), OUTPUT/token_ids.json
(the token ids of the adaptation text, for the optional restricted output vocabulary of
generation) and OUTPUT/manifest.json (base model, fraction, hash of the documents used,
hyper-parameters, loss curve, time). No text is printed or stored besides the adapter.
"""
import hashlib
import importlib
import importlib.util
import math
import random
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import spacy
import srsly
import torch
import typer
from spacy.tokens import DocBin
from tqdm import tqdm
from wasabi import msg

from deid_synthesis.causal_lm import DEFAULT_BASE, DEFAULT_CACHE, MANIFEST, load_tokenizer, resolve_base
from deid_synthesis.generation import _backbone, corpus_token_ids

DEFAULT_TARGETS = "q_proj,k_proj,v_proj,o_proj"


class AdaptError(ValueError):
    pass


def read_texts(path: Path) -> List[Dict[str, str]]:
    """[{"id", "text"}] of a DocBin, in file order; the id falls back to the position."""
    path = Path(path)
    if not path.exists():
        raise AdaptError(f"{path}: no such corpus file (run the convert step first)")
    try:
        docs = list(DocBin(store_user_data=True).from_disk(path).get_docs(spacy.blank("xx").vocab))
    except Exception as err:  # a DocBin that does not load: name the file
        raise AdaptError(f"{path}: not a spaCy DocBin ({err})") from err
    return [{"id": str(doc.user_data.get("id", i)), "text": doc.text} for i, doc in enumerate(docs)]


def select_documents(n_docs: int, fraction: float, seed: int) -> List[int]:
    """Indices of the documents used: the first `fraction` of a seeded shuffle, sorted."""
    if not 0 <= fraction <= 1:
        raise AdaptError(f"fraction must be between 0 and 1, not {fraction}")
    order = list(range(n_docs))
    random.Random(seed).shuffle(order)
    n = round(fraction * n_docs)
    if fraction > 0 and n == 0:
        n = 1
    return sorted(order[:n])


def documents_hash(ids: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(sorted(ids)).encode("utf8")).hexdigest()[:16]


def make_blocks(tokenizer, texts: Sequence[str], seq_len: int) -> Dict[str, torch.Tensor]:
    """Cut each text into blocks of at most seq_len tokens: input_ids, attention_mask, labels.

    Every block starts with <bos>, also the ones that continue a note: Gemma's loss is about
    twice as high on text that does not start with <bos> (measured: 6.2 vs 2.9 nats on a
    MEDDOCAN block), so packing notes into a headless stream would teach the adapter the
    wrong thing. The last block of a note ends with <eos> and is padded.
    """
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    step = seq_len - len(bos)
    if step < 1:
        raise AdaptError(f"seq_len {seq_len} is too short")
    chunks: List[List[int]] = []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
        chunks.extend(bos + ids[i : i + step] for i in range(0, len(ids), step))
    ids = torch.full((max(1, len(chunks)), seq_len), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for b, chunk in enumerate(chunks):
        ids[b, : len(chunk)] = torch.tensor(chunk)
        mask[b, : len(chunk)] = 1
    labels = ids.masked_fill(mask == 0, -100)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def lm_loss(token_ids: Optional[Sequence[int]], device, chunk: int = 256):
    """Next-token loss, computed without holding all the logits at once.

    The output layer of Gemma-3 has 262,144 rows: for 8 x 256 tokens the logits alone are
    2 GB in float32, and transformers' loss keeps several copies. Here the output layer and
    the cross-entropy run over chunks of `chunk` positions, each recomputed in the backward
    pass (activation checkpointing). One step of 8 x 256 tokens, LoRA on Gemma-3-270m:
    11.6 GB peak memory with transformers' loss, 4.8 GB with chunks of 256, and no slower
    (the recomputation is paid back by smaller, cache-friendlier matrices).

    With `token_ids` (`--vocabulary corpus`) the softmax runs over the adaptation text's
    tokens only (~14k for MEDDOCAN): a step costs about a third, and the model is trained
    for what generation with the restricted vocabulary samples from (a distribution
    renormalised over those tokens). That loss is not comparable with the full one.
    """
    from torch.utils.checkpoint import checkpoint

    ids = remap = None
    if token_ids:
        ids = torch.tensor(sorted(token_ids), dtype=torch.long, device=device)
        remap = torch.full((int(ids.max()) + 1,), -100, dtype=torch.long, device=device)
        remap[ids] = torch.arange(len(ids), device=device)

    def chunk_loss(hidden, targets, weight, cap):
        logits = hidden @ weight.T
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return torch.nn.functional.cross_entropy(logits.float(), targets, ignore_index=-100, reduction="sum")

    def loss(model, batch):
        base = model.get_base_model()
        hidden = _backbone(base)(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        hidden = hidden[:, :-1].reshape(-1, hidden.shape[-1])
        labels = batch["labels"][:, 1:].reshape(-1)
        weight = base.get_output_embeddings().weight
        if ids is not None:
            weight = weight[ids]
            labels = torch.where(labels >= 0, remap[labels.clamp(min=0, max=len(remap) - 1)], labels)
        cap = getattr(base.config, "final_logit_softcapping", None)
        total = hidden.new_zeros((), dtype=torch.float32)
        for start in range(0, hidden.shape[0], chunk):
            part = (hidden[start : start + chunk], labels[start : start + chunk], weight, cap)
            total = total + (checkpoint(chunk_loss, *part, use_reentrant=False) if ids is None else chunk_loss(*part))
        return total / (labels != -100).sum().clamp(min=1)

    return loss


def qlora_available() -> bool:
    return torch.cuda.is_available() and importlib.util.find_spec("bitsandbytes") is not None


def load_for_training(base_model: str, cache_dir: Path, quantization: str):
    """(model, tokenizer, quantization used): 4-bit on CUDA with bitsandbytes, else full precision."""
    from transformers import AutoModelForCausalLM

    use_4bit = quantization == "4bit" or (quantization == "auto" and qlora_available())
    if use_4bit and not qlora_available():
        raise AdaptError("4-bit QLoRA needs a CUDA device and bitsandbytes: use --quantization none")
    path = resolve_base(base_model, cache_dir)
    kwargs = {"attn_implementation": "eager"}  # Gemma-3 trains with eager attention
    if use_4bit:
        from peft import prepare_model_for_kbit_training
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16,
            bnb_4bit_use_double_quant=True)
        model = AutoModelForCausalLM.from_pretrained(path, device_map={"": 0}, **kwargs)
        model = prepare_model_for_kbit_training(model)
    else:
        dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
        model = AutoModelForCausalLM.from_pretrained(path, torch_dtype=dtype, **kwargs)
        if torch.cuda.is_available():
            model.to("cuda")
    return model, load_tokenizer(base_model, cache_dir), "4bit" if use_4bit else "none"


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
    learning_rate: float = 2e-4,
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
) -> Dict:
    """Train the adapter and write it with its manifest; returns the manifest."""
    start = time.perf_counter()
    if threads:
        torch.set_num_threads(threads)
    if quantization not in ("auto", "4bit", "none"):
        raise AdaptError(f"unknown quantization '{quantization}': use auto, 4bit or none")
    if vocabulary not in ("full", "corpus"):
        raise AdaptError(f"unknown vocabulary '{vocabulary}': use full or corpus")
    docs = read_texts(train_path)
    chosen = [docs[i] for i in select_documents(len(docs), fraction, seed)]
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("adapter_config.json", "adapter_model.safetensors", MANIFEST):
        (output_dir / stale).unlink(missing_ok=True)
    hyper = {"rank": rank, "alpha": alpha, "dropout": dropout, "target_modules": target_modules.split(","),
             "learning_rate": learning_rate, "epochs": epochs, "max_steps": max_steps, "seq_len": seq_len,
             "batch_size": batch_size, "grad_accum": grad_accum, "warmup": warmup, "seed": seed,
             "vocabulary": vocabulary, "bf16": bf16}
    manifest = {"base_model": str(base_model), "train": str(train_path), "fraction": fraction,
                "n_documents": len(chosen), "n_documents_total": len(docs),
                "documents_hash": documents_hash([d["id"] for d in chosen]), "hyperparameters": hyper,
                "adapter": bool(chosen)}
    tokenizer = load_tokenizer(base_model, cache_dir)
    token_ids = corpus_token_ids(tokenizer, [d["text"] for d in chosen]) if chosen else []
    srsly.write_json(output_dir / "token_ids.json", token_ids)
    if not chosen:
        manifest.update({"loss_curve": [], "seconds": round(time.perf_counter() - start, 1), "quantization": None})
        srsly.write_json(output_dir / MANIFEST, manifest)
        if not silent:
            msg.info(f"Fraction 0: no adaptation, the base model is the generator → {output_dir / MANIFEST}")
        return manifest

    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    model, tokenizer, used_quantization = load_for_training(base_model, cache_dir, quantization)
    lora = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=hyper["target_modules"],
                      task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    blocks = make_blocks(tokenizer, [d["text"] for d in chosen], seq_len)
    n_blocks = blocks["input_ids"].shape[0]
    steps_per_epoch = max(1, math.ceil(n_blocks / (batch_size * grad_accum)))
    total_steps = max_steps if max_steps > 0 else max(1, math.ceil(epochs * steps_per_epoch))
    # e.g. 8 blocks x 256 tokens x 1 accumulation = 2,048 tokens per optimizer step
    if not silent:
        msg.info(f"{len(chosen)}/{len(docs)} documents ({fraction:.0%}), {n_blocks} blocks of {seq_len} tokens, "
                 f"{n_trainable:,} trainable parameters, {total_steps} steps of {batch_size}x{grad_accum} blocks, "
                 f"quantization {used_quantization}")
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=learning_rate,
                                  weight_decay=0.0)
    n_warmup = int(warmup * total_steps)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / (n_warmup + 1) if s < n_warmup else max(0.0, (total_steps - s) / max(1, total_steps - n_warmup)))
    device = next(model.parameters()).device
    loss_fn = lm_loss(token_ids if vocabulary == "corpus" else None, device)
    # bfloat16 autocast on a CPU: ~1.4x faster steps on CPUs with AMX / AVX512-BF16.
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16 and device.type == "cpu")
    rng = torch.Generator().manual_seed(seed)
    order: List[int] = []
    curve = []
    model.train()
    bar = tqdm(range(total_steps), desc="adapt", unit="step", disable=silent)
    for step in bar:
        step_loss = 0.0
        for _ in range(grad_accum):
            if len(order) < batch_size:
                order += torch.randperm(n_blocks, generator=rng).tolist()
            idx, order = order[:batch_size], order[batch_size:]
            batch = {k: v[idx].to(device) for k, v in blocks.items()}
            with autocast:
                loss = loss_fn(model, batch) / grad_accum
            loss.backward()
            step_loss += loss.item()
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        curve.append([step + 1, round(step_loss, 4)])
        bar.set_postfix(loss=f"{step_loss:.3f}")
    model.save_pretrained(output_dir)
    manifest.update({
        "quantization": used_quantization, "device": str(device), "trainable_parameters": n_trainable,
        "n_tokens": int(blocks["attention_mask"].sum()), "n_blocks": n_blocks, "steps": total_steps,
        "loss_curve": curve, "seconds": round(time.perf_counter() - start, 1),
        "versions": {m: importlib.import_module(m).__version__ for m in ("torch", "transformers", "peft")},
    })
    srsly.write_json(output_dir / MANIFEST, manifest)
    if not silent:
        msg.good(f"Adapted on {len(chosen)} documents in {manifest['seconds'] / 60:.1f} min "
                 f"(loss {curve[0][1]:.3f} → {curve[-1][1]:.3f}) → {output_dir}")
    return manifest


def main(
    train_path: Path = typer.Argument(..., exists=True, dir_okay=False, help="Gold training DocBin (text only is used)"),
    output_dir: Path = typer.Argument(..., help="Folder for the adapter, token_ids.json and manifest.json"),
    base_model: str = typer.Option(DEFAULT_BASE, "--base-model", "-m", help="Hub name, local folder, or gemma3-270m (packaged)"),
    fraction: float = typer.Option(1.0, "--fraction", "-f", help="Share of training documents used (0 = no adaptation)"),
    seed: int = typer.Option(0, "--seed", help="Seed of the document choice, LoRA init and batch order"),
    rank: int = typer.Option(8, "--rank", "-r", help="LoRA rank"),
    alpha: int = typer.Option(32, "--alpha", help="LoRA alpha"),
    dropout: float = typer.Option(0.05, "--dropout", help="LoRA dropout"),
    target_modules: str = typer.Option(DEFAULT_TARGETS, "--target-modules", help="Comma-separated module names"),
    learning_rate: float = typer.Option(2e-4, "--learning-rate", "--lr", help="Peak learning rate (AdamW)"),
    epochs: float = typer.Option(1.0, "--epochs", help="Passes over the blocks (ignored when --max-steps > 0)"),
    max_steps: int = typer.Option(0, "--max-steps", help="Optimizer steps (0: from --epochs)"),
    seq_len: int = typer.Option(256, "--seq-len", help="Tokens per training block"),
    batch_size: int = typer.Option(8, "--batch-size", help="Blocks per forward pass"),
    grad_accum: int = typer.Option(1, "--grad-accum", help="Forward passes per optimizer step"),
    warmup: float = typer.Option(0.05, "--warmup", help="Share of steps with linear warm-up"),
    quantization: str = typer.Option("auto", "--quantization", help="auto (4-bit when CUDA + bitsandbytes), 4bit or none"),
    vocabulary: str = typer.Option("full", "--vocabulary", help="full, or corpus: softmax over the adaptation text's tokens only (faster; pairs with generation's restricted vocabulary)"),
    precision: str = typer.Option("fp32", "--precision", help="fp32, or bf16 (autocast on the CPU: faster where AMX / AVX512-BF16)"),
    cache_dir: Path = typer.Option(DEFAULT_CACHE, "--cache-dir", help="Where packaged models are prepared"),
    threads: int = typer.Option(0, "--threads", help="CPU threads for torch (0: default)"),
):
    """Train a LoRA adapter on a fraction of the gold training notes."""
    if precision not in ("fp32", "bf16"):
        msg.fail(f"unknown precision '{precision}': use fp32 or bf16", exits=1)
    try:
        adapt(train_path, output_dir, base_model, fraction, seed, rank, alpha, dropout, target_modules, learning_rate,
              epochs, max_steps, seq_len, batch_size, grad_accum, warmup, quantization, vocabulary, precision == "bf16", cache_dir,
              threads)
    except (AdaptError, OSError) as err:
        msg.fail(str(err), exits=1)


if __name__ == "__main__":
    typer.run(main)
