"""Generate the synthetic corpus: K samples per dev-note prompt, written as they come.

Prompts are the first `--prompt-words` (3) words of each document of the dev split, as in
the paper, with the note's annotated PHI replaced first: the dev DocBin's gold entities go
through the project's `deid_transform` (pseudonymize, seeded with the run seed, drawing no
identifying PHI string of the dev split) and the prompt is cut from its output, so a real
name at the start of a note becomes a surrogate name. Values with no surrogate (a "[SEXO]"
placeholder, masked text) and words still holding a PHI string of the note are left out:
the prompt starts after such words and ends before the next ones (one unbroken run of text,
shorter rather than with a gap). Each sample records `prompt_phi` (method, words, words
replaced, words dropped; never the original words), the run's provenance the method
(`prompt_phi`: "surrogates"), the report the totals. A dev document without entity
annotation is refused (its PHI cannot be found) unless `--raw-prompts` (unsafe: the real
openings, PHI included, in the prompts and every sample). `python -m deid_synthesis.privacy prompts
SAMPLES DEV` checks a produced run. K, the samples per prompt, follows from `--volume`: the synthetic corpus should
hold `volume` x the gold training split's words (the paper's ablation: 0.05, 1, 4), and a
sample is expected to hold min(mean words of a gold note, max_new_tokens / the tokenizer's
tokens per word on the gold text) words. Generated text tends to need more tokens per word
than gold text, so when the K rounds (one sample per prompt each) fall short of the target,
further rounds follow until it is reached (at most 2 K rounds). `--samples-per-prompt` sets
K directly instead, with no extra round.

OUTPUT_DIR/samples.jsonl gets one line per kept sample, appended and flushed as it is
generated: {"id", "text", "prompt_id", "prompt", "prompt_phi", "sample_index", "seed",
"n_tokens", "finished", "provenance": {base model, adapter, adapter manifest hash, sampling
settings, run seed, prompt settings}}. Empty or degenerate samples go to OUTPUT_DIR/dropped.jsonl (ids and reason,
no text) and are counted. Run again with the same arguments and it resumes: samples
already written (kept or dropped) are skipped, a half-written last line from a killed
run is cut off, and a file written with other settings is refused. A run's sample seeds do
not depend on what was done before, so a resumed corpus equals an uninterrupted one.
OUTPUT_DIR/report.json sums it up. Generated text is never printed.
"""
import math
import re
import time
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

import spacy
import srsly
import typer
from spacy.cli._util import parse_config_overrides
from spacy.tokens import Doc, DocBin
from tqdm import tqdm
from wasabi import msg

import deid_synthesis.generation  # noqa: F401  (registers deid.CausalLM.v1 and deid.SyntheticNotes.v1)
from deid_synthesis.adapt import AdaptError, read_texts
from clinical_deid.transform import DeidTransform
from deid_synthesis.privacy import PhiIndex, find_phi_runs, phi_word_runs

SAMPLES, DROPPED, REPORT = "samples.jsonl", "dropped.jsonl", "report.json"


class GenerateError(ValueError):
    pass


def first_words(text: str, n_words: int = 3) -> str:
    """The text up to the end of its n-th whitespace-separated word (original spacing kept)."""
    words = list(re.finditer(r"\S+", text))[:n_words]
    return text[words[0].start() : words[-1].end()] if words else ""


# Kinds whose values get no surrogate under pseudonymize: their words are left out of a prompt.
NO_SURROGATE = ("redact", "mask", "keep")


def read_dev_docs(path: Path) -> List[Doc]:
    """The dev split's Docs with their gold entities (the file is named on failure, no text)."""
    path = Path(path)
    if not path.exists():
        raise GenerateError(f"{path}: no such corpus file (run the convert step first)")
    try:
        return list(DocBin(store_user_data=True).from_disk(path).get_docs(spacy.blank("xx").vocab))
    except Exception as err:  # a DocBin that does not load: name the file
        raise GenerateError(f"{path}: not a spaCy DocBin ({type(err).__name__})") from err


def prompt_transform(docs: List[Doc], lang: str, seed: int) -> DeidTransform:
    """deid_transform in pseudonymize mode, seeded with the run seed (prompts are the same for a
    given seed), whose surrogates hold no identifying PHI string of the dev split (annotated
    in one document, as `privacy` counts them): a drawn name must not be another patient's."""
    index = PhiIndex(docs, min_chars=3, max_gold_docs=1)
    return DeidTransform("prompt_deid", lang, mode="pseudonymize", seed=seed,
                         avoid_strings=frozenset(index.strings[i] for i in index.identifying))


def _overlaps(word: re.Match, spans: List[Tuple[int, int]]) -> bool:
    return any(word.start() < end and start < word.end() for start, end in spans)


def surrogate_prompt(doc: Doc, transform: DeidTransform, n_words: int) -> Tuple[str, Dict]:
    """The first n words of the note with its annotated PHI replaced by surrogates, and what
    was done to them (counts only).

    Holes are the words of a value with no surrogate (redacted, masked, an overlong kept
    span) and words still holding a PHI string of the note as whole words, case and accents
    ignored (a surrogate that happens to be a real value, or an unannotated mention). A
    prompt is one unbroken run of the text: it starts after the leading holes and ends before
    the next hole, so it may be shorter than n words but never reads "[SEXO]" or has a gap.
    """
    transform(doc)
    out = doc._.deidentified
    holes, replaced = [], []
    for span in doc._.deid_spans:
        where = (span["out_start"], span["out_end"])
        if span["kind"] == "keep" and span["replacement"] == doc.text[span["start"]:span["end"]]:
            continue  # not PHI under this label map: left as it is
        (holes if span["kind"] in NO_SURROGATE else replaced).append(where)
    holes += [(start, end) for start, end, _ in find_phi_runs(out, phi_word_runs(doc))]
    words = list(re.finditer(r"\S+", out))
    i = 0
    while i < len(words) and _overlaps(words[i], holes):
        i += 1
    lead, chosen = i, []
    while i < len(words) and len(chosen) < n_words and not _overlaps(words[i], holes):
        chosen.append(words[i])
        i += 1
    cut = 0
    while i < len(words) and len(chosen) + cut < n_words and _overlaps(words[i], holes):
        cut += 1
        i += 1
    text = out[chosen[0].start(): chosen[-1].end()] if chosen else ""
    return text, {"method": "surrogates", "words": len(chosen),
                  "replaced": sum(_overlaps(w, replaced) for w in chosen), "dropped": lead + cut}


def make_prompts(dev_path: Path, n_words: int = 3, lang: str = "es", seed: int = 0,
                 raw: bool = False) -> List[Dict]:
    """[{"id", "text", "phi"}]: one prompt per dev document with text (see `surrogate_prompt`).

    `raw` takes the real openings as they are (unsafe); otherwise every document must carry
    entity annotation (possibly none), else its PHI would pass unseen into the prompt.
    """
    docs = read_dev_docs(dev_path)
    transform = None if raw else prompt_transform(docs, lang, seed)
    prompts = []
    for i, doc in enumerate(docs):
        doc_id = str(doc.user_data.get("id", i))
        if not doc.text.strip():
            continue
        if raw:
            text = first_words(doc.text, n_words)
            phi = {"method": "raw", "words": len(text.split()), "replaced": 0, "dropped": 0}
        elif not doc.has_annotation("ENT_IOB"):
            raise GenerateError(
                f"{dev_path}: document {doc_id} (#{i}) has no entity annotation, so the PHI of its prompt cannot "
                "be replaced; give the gold dev DocBin, or --raw-prompts to use the real openings as they are "
                "(unsafe: real PHI in the prompts and every sample)")
        else:
            text, phi = surrogate_prompt(doc, transform, n_words)
        if text:
            prompts.append({"id": doc_id, "text": text, "phi": phi})
    if not prompts:
        raise GenerateError(f"{dev_path}: no document with text to take prompts from")
    return prompts


def prompt_summary(prompts: List[Dict], n_words: int) -> Dict:
    """Totals of the prompts' `phi` records for the report (counts only)."""
    phis = [p["phi"] for p in prompts]
    return {"method": phis[0]["method"] if phis else None, "prompts": len(phis),
            "prompts_with_surrogates": sum(1 for p in phis if p["replaced"]),
            "words_replaced": sum(p["replaced"] for p in phis),
            "prompts_with_dropped_words": sum(1 for p in phis if p["dropped"]),
            "words_dropped": sum(p["dropped"] for p in phis),
            "prompts_shorter_than_asked": sum(1 for p in phis if p["words"] < n_words)}


def run_seed(config_path: Path, overrides: Dict) -> int:
    """The run seed as the generator will read it (task seed, ${system.seed} by default),
    known before the model is loaded so that a bad dev file fails at once."""
    config = spacy.util.load_config(config_path, overrides=overrides, interpolate=True)
    return int(config["components"]["llm"]["task"].get("seed", 0))


def samples_per_prompt(volume: float, train_words: int, n_prompts: int, words_per_sample: float) -> int:
    """K such that n_prompts x K samples of words_per_sample words reach volume x train_words."""
    if volume <= 0:
        raise GenerateError(f"volume must be positive, not {volume}")
    return max(1, math.ceil(volume * train_words / (n_prompts * max(words_per_sample, 1.0))))


def expected_words_per_sample(train_texts: List[str], tokenizer, max_new_tokens: int) -> float:
    n_words = sum(len(t.split()) for t in train_texts)
    sample = train_texts[:200]
    tokens_per_word = sum(len(tokenizer(t, add_special_tokens=False).input_ids) for t in sample) / max(
        1, sum(len(t.split()) for t in sample))
    return min(n_words / max(1, len(train_texts)), max_new_tokens / max(tokens_per_word, 1e-6))


def read_done(path: Path) -> List[dict]:
    """Rows of a JSONL file written by an earlier run; a torn last line (killed run) is cut off."""
    if not path.exists():
        return []
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        with path.open("r+b") as f:
            f.truncate(cut)
        data = data[:cut]
    rows = []
    for n, line in enumerate(data.decode("utf8").splitlines(), 1):
        try:
            rows.append(srsly.json_loads(line))
        except ValueError as err:
            raise GenerateError(f"{path}:{n}: not JSON ({err}); remove the file to start over") from err
    return rows


def vocabulary_override(overrides: Dict, vocabulary: str, config_path: Path) -> Dict:
    """--vocabulary: "config" keeps paths.vocabulary, "full" clears it, "corpus" takes the
    adapter's token_ids.json (the tokens of the adaptation text; an empty list, as written
    for fraction 0, means no restriction)."""
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
    config = spacy.util.load_config(config_path, overrides=overrides, interpolate=False)
    nlp = spacy.util.load_model_from_config(config, auto_fill=True, validate=True)
    llm = nlp.get_pipe("llm")
    settings = dict(llm._model.settings) if hasattr(llm._model, "settings") else {}
    settings["seed"] = llm.task.seed
    return nlp, settings


def prompt_doc(nlp: spacy.Language, prompt: Dict[str, str], k: int) -> Doc:
    doc = nlp.make_doc(prompt["text"])
    doc.user_data.update({"prompt_id": prompt["id"], "sample_index": k})
    return doc


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
    """Generate (or finish generating) the synthetic corpus in output_dir; returns the report.

    `lang` sets the surrogates' locale in the prompts; `raw_prompts` keeps the real openings."""
    output_dir = Path(output_dir)
    overrides = vocabulary_override(dict(overrides or {}), vocabulary, config_path)
    prompts = make_prompts(dev_path, prompt_words, lang, run_seed(config_path, overrides), raw_prompts)
    if raw_prompts and not silent:
        msg.warn("--raw-prompts: the prompts are the real openings of the dev notes, PHI included")
    train_texts = [d["text"] for d in read_texts(train_path)]
    train_words = sum(len(t.split()) for t in train_texts)
    nlp, settings = load_generator(config_path, overrides)
    sampler = nlp.get_pipe("llm")._model.sampler
    tokenizer = getattr(sampler, "tokenizer", None)
    if n_samples is None:
        if tokenizer is None:
            raise GenerateError("this backend has no tokenizer to estimate K: pass --samples-per-prompt")
        per_sample = expected_words_per_sample(train_texts, tokenizer, settings["max_new_tokens"])
        n_samples = samples_per_prompt(volume, train_words, len(prompts), per_sample)
    else:
        per_sample = None
    provenance = {k: settings.get(k) for k in ("base_model", "adapter", "adapter_manifest", "backend", "dtype", "top_p", "temperature", "max_new_tokens",
                                               "vocabulary", "vocabulary_size", "seed")}
    provenance.update({"prompt_phi": "raw" if raw_prompts else "surrogates", "prompt_words": prompt_words,
                       "prompt_lang": None if raw_prompts else lang})
    output_dir.mkdir(parents=True, exist_ok=True)
    kept_rows = read_done(output_dir / SAMPLES)
    dropped_rows = read_done(output_dir / DROPPED)
    written = srsly.json_loads(srsly.json_dumps(provenance))  # as it reads back (srsly's floats are not exact)
    for row in kept_rows[:1] + dropped_rows[:1]:
        if row.get("provenance") != written:
            raise GenerateError(f"{output_dir}: written with other settings ({row.get('provenance')}); "
                                "use another output folder or delete it")
    done: Set[Tuple[str, int]] = {(r["prompt_id"], r["sample_index"]) for r in kept_rows + dropped_rows}
    target_words = round(volume * train_words) if per_sample is not None else None
    max_rounds = 2 * n_samples if target_words is not None else n_samples
    words = sum(len(r["text"].split()) for r in kept_rows)
    todo_planned = sum((p["id"], k) not in done for k in range(n_samples) for p in prompts)
    if not silent:
        msg.info(f"{len(prompts)} prompts x {n_samples} samples (volume {volume} of {train_words:,} training words"
                 + (f", ~{per_sample:.0f} words per sample" if per_sample else "") + f"); {len(done)} done, "
                 f"{todo_planned} to generate" + (", more rounds if short of the target" if target_words else ""))

    prompt_of = {p["id"]: p for p in prompts}
    start, n_tokens, n_generated = time.perf_counter(), 0, 0
    session_dropped: Counter = Counter()
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
                sample = doc.user_data["synthetic"]
                prompt_id = doc.user_data["prompt_id"]
                row = {"id": f"{prompt_id}#{k}", "prompt_id": prompt_id, "sample_index": k, "seed": sample["seed"],
                       "n_tokens": sample["n_tokens"], "finished": sample["finished"],
                       "prompt_phi": prompt_of[prompt_id]["phi"]}
                if sample["dropped"]:
                    row["reason"] = sample["dropped"]
                    session_dropped[sample["dropped"]] += 1
                    dropped_file.write(srsly.json_dumps({**row, "provenance": provenance}) + "\n")
                    dropped_file.flush()
                else:
                    row.update({"text": sample["text"], "prompt": prompt_of[prompt_id]["text"]})
                    kept_file.write(srsly.json_dumps({**row, "provenance": provenance}) + "\n")
                    kept_file.flush()
                    words += len(sample["text"].split())
                n_tokens += sample["n_tokens"]
                n_generated += 1
                bar.update(1)
                bar.set_postfix(tok_s=f"{n_tokens / (time.perf_counter() - start):.1f}",
                                dropped=sum(session_dropped.values()))
            if limit and n_generated >= limit:
                break
    bar.close()
    seconds = time.perf_counter() - start
    report = summarize(output_dir, prompts, n_samples, volume, train_words, provenance, target_words is not None)
    report["prompt_phi"] = prompt_summary(prompts, prompt_words)
    previous = srsly.read_json(output_dir / REPORT).get("sessions", []) if (output_dir / REPORT).exists() else []
    report["sessions"] = previous + [{"samples": n_generated, "tokens": n_tokens, "seconds": round(seconds, 1),
                                      "tokens_per_second": round(n_tokens / seconds, 1) if seconds else None}]
    srsly.write_json(output_dir / REPORT, report)
    if not silent:
        msg.good(f"{report['kept']:,} samples kept, {sum(report['dropped'].values()):,} dropped "
                 f"({dict(report['dropped'])}), {report['words']:,} words = {report['volume_reached']:.2f} x the "
                 f"training split; this session {n_tokens:,} tokens in {seconds / 60:.1f} min "
                 f"({n_tokens / max(seconds, 1e-9):.1f} tokens/s) → {output_dir / SAMPLES}")
    return report


def summarize(output_dir: Path, prompts, n_samples: int, volume: float, train_words: int, provenance: Dict,
              top_up: bool) -> Dict:
    """The report; complete = K rounds done and, when K came from the volume, the target reached
    (or the 2 K rounds spent)."""
    kept = read_done(output_dir / SAMPLES)
    dropped = read_done(output_dir / DROPPED)
    words = sum(len(r["text"].split()) for r in kept)
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


def main(
    ctx: typer.Context,
    config_path: Path = typer.Argument(..., exists=True, dir_okay=False, help="Generation config (configs/generate.cfg)"),
    dev_path: Path = typer.Argument(..., exists=True, dir_okay=False, help="Gold dev DocBin: prompts are its notes' first words, annotated PHI replaced"),
    train_path: Path = typer.Argument(..., exists=True, dir_okay=False, help="Gold training DocBin: its size in words sets the volume"),
    output_dir: Path = typer.Argument(..., help="Folder for samples.jsonl, dropped.jsonl and report.json"),
    volume: float = typer.Option(1.0, "--volume", "-v", help="Target size as a multiple of the training split's words"),
    n_samples: Optional[int] = typer.Option(None, "--samples-per-prompt", "-k", help="K, instead of deriving it from --volume"),
    prompt_words: int = typer.Option(3, "--prompt-words", help="Words of each dev note used as its prompt"),
    limit: int = typer.Option(0, "--limit", help="Generate at most this many samples in this run (0: all)"),
    vocabulary: str = typer.Option("config", "--vocabulary", help="config (paths.vocabulary), full, or corpus (the adapter's token_ids.json: faster, changes the distribution)"),
    lang: str = typer.Option("es", "--lang", help="Language of the notes: the locale of the prompts' surrogates"),
    raw_prompts: bool = typer.Option(False, "--raw-prompts", help="UNSAFE: take the dev notes' openings as they are, real PHI included (for dev files without entity annotation)"),
):
    """Generate synthetic notes with the spacy-llm pipeline of CONFIG_PATH (config overrides as extra options)."""
    try:
        generate(config_path, dev_path, train_path, output_dir, volume, n_samples, prompt_words, limit,
                 parse_config_overrides(ctx.args), vocabulary, lang=lang, raw_prompts=raw_prompts)
    except (GenerateError, AdaptError, OSError) as err:
        msg.fail(str(err), exits=1)


if __name__ == "__main__":
    app = typer.Typer(add_completion=False)
    app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(main)
    app()
