"""Generate the synthetic corpus: K samples per dev-note prompt, written as they come.

The prompts are `prompts.make_prompts` (the dev notes' first whitespace-separated words, PHI
replaced). K, the samples per prompt, follows from `volume`: the synthetic corpus should hold
`volume` x the gold training split's words (the paper's ablation: 0.05, 1, 4), and a sample is
expected to hold min(mean words of a gold note, max_new_tokens / the generator's tokens per
word on the gold text) words. Words in every figure here (`words`, `train_words`,
`target_words`, `volume_reached`) are the project's `count_words` on the clinical tokenizer
of `lang`, for the gold text and the samples alike (`word_count.word_counter`). Generated
text tends to need more tokens per word than gold text, so when the K rounds (one sample per
prompt each) fall short of the target, further rounds follow until it is reached (at most 2 K
rounds). `n_samples` sets K directly instead, with no extra round.

OUTPUT_DIR/samples.jsonl gets one line per kept sample, appended and flushed as it is
generated: {"id", "text", "prompt_id", "prompt", "prompt_phi", "sample_index", "seed",
"n_tokens", "finished", "provenance": {base model, adapter, adapter manifest hash, sampling
settings, run seed, prompt settings}}. Empty or degenerate samples go to
OUTPUT_DIR/dropped.jsonl (ids and reason, no text) and are counted. Run again with the same
arguments and it resumes (`resume_state`): samples already written (kept or dropped) are
skipped, a half-written last line from a killed run is cut off, and a file written with
other settings is refused. A run's sample seeds do not depend on what was done before, so a
resumed corpus equals an uninterrupted one. OUTPUT_DIR/report.json sums it up. Generated
text is never printed.

torch is loaded with the model (`llm`), not by importing this module.
"""
import json
import math
import time
from collections import Counter
from pathlib import Path
from typing import Callable, Dict, List, Optional, Set, Tuple

import spacy
import srsly
from spacy.tokens import Doc
from tqdm import tqdm
from wasabi import msg

import deid_synthesis.generation.llm  # noqa: F401  (registers deid.CausalLM.v1 and deid.SyntheticNotes.v1)
from clinical_deid.io import DataError, atomic_open, read_jsonl
from deid_synthesis.generation.adapt import read_texts
from deid_synthesis.generation.prompts import GenerateError, make_prompts, prompt_summary
from deid_synthesis.generation.word_count import word_counter

SAMPLES, DROPPED, REPORT = "samples.jsonl", "dropped.jsonl", "report.json"
PROVENANCE_KEYS = ("base_model", "adapter", "adapter_manifest", "backend", "dtype", "top_p", "temperature",
                   "max_new_tokens", "vocabulary", "vocabulary_size", "seed")


def run_seed(config_path: Path, overrides: Dict) -> int:
    """The run seed as the generator will read it (task seed, ${system.seed} by default),
    known before the model is loaded so that a bad dev file fails at once."""
    config = spacy.util.load_config(config_path, overrides=overrides, interpolate=True)
    return int(config["components"]["llm"]["task"].get("seed", 0))


def samples_per_prompt(volume: float, train_words: int, n_prompts: int, words_per_sample: float) -> int:
    """K such that n_prompts x K samples of words_per_sample words reach volume x train_words.

    volume (float): the target as a multiple of the training split's words (positive).
    train_words (int): words of the training split; n_prompts (int): prompts.
    words_per_sample (float): the words a sample is expected to hold.
    RETURNS (int): K, at least 1.
    """
    if volume <= 0:
        raise GenerateError(f"volume must be positive, not {volume}")
    return max(1, math.ceil(volume * train_words / (n_prompts * max(words_per_sample, 1.0))))


def expected_words_per_sample(train_texts: List[str], train_word_counts: List[int], tokenizer,
                              max_new_tokens: int) -> float:
    """The words a sample is expected to hold: min(mean words of a gold note, max_new_tokens /
    the generator's tokens per word on the first 200 gold notes).

    train_texts (List[str]): the gold training notes.
    train_word_counts (List[int]): their words (`word_counter`), in the same order.
    tokenizer (PreTrainedTokenizerBase): the generator's tokenizer.
    max_new_tokens (int): the most tokens a sample may get.
    RETURNS (float): words per sample.
    """
    sample_tokens = sum(len(tokenizer(text, add_special_tokens=False).input_ids) for text in train_texts[:200])
    tokens_per_word = sample_tokens / max(1, sum(train_word_counts[:200]))
    mean_words = sum(train_word_counts) / max(1, len(train_texts))
    return min(mean_words, max_new_tokens / max(tokens_per_word, 1e-6))


def read_done(path: Path) -> List[dict]:
    """Rows of a JSONL file written by an earlier run; a torn last line (killed run) is cut off.

    path (Path): samples.jsonl or dropped.jsonl (missing: nothing done).
    RETURNS (List[dict]): the rows, in file order.
    """
    if not path.exists():
        return []
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        with path.open("r+b") as handle:
            handle.truncate(cut)
    try:
        return [row for _, _, row in read_jsonl(path, text_field=None)]
    except DataError as err:  # the file and line, never the line's text
        raise GenerateError(f"{err}; remove the file to start over") from None


def resume_state(output_dir: Path, provenance: Dict) -> Tuple[List[dict], List[dict], Set[Tuple[str, int]]]:
    """What an earlier run with the same settings wrote: (kept rows, dropped rows, done ids).

    A folder written with other settings is refused: its samples would not be this run's.

    output_dir (Path): the run's folder (created when missing).
    provenance (Dict): this run's provenance, as every row records it.
    RETURNS (Tuple[List[dict], List[dict], Set[Tuple[str, int]]]): the rows and the
        (prompt id, sample index) pairs already done.
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    kept_rows = read_done(output_dir / SAMPLES)
    dropped_rows = read_done(output_dir / DROPPED)
    # As it reads back: the rows are written by srsly and read by json (floats may differ).
    written = json.loads(srsly.json_dumps(provenance))
    for row in kept_rows[:1] + dropped_rows[:1]:
        if row.get("provenance") != written:
            raise GenerateError(f"{output_dir}: written with other settings ({row.get('provenance')}); "
                                "use another output folder or delete it")
    done = {(r["prompt_id"], r["sample_index"]) for r in kept_rows + dropped_rows}
    return kept_rows, dropped_rows, done


def vocabulary_override(overrides: Dict, vocabulary: str, config_path: Path) -> Dict:
    """--vocabulary: "config" keeps paths.vocabulary, "full" clears it, "corpus" takes the
    adapter's token_ids.json (the tokens of the adaptation text; an empty list, as written
    for fraction 0, means no restriction).

    RETURNS (Dict): the config overrides with paths.vocabulary set accordingly.
    """
    if vocabulary == "config":
        return overrides
    if vocabulary == "full":
        return {**overrides, "paths.vocabulary": None}
    if vocabulary != "corpus":
        raise GenerateError(f"unknown vocabulary '{vocabulary}': use config, full or corpus")
    adapter = overrides.get("paths.adapter", spacy.util.load_config(config_path)["paths"]["adapter"])
    if not adapter:
        raise GenerateError("--vocabulary corpus needs an adapter folder (--paths.adapter) with its token_ids.json")
    return {**overrides, "paths.vocabulary": str(Path(adapter) / "token_ids.json")}


def load_generator(config_path: Path, overrides: Dict) -> Tuple[spacy.Language, Dict]:
    """The generation pipeline of the config and its model's settings (with the task's seed)."""
    config = spacy.util.load_config(config_path, overrides=overrides, interpolate=False)
    nlp = spacy.util.load_model_from_config(config, auto_fill=True, validate=True)
    llm = nlp.get_pipe("llm")
    settings = dict(llm._model.settings) if hasattr(llm._model, "settings") else {}
    settings["seed"] = llm.task.seed
    return nlp, settings


def prompt_doc(nlp: spacy.Language, prompt: Dict[str, str], k: int) -> Doc:
    """The Doc of one sample: the prompt's text, its id and the sample index in user_data."""
    doc = nlp.make_doc(prompt["text"])
    doc.user_data.update({"prompt_id": prompt["id"], "sample_index": k})
    return doc


def plan_samples(nlp: spacy.Language, settings: Dict, train_texts: List[str], train_word_counts: List[int],
                 n_prompts: int, volume: float, n_samples: Optional[int]) -> Tuple[int, Optional[float]]:
    """K and the words expected per sample (None when K was given)."""
    if n_samples is not None:
        return n_samples, None
    tokenizer = getattr(nlp.get_pipe("llm")._model.sampler, "tokenizer", None)
    if tokenizer is None:
        raise GenerateError("this backend has no tokenizer to estimate K: pass --samples-per-prompt")
    per_sample = expected_words_per_sample(train_texts, train_word_counts, tokenizer, settings["max_new_tokens"])
    return samples_per_prompt(volume, sum(train_word_counts), n_prompts, per_sample), per_sample


def generate(
    config_path: Path,
    dev_path: Path,
    train_path: Path,
    output_dir: Path,
    volume: float = 1.0,
    n_samples: Optional[int] = None,
    prompt_words: int = 3,
    limit: int = 0,
    overrides: Optional[Dict] = None,
    vocabulary: str = "config",
    silent: bool = False,
    lang: str = "es",
    raw_prompts: bool = False,
) -> Dict:
    """Generate (or finish generating) the synthetic corpus in output_dir.

    config_path (Path): the generation config; overrides (Optional[Dict]) apply to it. dev_path (Path):
    the gold dev DocBin (prompts); train_path (Path): the gold training DocBin (volume). volume (float):
    target words (`count_words`) as a multiple of the training split's; n_samples (Optional[int]): K instead.
    prompt_words (int): whitespace-separated words per prompt; limit (int): most samples this session (0: all).
    vocabulary (str): config, full or corpus. lang (str): the language of the notes (the prompts' surrogate
    locale, the tokenizer that counts words); raw_prompts (bool): real openings.
    RETURNS (Dict): the report (also written to output_dir/report.json).
    """
    output_dir = Path(output_dir)
    overrides = vocabulary_override(dict(overrides or {}), vocabulary, config_path)
    prompts = make_prompts(dev_path, prompt_words, lang, run_seed(config_path, overrides), raw_prompts)
    if raw_prompts and not silent:
        msg.warn("--raw-prompts: the prompts are the real openings of the dev notes, PHI included")
    train_texts = [d["text"] for d in read_texts(train_path)]
    words_of = word_counter(lang)
    train_word_counts = [words_of(text) for text in train_texts]
    train_words = sum(train_word_counts)
    nlp, settings = load_generator(config_path, overrides)
    n_samples, per_sample = plan_samples(nlp, settings, train_texts, train_word_counts, len(prompts), volume, n_samples)
    provenance = {k: settings.get(k) for k in PROVENANCE_KEYS}
    provenance.update({"prompt_phi": "raw" if raw_prompts else "surrogates", "prompt_words": prompt_words,
                       "prompt_lang": None if raw_prompts else lang})
    kept_rows, dropped_rows, done = resume_state(output_dir, provenance)
    target_words = round(volume * train_words) if per_sample is not None else None
    todo_planned = sum((p["id"], k) not in done for k in range(n_samples) for p in prompts)
    if not silent:
        msg.info(f"{len(prompts)} prompts x {n_samples} samples (volume {volume} of {train_words:,} training words"
                 + (f", ~{per_sample:.0f} words per sample" if per_sample else "") + f"); {len(done)} done, "
                 f"{todo_planned} to generate" + (", more rounds if short of the target" if target_words else ""))
    start = time.perf_counter()
    n_generated, n_tokens = write_rounds(nlp, output_dir, prompts, provenance, done, n_samples, target_words,
                                         kept_rows, words_of, limit, todo_planned, silent)
    seconds = time.perf_counter() - start
    report = summarize(output_dir, prompts, n_samples, volume, train_words, provenance, target_words is not None,
                       words_of)
    report["prompt_phi"] = prompt_summary(prompts, prompt_words)
    write_report(output_dir, report, n_generated, n_tokens, seconds)
    if not silent:
        msg.good(f"{report['kept']:,} samples kept, {sum(report['dropped'].values()):,} dropped "
                 f"({dict(report['dropped'])}), {report['words']:,} words = {report['volume_reached']:.2f} x the "
                 f"training split; this session {n_tokens:,} tokens in {seconds / 60:.1f} min "
                 f"({n_tokens / max(seconds, 1e-9):.1f} tokens/s) → {output_dir / SAMPLES}")
    return report


def write_report(output_dir: Path, report: Dict, n_generated: int, n_tokens: int, seconds: float) -> None:
    """Add this session to those of an earlier report.json and write the report (atomically).

    output_dir (Path): the run's folder.
    report (Dict): the report of `summarize`; its "sessions" are set here.
    n_generated (int): samples generated this session; n_tokens (int): their tokens.
    seconds (float): how long this session generated.
    """
    previous = srsly.read_json(output_dir / REPORT).get("sessions", []) if (output_dir / REPORT).exists() else []
    report["sessions"] = previous + [{"samples": n_generated, "tokens": n_tokens, "seconds": round(seconds, 1),
                                      "tokens_per_second": round(n_tokens / seconds, 1) if seconds else None}]
    with atomic_open(output_dir / REPORT) as handle:
        handle.write(srsly.json_dumps(report, indent=2))


def write_rounds(nlp: spacy.Language, output_dir: Path, prompts: List[Dict], provenance: Dict,
                 done: Set[Tuple[str, int]], n_samples: int, target_words: Optional[int], kept_rows: List[dict],
                 words_of: Callable[[str], int], limit: int, todo_planned: int, silent: bool) -> Tuple[int, int]:
    """Generate round after round (sample index k), appending each sample as it comes.

    K rounds, then (with a target) more until the target is reached, at most 2 K: the words
    (`words_of`, a `word_counter`) of the samples kept earlier (`kept_rows`) and now.
    RETURNS (Tuple[int, int]): samples generated and their tokens, this session.
    """
    max_rounds = 2 * n_samples if target_words is not None else n_samples
    words = sum(words_of(row["text"]) for row in kept_rows)
    prompt_of = {p["id"]: p for p in prompts}
    start, n_tokens, n_generated = time.perf_counter(), 0, 0
    n_dropped = 0
    bar = tqdm(total=todo_planned, desc="generate", unit="doc", disable=silent)
    batch_size = nlp.config["nlp"]["batch_size"]
    with (output_dir / SAMPLES).open("a", encoding="utf8") as kept_file, \
            (output_dir / DROPPED).open("a", encoding="utf8") as dropped_file:
        for k in range(max_rounds):
            if k >= n_samples and words >= target_words:
                break
            todo = [p for p in prompts if (p["id"], k) not in done]
            if limit:
                todo = todo[: max(0, limit - n_generated)]
            if k >= n_samples and todo:
                bar.total += len(todo)
                bar.refresh()
            for doc in nlp.pipe((prompt_doc(nlp, p, k) for p in todo), batch_size=batch_size):
                sample, row = sample_row(doc, k, prompt_of)
                if sample["dropped"]:
                    n_dropped += 1
                    dropped_file.write(srsly.json_dumps({**row, "provenance": provenance}) + "\n")
                    dropped_file.flush()
                else:
                    kept_file.write(srsly.json_dumps({**row, "provenance": provenance}) + "\n")
                    kept_file.flush()
                    words += words_of(sample["text"])
                n_tokens += sample["n_tokens"]
                n_generated += 1
                bar.update(1)
                bar.set_postfix(tok_s=f"{n_tokens / (time.perf_counter() - start):.1f}", dropped=n_dropped)
            if limit and n_generated >= limit:
                break
    bar.close()
    return n_generated, n_tokens


def sample_row(doc: Doc, k: int, prompt_of: Dict[str, Dict]) -> Tuple[Dict, Dict]:
    """(the task's sample, the row written for it): text and prompt only when the sample is kept."""
    sample = doc.user_data["synthetic"]
    prompt_id = doc.user_data["prompt_id"]
    row = {"id": f"{prompt_id}#{k}", "prompt_id": prompt_id, "sample_index": k, "seed": sample["seed"],
           "n_tokens": sample["n_tokens"], "finished": sample["finished"], "prompt_phi": prompt_of[prompt_id]["phi"]}
    if sample["dropped"]:
        row["reason"] = sample["dropped"]
    else:
        row.update({"text": sample["text"], "prompt": prompt_of[prompt_id]["text"]})
    return sample, row


def summarize(output_dir: Path, prompts, n_samples: int, volume: float, train_words: int, provenance: Dict,
              top_up: bool, words_of: Callable[[str], int]) -> Dict:
    """The report; complete = K rounds done and, when K came from the volume, the target reached
    (or the 2 K rounds spent). Words are counted by `words_of` (`word_counter`)."""
    kept = read_done(output_dir / SAMPLES)
    dropped = read_done(output_dir / DROPPED)
    words = sum(words_of(r["text"]) for r in kept)
    rounds = Counter(r["sample_index"] for r in kept + dropped)
    full_rounds = next(k for k in range(len(rounds) + 1) if rounds.get(k, 0) < len(prompts))
    target = round(volume * train_words)
    complete = full_rounds >= n_samples and (not top_up or words >= target or full_rounds >= 2 * n_samples)
    return {
        "prompts": len(prompts), "samples_per_prompt": n_samples, "rounds": full_rounds, "volume": volume,
        "train_words": train_words, "target_words": target, "kept": len(kept),
        "dropped": dict(Counter(r["reason"] for r in dropped)), "words": words,
        "tokens": sum(r["n_tokens"] for r in kept), "volume_reached": round(words / max(1, train_words), 3),
        "complete": complete, "provenance": provenance,
    }
