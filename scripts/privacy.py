"""Project step `privacy`: n-gram recall, verbatim PHI reproduction, the prompt check and the filter
of a synthetic run (see deid_synthesis.privacy). Prints and writes counts, never text (unless
--show-strings).

    python -m scripts.privacy synthetic/x/run/samples.jsonl corpus/x/train.spacy --dev corpus/x/dev.spacy \\
        --output metrics/x/privacy.json --filter-output synthetic.kept.jsonl --max-shared-ngram 20

Only the prompt check, on any run (exits 1 when a prompt holds PHI of its dev note):

    python -m scripts.privacy prompts synthetic/x/run/samples.jsonl corpus/x/dev.spacy

Membership inference on the adapter (deid_synthesis.privacy.membership; loads the generator):

    python -m scripts.privacy membership training/x/adapter-run corpus/x/train.spacy corpus/x/dev.spacy \\
        --output metrics/x/membership-run.json --plot metrics/x/membership-run.png --max-notes 100

Canary exposure of an adapter trained with `adapt --canaries N` (deid_synthesis.privacy.canaries):

    python -m scripts.privacy canaries training/x/adapter-canary --samples synthetic/x/canary/samples.jsonl \\
        --output metrics/x/canaries-canary.json --candidates 200
"""
import sys
from pathlib import Path
from typing import Dict, Optional

import srsly
import typer
from wasabi import msg

from deid_synthesis.privacy import check_prompts, privacy_report


def prompt_phi_line(figures: Dict) -> str:
    """The prompt check in one line, as `privacy` and `privacy prompts` print it."""
    return (f"prompts with PHI of their dev note: {figures['prompts_with_own_phi']:,} of {figures['prompts']:,}; "
            f"samples whose opening holds PHI of their dev note: {figures['sample_openings_with_own_phi']:,} of "
            f"{figures['samples']:,}")


def print_prompt_phi(figures: Dict) -> None:
    """The prompt check: good when no prompt or opening holds PHI of its own dev note."""
    line = prompt_phi_line(figures)
    line = line[0].upper() + line[1:]
    if figures["prompts_with_own_phi"] or figures["sample_openings_with_own_phi"]:
        msg.fail(f"{line} (prompts per label: {figures['per_label']})")
    else:
        msg.good(line)
    if figures["samples_without_prompt_id"] or figures["samples_with_unknown_prompt_id"]:
        msg.warn(f"{figures['samples_without_prompt_id']:,} samples without a prompt_id and "
                 f"{figures['samples_with_unknown_prompt_id']:,} with one not in the dev split were not checked")


def print_phi_table(phi: Dict, show_strings: bool) -> None:
    """Verbatim PHI reproduction per label (and the strings, with --show-strings)."""
    header = ["label", "strings", "reproduced", "synth docs", "identifying", "reproduced", "synth docs"]
    rows = [[label, row["strings"], row["reproduced"], row["synthetic_docs"], row["identifying_strings"],
             row["identifying_reproduced"], row["identifying_synthetic_docs"]]
            for label, row in [*phi["per_label"].items(), ("total", phi["total"])]]
    msg.info(f"Gold PHI strings found verbatim in the synthetic text (≥ {phi['min_chars']} characters; "
             f"identifying: annotated in ≤ {phi['max_gold_docs']} gold documents)")
    msg.table(rows, header=header, divider=True, aligns=["l"] + ["r"] * 6)
    if show_strings:
        for label, row in phi["per_label"].items():
            if row.get("reproduced_strings"):
                msg.text(f"{label}: {' | '.join(row['reproduced_strings'])}")


def print_splits(report: Dict) -> None:
    """The figures against every real split (privacy --dev)."""
    ngram_n = report["ngram"]["n"]
    msg.info("Against every real split the run touched (identifying in dev and train + dev: annotated in "
             f"≤ {report['phi']['max_gold_docs']} documents of both)")
    msg.table([[split, figures["documents"], f"{figures['ngram']['recall']:.4f}",
                figures["phi"]["total"]["identifying_strings"], figures["phi"]["total"]["identifying_reproduced"],
                figures["phi"]["total"]["identifying_synthetic_docs"]]
               for split, figures in report["splits"].items()],
              header=["split", "docs", f"{ngram_n}-gram recall", "identifying", "reproduced", "synth docs"],
              divider=True, aligns=["l"] + ["r"] * 5)


def print_filter(kept: Dict) -> None:
    reasons = f"{kept['dropped_phi']:,} for an identifying PHI string" if kept["drop_phi"] else "PHI not checked"
    if kept["max_shared_ngram"]:
        reasons += (f", {kept['dropped_shared_run']:,} for a run of ≥ {kept['max_shared_ngram']} words "
                    "(\\w+ runs, the n-grams' unit) shared with a real note")
    verb = "Dropped" if kept["output"] else "Would drop"
    msg.info(f"Filter: {verb} {kept['dropped']:,} of {kept['documents']:,} synthetic notes ({reasons})")
    if kept["output"]:
        msg.good(f"Kept {kept['kept']:,} notes → {kept['output']}")


def print_report(report: Dict, show_strings: bool = False) -> None:
    ngram = report["ngram"]
    msg.divider(f"Privacy of {report['synthetic']} against {report['gold']}")
    if report["adaptation"]:
        adaptation = report["adaptation"]
        msg.info(f"Real side: {adaptation['measured_against']} (fraction {adaptation['fraction']}, "
                 f"seed {adaptation['seed']})")
    msg.info(f"Real: {report['real_documents']:,} docs, {report['real_words']:,} words; synthetic: "
             f"{report['synthetic_documents']:,} docs, {report['synthetic_words']:,} words")
    msg.text(f"{ngram['n']}-gram recall (share of the real text's {ngram['real_ngrams']:,} distinct {ngram['n']}-grams "
             f"found in the synthetic text): {ngram['recall']:.3f}")
    msg.text(f"Copy rate (share of the synthetic text's {ngram['synthetic_ngrams']:,} distinct {ngram['n']}-grams "
             f"found in the real text): {ngram['copy_rate']:.3f}")
    print_phi_table(report["phi"], show_strings)
    if report.get("splits"):
        print_splits(report)
    if report.get("prompt_phi"):
        print_prompt_phi(report["prompt_phi"])
    print_filter(report["filter"])
    linkage = report["linkage"]
    line = (f"Record linkage: {linkage['linked_notes']:,} of {linkage['notes']:,} synthetic notes hold two or more "
            f"identifying PHI strings of one real note ({linkage['share']:.2%}; label pairs: {linkage['label_pairs']})")
    (msg.good if not linkage["linked_notes"] else msg.warn)(line)


def prompts_main(
    synth_jsonl: Path = typer.Argument(..., help="Synthetic notes (the generator's JSONL, or a -pseudo run's)"),
    dev_path: Path = typer.Argument(..., help="Gold dev DocBin the prompts were taken from"),
    prompt_words: int = typer.Option(3, "--prompt-words", help="Opening words (whitespace-separated, as generate cuts prompts) checked in a sample without a prompt field"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the counts as JSON here"),
):
    """Count the prompts and sample openings holding a PHI string of their own dev note; exit 1 if any."""
    try:
        figures = check_prompts(synth_jsonl, dev_path, prompt_words)
    except ValueError as err:  # DataError, CorpusError: the message names the file and the place
        msg.fail(str(err), exits=1)
    print_prompt_phi(figures)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        srsly.write_json(output, figures)
    if figures["prompts_with_own_phi"] or figures["sample_openings_with_own_phi"]:
        raise typer.Exit(1)


def membership_main(
    adapter_dir: Path = typer.Argument(..., help="The adapter folder (manifest.json, token_ids.json, the LoRA weights)"),
    train_path: Path = typer.Argument(..., help="Gold training DocBin it was adapted on (the members: its adaptation notes)"),
    dev_path: Path = typer.Argument(..., help="Gold dev DocBin (the non-members: notes it never saw)"),
    output: Path = typer.Option(..., "--output", "-o", help="Write the figures as JSON here"),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write the ROC curve here (PNG)"),
    max_notes: int = typer.Option(100, "--max-notes", help="Notes per side, a seeded sample (0: all)"),
    seed: int = typer.Option(0, "--seed", help="Seed of the sample"),
    batch_size: int = typer.Option(8, "--batch-size", help="Blocks per forward pass"),
    precision: str = typer.Option("auto", "--precision", help="fp32, bf16 or auto (bf16 where the CPU has it)"),
):
    """Membership inference on the adapter (reference-model attack): ROC AUC and TPR at 1 % FPR."""
    from deid_synthesis.privacy.membership import membership_inference, plot_roc

    try:
        figures = membership_inference(adapter_dir, train_path, dev_path, max_notes, seed, batch_size, precision,
                                       progress=True)
    except (ValueError, OSError) as err:  # DataError, CorpusError, ModelLoadError: the file is named
        msg.fail(str(err), exits=1)
    print_membership(figures)
    output.parent.mkdir(parents=True, exist_ok=True)
    srsly.write_json(output, figures)
    if plot is not None:
        plot_roc(figures, plot)
    msg.good(f"Saved membership figures → {output}" + (f", ROC → {plot}" if plot else ""))


def canaries_main(
    adapter_dir: Path = typer.Argument(..., help="An adapter trained with --canaries (its canaries.json)"),
    output: Path = typer.Option(..., "--output", "-o", help="Write the figures as JSON here"),
    samples: Optional[Path] = typer.Option(None, "--samples", help="Notes generated with the adapter (JSONL): count the canaries' names and numbers in them"),
    n_candidates: int = typer.Option(200, "--candidates", help="Random record numbers each canary is ranked among"),
    seed: int = typer.Option(0, "--seed", help="Seed of the candidates"),
    precision: str = typer.Option("auto", "--precision", help="fp32, bf16 or auto (bf16 where the CPU has it)"),
):
    """Canary exposure (bits), extraction and reproduction, by repetition count."""
    from clinical_deid.io import read_jsonl
    from deid_synthesis.privacy.canaries import canary_exposure

    try:
        texts = [record["text"] for _, _, record in read_jsonl(samples)] if samples else None
        report = canary_exposure(adapter_dir, n_candidates, seed, texts, precision, progress=True)
    except (ValueError, OSError) as err:  # CanaryError, DataError, ModelLoadError: the file is named
        msg.fail(str(err), exits=1)
    reproduced = report.get("reproduction", {}).get("by_repeats", {})
    msg.info(f"Canaries of {adapter_dir}: {report['canaries']} records, each ranked among {n_candidates} "
             f"random {report['secret']}s; {report['seconds'] / 60:.1f} min")
    msg.table([[row["repeats"], row["canaries"], f"{row['mean_exposure']:.2f}", f"{row['max_exposure']:.2f}",
                row["ranked_first"], f"{row['mean_exposure_fit']:.1f}", row["extracted"],
                reproduced.get(row["repeats"], {}).get("name_reproduced", "-"),
                reproduced.get(row["repeats"], {}).get("secret_reproduced", "-")] for row in report["table"]],
              header=["copies", "canaries", "exposure", "max", "ranked 1st", "fit", "extracted", "name in notes",
                      "number in notes"], divider=True, aligns=["r"] * 9)
    output.parent.mkdir(parents=True, exist_ok=True)
    srsly.write_json(output, report)
    msg.good(f"Saved canary figures → {output}")


def print_membership(figures: Dict) -> None:
    """The attack's figures in two lines."""
    msg.info(f"Membership inference ({figures['attack']}): {figures['members']} adaptation notes vs "
             f"{figures['non_members']} dev notes, {figures['seconds'] / 60:.1f} min")
    losses = figures["mean_loss"]
    msg.text(f"ROC AUC {figures['auc']:.3f}, TPR at {figures['low_fpr']:.0%} FPR {figures['tpr_at_low_fpr']:.3f} "
             f"(loss alone: AUC {figures['loss_only']['auc']:.3f}); mean loss members {losses['members']['adapted']:.3f} "
             f"(base {losses['members']['base']:.3f}), non-members {losses['non_members']['adapted']:.3f} "
             f"(base {losses['non_members']['base']:.3f})")


def main(
    synth_jsonl: Path = typer.Argument(..., help="Synthetic notes (the generator's JSONL)"),
    gold_path: Path = typer.Argument(..., help="Gold DocBin of the adaptation corpus (its text and PHI spans)"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the figures as JSON here"),
    n: int = typer.Option(5, "--n", help="n of the n-gram recall (the paper: 5)"),
    filter_output: Optional[Path] = typer.Option(None, "--filter-output", help="Write the notes that pass the filter here (JSONL)"),
    max_shared_ngram: int = typer.Option(20, "--max-shared-ngram", help="Drop notes sharing a run of this many words (\\w+ runs, the n-grams' unit) with a real note (0: off)"),
    no_drop_phi: bool = typer.Option(False, "--no-drop-phi", help="Do not drop notes for reproducing a PHI string"),
    min_chars: int = typer.Option(3, "--min-chars", help="Ignore PHI strings shorter than this"),
    max_gold_docs: int = typer.Option(1, "--max-gold-docs", help="A PHI string is identifying when annotated in at most this many gold documents (0: all are)"),
    ignore_case: bool = typer.Option(False, "--ignore-case", help="Match PHI strings regardless of case"),
    labels: Optional[str] = typer.Option(None, "--labels", help="Comma-separated PHI labels to check (default: all)"),
    show_strings: bool = typer.Option(False, "--show-strings", help="Print and save the reproduced PHI strings (private!)"),
    adapter_manifest: Optional[Path] = typer.Option(None, "--adapter-manifest", help="The adapter's manifest.json (or folder): measure against the documents it was adapted on"),
    dev_path: Optional[Path] = typer.Option(None, "--dev", help="Gold dev DocBin (the prompts' split): count it too, and the prompts' own-note PHI"),
    prompt_words: int = typer.Option(3, "--prompt-words", help="Opening words (whitespace-separated, as generate cuts prompts) checked in a sample without a prompt field"),
):
    """N-gram recall, verbatim PHI reproduction and an optional filter of synthetic notes."""
    try:
        report = privacy_report(synth_jsonl, gold_path, n, filter_output, max_shared_ngram, not no_drop_phi,
                                min_chars, max_gold_docs or None, ignore_case,
                                labels.split(",") if labels else None, show_strings, adapter_manifest,
                                dev_path, prompt_words)
    except ValueError as err:  # DataError, CorpusError: the message names the file and the place
        msg.fail(str(err), exits=1)
    print_report(report, show_strings)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        srsly.write_json(output, report)
        msg.good(f"Saved privacy figures → {output}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["prompts"]:  # python -m scripts.privacy prompts SAMPLES DEV
        sys.argv.pop(1)
        typer.run(prompts_main)
    elif sys.argv[1:2] == ["canaries"]:  # python -m scripts.privacy canaries ADAPTER -o X --samples S
        sys.argv.pop(1)
        typer.run(canaries_main)
    elif sys.argv[1:2] == ["membership"]:  # python -m scripts.privacy membership ADAPTER TRAIN DEV -o X
        sys.argv.pop(1)
        typer.run(membership_main)
    else:
        typer.run(main)
