"""The LoRA training behind `adapt`: blocks of tokens, a memory-lean loss, the training loop.

Each note is cut into blocks of `seq_len` tokens, every block starting with <bos> (the
last one of a note ends with <eos> and is padded). With 4-bit QLoRA where a CUDA device and
bitsandbytes are present, plain LoRA elsewhere (on a CPU, fp32). LoRA is set up in one place
(`train_adapter`), as in peft's examples.
"""
import importlib
import importlib.util
import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch
from tqdm import tqdm
from wasabi import msg

from deid_synthesis.generation.adapt import AdaptError
from deid_synthesis.generation.causal_lm import load_tokenizer
from deid_synthesis.generation.packaged import resolve_base
from deid_synthesis.generation.sampler import backbone


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
        hidden = backbone(base)(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
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


def linear_schedule(optimizer, warmup: float, total_steps: int):
    """Linear warm-up over the first `warmup` share of the steps, then linear decay to 0.

    transformers' `get_linear_schedule_with_warmup`, one step ahead: the adapter's schedule
    has always given its first step the learning rate (1 / (n_warmup + 1)) x peak rather than
    0, and decayed to (total_steps - s) / (total_steps - n_warmup) at step s. That is
    transformers' schedule over n_warmup + 1 warm-up and total_steps + 1 steps, started at
    its step 1 (`last_epoch=0`, which needs each group's `initial_lr`): the same values, step
    for step, as the hand-written lambda it replaces.

    optimizer (torch.optim.Optimizer): the optimizer (its lr is the peak).
    warmup (float): share of the steps with warm-up.
    total_steps (int): optimizer steps of the run.
    RETURNS (torch.optim.lr_scheduler.LambdaLR): step it after each optimizer step.
    """
    from transformers import get_linear_schedule_with_warmup

    n_warmup = int(warmup * total_steps)
    for group in optimizer.param_groups:
        group.setdefault("initial_lr", group["lr"])
    return get_linear_schedule_with_warmup(optimizer, n_warmup + 1, total_steps + 1, last_epoch=0)


def _train_steps(model, blocks: Dict[str, torch.Tensor], loss_fn, optimizer, schedule, hyper: Dict,
                 total_steps: int, silent: bool) -> List[List[float]]:
    """The training loop: batches drawn from a seeded permutation of the blocks; the loss curve."""
    batch_size, grad_accum = hyper["batch_size"], hyper["grad_accum"]
    device = next(model.parameters()).device
    n_blocks = blocks["input_ids"].shape[0]
    # bfloat16 autocast on a CPU: ~1.4x faster steps on CPUs with AMX / AVX512-BF16.
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=hyper["bf16"] and device.type == "cpu")
    rng = torch.Generator().manual_seed(hyper["seed"])
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
    return curve


def train_adapter(texts: Sequence[str], output_dir: Path, hyper: Dict, base_model: str, cache_dir: Path,
                  quantization: str, token_ids: List[int], described: str, silent: bool = False) -> Dict:
    """Train LoRA on the texts and save the adapter (peft's files) in output_dir.

    texts (Sequence[str]): the chosen training notes.
    hyper (Dict): the manifest's hyper-parameters (rank, alpha, ..., seed, vocabulary, bf16).
    quantization (str): auto, 4bit or none.
    token_ids (List[int]): the adaptation text's tokens (the loss's vocabulary with "corpus").
    described (str): what was chosen, for the opening message ("15/30 documents (50%)").
    RETURNS (Dict): the manifest's training fields (quantization, device, ..., loss_curve, versions).
    """
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(hyper["seed"])
    model, tokenizer, used_quantization = load_for_training(base_model, cache_dir, quantization)
    lora = LoraConfig(r=hyper["rank"], lora_alpha=hyper["alpha"], lora_dropout=hyper["dropout"],
                      target_modules=hyper["target_modules"], task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    blocks = make_blocks(tokenizer, texts, hyper["seq_len"])
    n_blocks = blocks["input_ids"].shape[0]
    batch_size, grad_accum = hyper["batch_size"], hyper["grad_accum"]
    steps_per_epoch = max(1, math.ceil(n_blocks / (batch_size * grad_accum)))
    max_steps = hyper["max_steps"]
    total_steps = max_steps if max_steps > 0 else max(1, math.ceil(hyper["epochs"] * steps_per_epoch))
    # e.g. 8 blocks x 256 tokens x 1 accumulation = 2,048 tokens per optimizer step
    if not silent:
        msg.info(f"{described}, {n_blocks} blocks of {hyper['seq_len']} tokens, {n_trainable:,} trainable "
                 f"parameters, {total_steps} steps of {batch_size}x{grad_accum} blocks, quantization {used_quantization}")
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=hyper["learning_rate"],
                                  weight_decay=0.0)
    schedule = linear_schedule(optimizer, hyper["warmup"], total_steps)
    device = next(model.parameters()).device
    loss_fn = lm_loss(token_ids if hyper["vocabulary"] == "corpus" else None, device)
    curve = _train_steps(model, blocks, loss_fn, optimizer, schedule, hyper, total_steps, silent)
    model.save_pretrained(output_dir)
    return {"quantization": used_quantization, "device": str(device), "trainable_parameters": n_trainable,
            "n_tokens": int(blocks["attention_mask"].sum()), "n_blocks": n_blocks, "steps": total_steps,
            "loss_curve": curve,
            "versions": {m: importlib.import_module(m).__version__ for m in ("torch", "transformers", "peft")}}
