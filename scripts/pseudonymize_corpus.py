"""Project step `pseudonymize-synthetic`: replace the annotated PHI of a synthetic corpus with
surrogates; labels follow the text (see deid_synthesis.pseudonymize_corpus). Prints counts only.

    python -m scripts.pseudonymize_corpus training/x/ner_cpu/model-best corpus/x/synthetic-r \\
        corpus/x/synthetic-r-pseudo --samples-output synthetic/x/r-pseudo/samples.jsonl
"""
from pathlib import Path
from typing import List, Optional

import typer
from wasabi import msg

from clinical_deid.keys import KEY_ENV_VAR, load_key
from deid_synthesis.cli_util import load_pipeline
from deid_synthesis.pseudonymize_corpus import pseudonymize_corpus


def main(
    model: str = typer.Argument(..., help="The annotator pipeline (its tokenizer re-tokenizes the surrogates)"),
    input_dir: Path = typer.Argument(..., help="Synthetic corpus folder written by annotate (train.spacy, dev.spacy)"),
    output_dir: Path = typer.Argument(..., help="Folder for the pseudonymized train.spacy, dev.spacy and annotate.json"),
    samples_output: Optional[Path] = typer.Option(None, "--samples-output", help="Also write the pseudonymized notes as JSONL here (for privacy)"),
    gold_paths: List[Path] = typer.Option([], "--gold", help="Real DocBin the run touched (repeat: train, dev): no surrogate may be one of its identifying PHI strings"),
    max_gold_docs: int = typer.Option(1, "--max-gold-docs", help="Identifying: annotated in at most this many gold documents (as privacy)"),
    seed: int = typer.Option(0, "--seed", help="Unused since surrogates are keyed (kept for old command lines)"),
    key_file: Optional[Path] = typer.Option(None, "--key-file", help=f"Secret surrogate key (hex or raw bytes, 16+); default ${KEY_ENV_VAR}, else a random key for this run, not stored"),
    keep_common: int = typer.Option(0, "--keep-common", help="Keep place names (countries, towns) annotated in at least this many real documents of --gold (0: replace every labelled span)"),
    code: Optional[Path] = typer.Option(None, "--code", "-c", help="Python file with registered functions the pipeline needs"),
):
    """Replace the annotated PHI of a synthetic corpus with surrogates; labels follow the text."""
    try:
        key = load_key(key_file)
    except ValueError as err:
        msg.fail(str(err), exits=1)
    if key is None:
        msg.info(f"No --key-file nor ${KEY_ENV_VAR}: surrogates drawn with a random key for this run, stored "
                 "nowhere (the corpus's surrogates cannot be recomputed, nor this run reproduced)")
    nlp = load_pipeline(model, code)
    try:
        report = pseudonymize_corpus(nlp, input_dir, output_dir, seed, samples_output, gold_paths, max_gold_docs,
                                     progress=True, key=key, keep_common=keep_common)
    except ValueError as err:  # DataError, CorpusError: the message names the file and the place
        msg.fail(str(err), exits=1)
    done = report["pseudonymized"]
    msg.good(f"Replaced {done['replaced']:,} spans ({done['propagated']:,} other mentions) in "
             f"{report['chunks']:,} chunks → {output_dir} ({done['seconds']:.1f} s)")
    if done["kept_common"]:
        msg.info(f"Kept {done['kept_common']:,} mentions of {done['common_places']:,} place names annotated in "
                 f"{done['keep_common']}+ real documents")
    if done["misaligned"]:
        msg.warn(f"{done['misaligned']:,} surrogates off token boundaries were left unlabelled")
    msg.table(list(done["per_label"].items()), header=("label", "replaced"), divider=True, max_col=48)
    second, left = done["second_pass"], done["left"]
    msg.info(f"Second pass: {second['replaced']:,} occurrences of real identifying PHI strings outside the "
             f"annotator's spans replaced ({second['redacted']:,} with a placeholder), "
             f"{done['gold_strings_avoided']:,} strings searched")
    line = (f"Left in the notes: {left['occurrences']['verbatim']:,} verbatim (in {left['notes']['verbatim']:,} notes); "
            f"near-verbatim {left['occurrences']['near']:,} (case, accents, spacing), "
            f"{left['occurrences']['partial']:,} partial names or institutions")
    (msg.good if not left["occurrences"]["verbatim"] else msg.warn)(line)
    if samples_output is not None:
        msg.good(f"Wrote the notes → {samples_output}")


if __name__ == "__main__":
    typer.run(main)
