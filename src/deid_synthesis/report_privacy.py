"""The privacy part of the run report: the counts it keeps from the privacy, membership and
canary files (by key: their strings never leave them) and its Markdown sections."""
from typing import Dict, List, Optional

from deid_synthesis.markdown import cell, formatted_table as table

PRIVACY_LABEL_KEYS = ("strings", "reproduced", "synthetic_docs", "identifying_strings",
                      "identifying_reproduced", "identifying_synthetic_docs")


def privacy_counts(privacy: dict) -> dict:
    """The numbers of the privacy report, by a list of keys: its strings never leave it."""
    def pick(row: dict, keys) -> dict:
        return {k: row[k] for k in keys if isinstance(row.get(k), (int, float))}

    phi = privacy["phi"]
    pairs = (privacy.get("linkage") or {}).get("label_pairs") or {}  # "LABEL_A + LABEL_B" -> notes
    return {"documents": pick(privacy, ("real_documents", "real_words", "synthetic_documents", "synthetic_words")),
            "ngram": pick(privacy["ngram"], ("n", "real_ngrams", "synthetic_ngrams", "shared_ngrams", "recall",
                                             "copy_rate")),
            "phi": pick(phi, ("min_chars", "max_gold_docs", "skipped_short")),
            "phi_per_label": {label: pick(row, PRIVACY_LABEL_KEYS)
                              for label, row in [*phi["per_label"].items(), ("total", phi["total"])]},
            "filter": pick(privacy["filter"], ("documents", "kept", "dropped", "dropped_phi", "dropped_shared_run",
                                               "max_shared_ngram")),
            # Every real split the run touched (privacy --dev): absent from older privacy files.
            "splits": {split: {"documents": f.get("documents"), "recall": f["ngram"].get("recall"),
                               **pick(f["phi"]["total"], PRIVACY_LABEL_KEYS)}
                       for split, f in (privacy.get("splits") or {}).items()},
            "prompt_phi": pick(privacy.get("prompt_phi") or {}, (
                "prompts", "prompts_with_own_phi", "samples", "sample_openings_with_own_phi")),
            # Record linkage: absent from older privacy files.
            "linkage": privacy.get("linkage") and {
                **pick(privacy["linkage"], ("notes", "linked_notes", "share", "max_strings_of_one_real_note")),
                "label_pairs": pick(pairs, pairs)}}


def attack_counts(membership: Optional[dict], canaries: Optional[dict]) -> Dict:
    """The figures of the attacks on the adapter (privacy-membership, privacy-canaries), by keys."""
    return {"membership": membership and {k: membership.get(k) for k in (
                "auc", "tpr_at_low_fpr", "low_fpr", "members", "non_members", "seconds", "attack", "roc")}
            | {"loss_only_auc": (membership.get("loss_only") or {}).get("auc")},
            "canaries": canaries and {"table": canaries.get("table"), "n_candidates": canaries.get("n_candidates"),
                                      "reproduction": canaries.get("reproduction")}}


def privacy_md(p: Optional[Dict]) -> List[str]:
    if not p:
        return ["## Privacy\n", "Privacy report not found: the privacy step was not run.\n"]
    ng, phi = p["ngram"], p["phi"]
    return ["## Privacy (counts only)\n",
            f"{ng['n']}-gram recall (share of the real text's {ng['real_ngrams']:,} distinct {ng['n']}-grams found in "
            f"the synthetic text): **{ng['recall']:.4f}**; copy rate (share of the synthetic text's "
            f"{ng['synthetic_ngrams']:,} distinct {ng['n']}-grams found in the real text): **{ng['copy_rate']:.4f}**.\n",
            f"Gold PHI strings (≥ {phi.get('min_chars')} characters) found verbatim in the synthetic notes; "
            f"identifying: annotated in ≤ {phi.get('max_gold_docs')} gold documents:\n",
            table(["label", "strings", "reproduced", "synthetic docs", "identifying", "reproduced", "synthetic docs"],
                  [[label, *(r.get(k) for k in PRIVACY_LABEL_KEYS)] for label, r in p["phi_per_label"].items()]),
            *privacy_splits_md(p),
            "Filter (synthetic notes with an identifying PHI string or a long run shared with a real note):\n",
            table(list(p["filter"]), [list(p["filter"].values())])]


def privacy_splits_md(p: Dict) -> List[str]:
    """Figures against each real split and the prompts' own-note PHI (privacy --dev), if measured."""
    md = []
    if p.get("splits"):
        md += ["Against every real split the run touched (train: the adaptation notes; dev: the notes the "
               "prompts came from; identifying in dev and union: annotated in few documents of both):\n",
               table(["split", "documents", "recall", "identifying", "reproduced", "synthetic docs"],
                     [[split, r.get("documents"), cell(r.get("recall"), "{:.4f}"), r.get("identifying_strings"),
                       r.get("identifying_reproduced"), r.get("identifying_synthetic_docs")]
                      for split, r in p["splits"].items()])]
    if p.get("prompt_phi"):
        q = p["prompt_phi"]
        md.append(f"Prompts holding a PHI string of their own dev note: **{q.get('prompts_with_own_phi')} of "
                  f"{q.get('prompts')}**; samples whose opening words hold one: "
                  f"**{q.get('sample_openings_with_own_phi')} of {q.get('samples')}**.\n")
    return md


def attacks_md(s: Dict, images: Dict[str, str]) -> List[str]:
    """Record linkage, the pseudonymization's second pass, membership inference and canaries, if measured."""
    md = []
    linkage = (s["privacy"] or {}).get("linkage")
    if linkage:
        md.append(f"Record linkage: **{linkage.get('linked_notes')} of {linkage.get('notes')}** synthetic notes hold "
                  f"two or more identifying PHI strings of one real note (label pairs: {linkage.get('label_pairs')}).\n")
    pseudo = s.get("pseudonymized")
    if pseudo and pseudo.get("second_pass"):
        left = pseudo["left"]["occurrences"]
        md.append(f"Pseudonymized: {pseudo['replaced']:,} annotated spans replaced ({pseudo.get('kept_common') or 0:,} "
                  f"common places kept); second pass: {pseudo['second_pass']['replaced']:,} real identifying strings "
                  f"the annotator missed replaced; left in the notes: **{left['verbatim']} verbatim**, "
                  f"{left['near']} near-verbatim (case, accents, spacing), {left['partial']} partial names.\n")
    membership = s["attacks"]["membership"]
    if membership:
        md.append(f"Membership inference on the adapter ({membership['attack']}; {membership['members']} adaptation "
                  f"notes vs {membership['non_members']} dev notes): ROC AUC **{membership['auc']:.3f}**, TPR at "
                  f"{membership['low_fpr']:.0%} FPR **{membership['tpr_at_low_fpr']:.3f}** (the loss alone: AUC "
                  f"{cell(membership['loss_only_auc'])}).\n")
        if "membership_roc" in images:
            md.append(f"![membership inference ROC]({images['membership_roc']})\n")
    canaries = s["attacks"]["canaries"]
    if canaries and canaries.get("table"):
        md += [f"Canary exposure (bits; each record number ranked among {canaries['n_candidates']} random ones):\n",
               table(["copies", "canaries", "mean exposure", "max", "ranked first", "fit", "extracted"],
                     [[r["repeats"], r["canaries"], r["mean_exposure"], r["max_exposure"], r["ranked_first"],
                       r["mean_exposure_fit"], r["extracted"]] for r in canaries["table"]])]
    return md
