"""Project step `grid`: run the ablation grid (see deid_synthesis.grid), reusing finished steps.

    python -m scripts.grid meddocan --lang es --fractions 0.05,0.25,0.95 --volumes 0.1 --seeds 0,1,2
"""
import sys
from pathlib import Path
from typing import Optional

import typer
from wasabi import msg

from deid_synthesis.generation.adapt import DEFAULT_LEARNING_RATE
from deid_synthesis.generation.manifest import DEFAULT_BASE
from deid_synthesis.grid import make_grid, run_grid


# Long: one option per line, as project.yml's command passes them; the grid has that many
# settings, and the body only checks them and runs.
def main(
    dataset: str = typer.Argument(..., help="Corpus name: reads corpus/<dataset>/{train,dev,test}.spacy"),
    lang: str = typer.Option("es", "--lang", help="Language of the corpus"),
    config: Path = typer.Option(Path("configs/ner_cpu.cfg"), "--config", help="NER training config (annotators and synthetic models)"),
    fractions: str = typer.Option("0.05,0.25,0.95", "--fractions", help="Adaptation shares of the gold training notes (0 = no adaptation)"),
    volumes: str = typer.Option("0.1", "--volumes", help="Synthetic volumes, as multiples of the gold training words (paper: 0.05,1,4)"),
    seeds: str = typer.Option("0", "--seeds", help="Repeated seeds (LoRA init and order, sampling, synthetic model training)"),
    annotator_fractions: str = typer.Option("1.0", "--annotator-fractions", help="Shares of the gold notes the annotator is trained on (1.0 = the gold model)"),
    base_models: str = typer.Option(DEFAULT_BASE, "--base-models", help="Generators: hub names, local folders or gemma3-270m"),
    gen_vocabulary: str = typer.Option("full", "--gen-vocabulary", help="full and/or corpus (comma list: an axis)"),
    adapt_epochs: float = typer.Option(1.0, "--adapt-epochs", help="Adapter epochs (when --adapt-max-steps is 0)"),
    adapt_max_steps: int = typer.Option(0, "--adapt-max-steps", help="Adapter optimizer steps (0: from epochs)"),
    adapt_seq_len: int = typer.Option(256, "--adapt-seq-len", help="Tokens per adapter training block"),
    adapt_batch_size: int = typer.Option(8, "--adapt-batch-size", help="Blocks per adapter step"),
    adapt_precision: str = typer.Option("fp32", "--adapt-precision", help="fp32, bf16, or auto (bf16 where the CPU has it)"),
    adapt_learning_rate: float = typer.Option(DEFAULT_LEARNING_RATE, "--adapt-learning-rate", help="Adapter peak learning rate"),
    lora_rank: int = typer.Option(8, "--lora-rank", help="LoRA rank"),
    lora_alpha: int = typer.Option(32, "--lora-alpha", help="LoRA alpha"),
    max_new_tokens: int = typer.Option(256, "--max-new-tokens", help="Most tokens per generated note"),
    train_steps: int = typer.Option(6000, "--train-steps", help="Steps of each synthetic model (training.max_steps)"),
    annotator_steps: int = typer.Option(0, "--annotator-steps", help="Steps of annotators trained on a share (0: the config's)"),
    transformer_model: str = typer.Option("FacebookAI/xlm-roberta-base", "--transformer-model", help="Encoder of ner_trf"),
    max_words: int = typer.Option(128, "--max-words", help="Most words per machine-annotated chunk"),
    corpus_dir: Path = typer.Option(Path("corpus"), "--corpus-dir", help="Folder holding <dataset>/{train,dev,test}.spacy"),
    gold_model: Optional[Path] = typer.Option(None, "--gold-model", help="Gold annotator (default training/<dataset>/<config>/model-best)"),
    gold_metrics: Optional[Path] = typer.Option(None, "--gold-metrics", help="Gold model's scores (default metrics/<dataset>/<config>.json)"),
    generate_config: Path = typer.Option(Path("configs/generate.cfg"), "--generate-config", help="Generation config"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Grid folder (default grid/<dataset>)"),
    gpu_id: int = typer.Option(-1, "--gpu-id", "-g", help="GPU id, or -1 for the CPU"),
    threads: int = typer.Option(0, "--threads", help="torch CPU threads for adaptation and generation (0: default)"),
    n_process: int = typer.Option(1, "--n-process", help="Processes of machine annotation"),
    tag: str = typer.Option("", "--tag", help="Prefix of the tables and plot (TAG-results.csv ...), to keep several grids over one cache"),
):
    """Run the ablation grid: adapt, generate, annotate, train, score each cell, reusing finished steps."""
    name = config.stem
    try:
        grid = make_grid(
            dataset=dataset, lang=lang, config=config, fractions=fractions, volumes=volumes, seeds=seeds,
            annotator_fractions=annotator_fractions, base_models=base_models, gen_vocabularies=gen_vocabulary,
            adapt_epochs=adapt_epochs, adapt_max_steps=adapt_max_steps, adapt_seq_len=adapt_seq_len,
            adapt_batch_size=adapt_batch_size, adapt_precision=adapt_precision,
            adapt_learning_rate=adapt_learning_rate, lora_rank=lora_rank,
            lora_alpha=lora_alpha, max_new_tokens=max_new_tokens, train_steps=train_steps,
            annotator_steps=annotator_steps, transformer_model=transformer_model, max_words=max_words,
            train=corpus_dir / dataset / "train.spacy", dev=corpus_dir / dataset / "dev.spacy",
            test=corpus_dir / dataset / "test.spacy",
            gold_model=gold_model or Path("training") / dataset / name / "model-best",
            gold_metrics=gold_metrics or Path("metrics") / dataset / f"{name}.json",
            generate_config=generate_config, output=output or Path("grid") / dataset, gpu_id=gpu_id,
            threads=threads, n_process=n_process)
        if not Path(grid["gold_metrics"]).exists():
            msg.warn(f"{grid['gold_metrics']} not found: no ratios to the gold model (run the evaluate command)")
        run_grid({**grid, "tag": tag})
    except (ValueError, OSError) as err:  # GridError, AdaptError, GenerateError, CorpusError, DataError
        title, *details = str(err).split("\n")
        msg.fail(title)
        for line in details:
            msg.text(line)
        sys.exit(1)


if __name__ == "__main__":
    typer.run(main)
