"""Membership inference on the adapter: does the adapted model tell the notes it was adapted on
from notes it never saw?

A reference-model attack (the LiRA family's cheapest member, as in Carlini et al. 2022 and
Mireshghallah et al. 2022 for language models): each note's mean next-token loss under the
adapted model, minus its loss under the base model (the reference), so that a note that is
easy for any model does not look remembered. The score is `base loss - adapted loss`: high
for notes the adapter learned. Members are the notes the adapter was adapted on (its
manifest), non-members the dev notes (the same distribution, never adapted on). The figures
are the ROC AUC (0.5: the attacker guesses; 1: it always knows) and the true-positive rate at
1 % false positives (what the attacker finds when it may hardly ever be wrong).

Losses are computed as the adapter was trained (`lora.make_blocks`: blocks of `seq_len`
tokens, each starting with <bos>), over the same output vocabulary (with `vocabulary:
corpus`, the adaptation text's tokens; a target outside it is skipped, for both models).
Counts and scores only: no text leaves this module. The ROC is computed with numpy (two
figures and one curve do not justify scikit-learn as a dependency).
"""
import random
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

# False-positive rate at which the attack's true-positive rate is reported.
LOW_FPR = 0.01


def roc_curve(member_scores: Sequence[float], other_scores: Sequence[float]) -> Tuple[np.ndarray, np.ndarray]:
    """(false-positive rates, true-positive rates) of the threshold rule "score >= t" over every
    distinct score, from (0, 0) to (1, 1); tied scores move both rates at once."""
    scores = np.concatenate([np.asarray(member_scores, float), np.asarray(other_scores, float)])
    is_member = np.concatenate([np.ones(len(member_scores)), np.zeros(len(other_scores))])
    order = np.argsort(-scores, kind="stable")
    scores, is_member = scores[order], is_member[order]
    last_of_tie = np.r_[np.diff(scores) != 0, True]
    tp = np.cumsum(is_member)[last_of_tie]
    fp = np.cumsum(1 - is_member)[last_of_tie]
    return np.r_[0.0, fp / max(len(other_scores), 1)], np.r_[0.0, tp / max(len(member_scores), 1)]


def attack_figures(member_scores: Sequence[float], other_scores: Sequence[float], low_fpr: float = LOW_FPR) -> Dict:
    """ROC AUC (trapezoids: ties count half) and the true-positive rate at `low_fpr` false positives.

    member_scores, other_scores (Sequence[float]): the attack's score of each member and
        non-member (higher: more likely a member).
    RETURNS (Dict): auc, tpr_at_low_fpr, low_fpr, members, non_members, roc ({fpr, tpr}).
    """
    if not len(member_scores) or not len(other_scores):
        raise ValueError("membership inference needs at least one member and one non-member note")
    fpr, tpr = roc_curve(member_scores, other_scores)
    auc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    return {"auc": round(auc, 4), "tpr_at_low_fpr": round(float(tpr[fpr <= low_fpr].max()), 4), "low_fpr": low_fpr,
            "members": len(member_scores), "non_members": len(other_scores),
            "roc": {"fpr": [round(float(x), 5) for x in fpr], "tpr": [round(float(x), 5) for x in tpr]}}


def sample_notes(n_notes: int, max_notes: int, seed: int) -> List[int]:
    """At most `max_notes` of `n_notes` indices, seeded (all of them when max_notes is 0), sorted."""
    indices = list(range(n_notes))
    if 0 < max_notes < n_notes:
        indices = sorted(random.Random(seed).sample(indices, max_notes))
    return indices


def note_losses(model, tokenizer, texts: Sequence[str], seq_len: int, token_ids: Optional[Sequence[int]] = None,
                batch_size: int = 8, bf16: bool = False, progress: bool = False) -> List[float]:
    """Each text's mean next-token loss (nats per predicted token) under a causal LM.

    model: the causal LM (eval mode; the adapter merged or not).
    texts (Sequence[str]): the notes.
    seq_len (int): tokens per block, as the adapter was trained.
    token_ids (Optional[Sequence[int]]): the output vocabulary (None: the model's own).
    bf16 (bool): bfloat16 autocast on the CPU.
    RETURNS (List[float]): one loss per text (nan for a text without a predicted token).
    """
    import torch
    from tqdm import tqdm

    from deid_synthesis.generation.lora import make_blocks
    from deid_synthesis.generation.sampler import backbone

    owners: List[int] = []
    blocks = {"input_ids": [], "attention_mask": [], "labels": []}
    for i, text in enumerate(texts):
        made = make_blocks(tokenizer, [text], seq_len)
        for key in blocks:
            blocks[key].append(made[key])
        owners.extend([i] * made["input_ids"].shape[0])
    batches = {key: torch.cat(parts) for key, parts in blocks.items()}
    device = next(model.parameters()).device
    weight = model.get_output_embeddings().weight
    remap = None
    if token_ids:
        ids = torch.tensor(sorted(token_ids), dtype=torch.long, device=device)
        weight = weight[ids]
        remap = torch.full((max(int(ids.max()), weight.shape[0], len(tokenizer)) + 1,), -100, dtype=torch.long,
                           device=device)
        remap[ids] = torch.arange(len(ids), device=device)
    cap = getattr(model.config, "final_logit_softcapping", None)
    sums = np.zeros(len(texts))
    counts = np.zeros(len(texts))
    owners_t = np.asarray(owners)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16 and device.type == "cpu")
    n_blocks = len(owners)
    with torch.no_grad(), autocast:
        for start in tqdm(range(0, n_blocks, batch_size), desc="note losses", unit="batch", disable=not progress):
            part = slice(start, start + batch_size)
            input_ids = batches["input_ids"][part].to(device)
            hidden = backbone(model)(input_ids=input_ids,
                                     attention_mask=batches["attention_mask"][part].to(device)).last_hidden_state
            labels = batches["labels"][part][:, 1:].to(device)
            if remap is not None:
                labels = torch.where(labels >= 0, remap[labels.clamp(min=0, max=len(remap) - 1)], labels)
            logits = hidden[:, :-1] @ weight.T
            if cap:
                logits = torch.tanh(logits / cap) * cap
            losses = torch.nn.functional.cross_entropy(logits.float().transpose(1, 2), labels, ignore_index=-100,
                                                       reduction="none")
            valid = labels != -100
            np.add.at(sums, owners_t[part], (losses * valid).sum(dim=1).cpu().numpy())
            np.add.at(counts, owners_t[part], valid.sum(dim=1).cpu().numpy())
    with np.errstate(invalid="ignore", divide="ignore"):
        return list(np.where(counts > 0, sums / np.maximum(counts, 1), np.nan))


def reference_scores(adapted: Sequence[float], base: Sequence[float]) -> List[float]:
    """The attack's score of each note: base loss - adapted loss (nan losses dropped later)."""
    return [b - a for a, b in zip(adapted, base)]


def membership_inference(adapter_dir, train_path, dev_path, max_notes: int = 100, seed: int = 0,
                         batch_size: int = 8, precision: str = "auto", progress: bool = False) -> Dict:
    """The attack on an adapter: sampled member notes (its adaptation notes) against sampled dev notes.

    adapter_dir: the adapter folder (manifest.json, token_ids.json, peft's files).
    train_path, dev_path: the gold DocBins it was adapted on and the dev split.
    max_notes (int): notes per side (0: all); seed (int): their choice.
    precision (str): fp32, bf16 or auto (as `adapt`).
    RETURNS (Dict): `attack_figures`, the mean losses per side and model, the settings, seconds.
    """
    import time
    from pathlib import Path

    import srsly

    from deid_synthesis.generation.adapt import read_texts, resolve_precision
    from deid_synthesis.generation.causal_lm import load_causal_lm
    from deid_synthesis.generation.manifest import ModelLoadError, has_lora, read_manifest
    from deid_synthesis.privacy.sources import adaptation_docs, read_gold

    start = time.perf_counter()
    adapter_dir = Path(adapter_dir)
    manifest = read_manifest(adapter_dir)
    if not has_lora(adapter_dir):
        raise ModelLoadError(f"{adapter_dir}: no adapter to attack (fraction 0: the generator is the base model)")
    members, _ = adaptation_docs(read_gold(train_path), adapter_dir / "manifest.json")
    others = read_texts(dev_path)
    member_texts = [members[i].text for i in sample_notes(len(members), max_notes, seed)]
    other_texts = [others[i]["text"] for i in sample_notes(len(others), max_notes, seed)]
    hyper = manifest["hyperparameters"]
    token_ids = srsly.read_json(adapter_dir / "token_ids.json") if hyper.get("vocabulary") == "corpus" else None
    bf16 = resolve_precision(precision)
    model, tokenizer = load_causal_lm(manifest["base_model"], adapter_dir, merge=False)
    losses: Dict[str, Dict[str, List[float]]] = {}
    for side, texts in (("members", member_texts), ("non_members", other_texts)):
        adapted = note_losses(model, tokenizer, texts, hyper["seq_len"], token_ids, batch_size, bf16, progress)
        with model.disable_adapter():
            base = note_losses(model, tokenizer, texts, hyper["seq_len"], token_ids, batch_size, bf16, progress)
        losses[side] = {"adapted": adapted, "base": base}
    scores = {side: [s for s in reference_scores(v["adapted"], v["base"]) if not np.isnan(s)]
              for side, v in losses.items()}
    figures = attack_figures(scores["members"], scores["non_members"])
    # The adapted model's loss alone (no reference): the weaker attack, for comparison.
    loss_only = attack_figures([-x for x in losses["members"]["adapted"] if not np.isnan(x)],
                               [-x for x in losses["non_members"]["adapted"] if not np.isnan(x)])
    return {**figures, "attack": "reference model (base loss - adapted loss per note)",
            "loss_only": {k: loss_only[k] for k in ("auc", "tpr_at_low_fpr")},
            "mean_loss": {side: {model_: round(float(np.nanmean(v)), 4) for model_, v in by_model.items()}
                          for side, by_model in losses.items()},
            "adapter": str(adapter_dir), "base_model": manifest["base_model"], "fraction": manifest["fraction"],
            "members_from": str(train_path), "non_members_from": str(dev_path), "max_notes": max_notes, "seed": seed,
            "vocabulary": hyper.get("vocabulary", "full"), "seq_len": hyper["seq_len"], "bf16": bf16,
            "seconds": round(time.perf_counter() - start, 1)}


def plot_roc(figures: Dict, path) -> None:
    """The ROC curve of the attack, with the diagonal of guessing (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    ax.plot(figures["roc"]["fpr"], figures["roc"]["tpr"], label=f"reference attack (AUC {figures['auc']:.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="guessing")
    ax.axvline(figures["low_fpr"], color="lightgrey", linewidth=0.8)
    ax.set_xlabel("false-positive rate (dev notes called members)")
    ax.set_ylabel("true-positive rate (adaptation notes found)")
    ax.set_title(f"Membership inference: {figures['members']} vs {figures['non_members']} notes", fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
