"""Benchmark: seconds of the project's tokenizer on pathological text, beside spaCy's own,
in one run; and the proof that its tokens did not change.

Why: spaCy's affix loop made the clinical tokenizer quadratic on whitespace-free runs (7.7 s
at 20,000 punctuation characters, 386 s at 100,000), so one hostile note could stall the
de-identifier for hours. `ClinicalTokenizer` cuts such runs where its rules always split;
this script measures it at 1 %, 10 % and 100 % of `--chars` for each kind (a punctuation
run, an emoji run, a digit run, and ordinary clinical-like text for reference), beside:

- `spacy`: spaCy's own tokenizer, `spacy.blank("es").tokenizer` (other rules, other tokens;
  the speed a user of spaCy would expect);
- `before`: spaCy's `Tokenizer` with the project's rules, the tokenizer as it was.

Sizes grow tenfold; a measurement whose time, projected from the ones before it (with the
growth exponent seen so far, quadratic when only one is known), would pass `--cap` seconds
is skipped and reported as such with its projection, so the run ends in minutes. Growth
is t(chars) / t(chars / 10): about 10 is linear, about 100 quadratic. Times are wall-clock
and CPU (`time.process_time`) seconds, with the load average beside them: on a shared
machine the CPU time is the steadier figure.

`--identity DIR` tokenizes every .txt under DIR (UTF-8) with the new and the old tokenizer
and counts documents whose words or spaces differ (also with the cuts forced down to 8
characters, so real text goes through the cutting path). `--deid` times the `deid_rules`
and `deid_transform` components (blank Spanish pipeline, rules only) on the same kinds and
on rule-dense text, and profiles any that grows faster than linearly. Only counts, ids and
timings are printed, never text.

    python -m deid_synthesis.bench_tokenizer --chars 1000000 --identity ../shared/data/meddocan \
        --deid --output metrics/bench_tokenizer.json
"""
from __future__ import annotations

import cProfile
import io
import math
import pstats
import random
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import spacy
from spacy.language import Language
from wasabi import msg

from clinical_deid.tokenizer import ClinicalTokenizer, clinical_rules, spacy_clinical_tokenizer

KINDS = ("punctuation", "emoji", "digits", "clinical")
DEID_KINDS = ("punctuation", "emoji", "digits", "clinical", "phones", "dates", "emails")
TOKENIZERS = ("project", "spacy", "before")
SUPERLINEAR_GROWTH = 20.0  # t(n) / t(n / 10) above this is reported as super-linear

# Ordinary clinical-like text, made up here (no real note): words, numbers, dates, short
# punctuation, line breaks, as a note has them.
_WORDS = ("paciente varón de años que ingresa por disnea y dolor torácico se pauta tratamiento con "
          "furosemida mg cada horas control en consulta de cardiología hemoglobina creatinina "
          "TA FC lpm afebril auscultación normal Rx tórax sin alteraciones alta a domicilio").split()
# ("º" and "ª" are letters to Unicode, so they stay out of the punctuation run.)
_PUNCT_RUN = ".,;:!?-/()[]{}<>*#%&+=~|\"'¡¿«»…–—•°"
_EMOJI_RUN = "😀🩺💊🏥👩🏽\u200d⚕️❤️🔬"


def make_text(kind: str, chars: int, seed: int = 0) -> str:
    """`chars` characters of one kind (see KINDS and DEID_KINDS), the same for a seed."""
    rng = random.Random(seed)
    if kind == "punctuation":
        unit = _PUNCT_RUN
    elif kind == "emoji":
        unit = _EMOJI_RUN
    elif kind == "digits":
        unit = "0123456789"
    elif kind == "phones":
        unit = "".join(f"Tel. 6{rng.randrange(10**8):08d}, " for _ in range(50))
    elif kind == "dates":
        unit = "".join(f"el {rng.randint(1, 28)}/{rng.randint(1, 12)}/{rng.randint(1990, 2020)} y " for _ in range(50))
    elif kind == "emails":
        unit = "".join(f"n{rng.randrange(10**6)}@correo.es; " for _ in range(50))
    elif kind == "clinical":
        parts = []
        while sum(map(len, parts)) < min(chars, 20_000):
            sentence = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(5, 15)))
            parts.append(f"{sentence.capitalize()}, {rng.randint(1, 250)} mg/dl el {rng.randint(1, 28)}/0{rng.randint(1, 9)}/2019.")
            parts.append("\n" if rng.random() < 0.2 else " ")
        unit = "".join(parts)
    else:
        raise ValueError(f"unknown kind {kind!r}; choose from {DEID_KINDS}")
    return (unit * (chars // len(unit) + 1))[:chars]


def time_call(func: Callable[[str], object], text: str) -> Dict[str, float]:
    """Wall and CPU seconds of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = func(text)
    out = {"seconds": time.perf_counter() - wall, "cpu_seconds": time.process_time() - cpu}
    if hasattr(result, "__len__"):
        out["tokens"] = len(result)
    return out


def growth_exponent(points: Sequence[Dict]) -> float:
    """The exponent of time against size seen so far (2: quadratic, assumed when unknown)."""
    done = [p for p in points if not p.get("skipped") and p["cpu_seconds"] > 0.01]
    if len(done) < 2:
        return 2.0
    a, b = done[-2], done[-1]
    return min(max(math.log(b["cpu_seconds"] / a["cpu_seconds"]) / math.log(b["chars"] / a["chars"]), 1.0), 3.0)


def measure_sizes(func: Callable[[str], object], kind: str, sizes: Sequence[int], cap: float) -> List[Dict]:
    """Time `func` on `kind` text of each size (ascending), skipping what would pass `cap`."""
    points: List[Dict] = []
    func(make_text(kind, 1000))  # warm-up: lexemes, caches
    for chars in sizes:
        if points:
            last = [p for p in points if not p.get("skipped")][-1]
            projected = max(last["seconds"], last["cpu_seconds"]) * (chars / last["chars"]) ** growth_exponent(points)
            if projected > cap:
                points.append({"chars": chars, "skipped": True, "projected_seconds": round(projected, 1)})
                continue
        points.append({"chars": chars, **time_call(func, make_text(kind, chars))})
    return points


def growth(points: Sequence[Dict]) -> Optional[float]:
    """CPU time at the largest measured size over the time at a tenth of it."""
    done = {p["chars"]: p["cpu_seconds"] for p in points if not p.get("skipped")}
    top = max(done, default=None)
    if top is None or top // 10 not in done or done[top // 10] <= 0:
        return None
    return round(done[top] / done[top // 10], 1)


def tokenizers() -> Dict[str, Callable[[str], object]]:
    """The project's tokenizer, spaCy's Spanish one, and the project's rules as before."""
    nlp = spacy.blank("es", config={"nlp": {"tokenizer": {"@tokenizers": "deid.clinical_tokenizer.v1"}}})
    assert isinstance(nlp.tokenizer, ClinicalTokenizer)
    return {"project": nlp.tokenizer, "spacy": spacy.blank("es").tokenizer, "before": spacy_clinical_tokenizer(nlp)}


def bench_tokenizers(chars: int, cap: float, kinds: Sequence[str] = KINDS) -> Dict[str, Dict[str, Dict]]:
    """kind -> tokenizer -> {"points": [...], "growth": ...}."""
    sizes = [chars // 100, chars // 10, chars]
    result: Dict[str, Dict[str, Dict]] = {}
    for kind in kinds:
        result[kind] = {}
        for name, func in tokenizers().items():
            points = measure_sizes(func, kind, sizes, cap)
            result[kind][name] = {"points": points, "growth": growth(points)}
            msg.text(f"{kind:12} {name:8} " + ", ".join(
                f"{p['chars']:,}: " + (f"skipped (~{p['projected_seconds']:,} s)" if p.get("skipped") else f"{p['cpu_seconds']:.3f} s")
                for p in points), show=True)
    return result


def check_identity(folder: Path, forced: int = 8) -> Dict:
    """Every .txt under `folder` tokenized by the new and the old tokenizer: documents whose
    words or spaces differ (by file name), with default cuts and with cuts of `forced`;
    CPU seconds of each on a second pass (the first creates the lexemes)."""
    tok = tokenizers()
    project, before = tok["project"], tok["before"]
    cut_small = ClinicalTokenizer(project.vocab, **clinical_rules())
    cut_small.max_span = cut_small.chunk = forced
    files = sorted(Path(folder).rglob("*.txt"))
    texts = [path.read_text(encoding="utf-8") for path in files]
    for text in texts:  # warm-up: both see every lexeme before either is timed
        project(text), before(text)
    out = {"documents": len(files), "characters": 0, "tokens": 0, "cut_documents": 0,
           "different": [], "different_forced": [], "seconds_project": 0.0, "seconds_before": 0.0}
    for path, text in zip(files, texts):
        out["characters"] += len(text)
        start = time.process_time()
        new = [(t.text, t.whitespace_) for t in project(text)]
        out["seconds_project"] += time.process_time() - start
        start = time.process_time()
        old = [(t.text, t.whitespace_) for t in before(text)]
        out["seconds_before"] += time.process_time() - start
        out["tokens"] += len(old)
        out["cut_documents"] += bool(project._cuts(text))
        if new != old:
            out["different"].append(path.name)
        if [(t.text, t.whitespace_) for t in cut_small(text)] != old:
            out["different_forced"].append(path.name)
    out["seconds_project"] = round(out["seconds_project"], 3)
    out["seconds_before"] = round(out["seconds_before"], 3)
    return out


def deid_pipeline() -> Language:
    """A blank Spanish pipeline with the project's tokenizer, `deid_rules` and
    `deid_transform` at their defaults (no NER: the rules give the entities)."""
    import clinical_deid.transform  # noqa: F401  (registers deid_transform)
    import clinical_deid.rules  # noqa: F401  (registers deid_rules)

    nlp = spacy.blank("es", config={"nlp": {"tokenizer": {"@tokenizers": "deid.clinical_tokenizer.v1"}}})
    nlp.add_pipe("deid_rules")
    nlp.add_pipe("deid_transform")
    return nlp


def top_functions(func: Callable[[], object], n: int = 4) -> List[str]:
    """The `n` functions with the most own time in one profiled call (names only)."""
    profiler = cProfile.Profile()
    profiler.runcall(func)
    stats = pstats.Stats(profiler, stream=io.StringIO()).sort_stats("tottime")
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:n]
    return [f"{Path(file).name}:{line}({_enclosing(file, line, name)}) {row[2]:.2f}s" for (file, line, name), row in rows]


def _enclosing(file: str, line: int, name: str) -> str:
    """A generator expression or lambda named after the function it is written in."""
    if not name.startswith("<") or not Path(file).is_file():
        return name
    lines = Path(file).read_text(encoding="utf-8").splitlines()[:line]
    for text in reversed(lines):
        if text.lstrip().startswith("def "):
            return f"{name} in {text.split('def ', 1)[1].split('(')[0]}"
    return name


def component_seconds(nlp: Language, name: str, text: str) -> float:
    """CPU seconds of one component on `text` (tokenized, and for deid_transform with the
    rules' entities, outside the timing)."""
    doc = nlp.make_doc(text)
    if name == "deid_transform":
        doc = nlp.get_pipe("deid_rules")(doc)
    component = nlp.get_pipe(name)
    start = time.process_time()
    component(doc)
    return time.process_time() - start


def bench_deid(chars: int, cap: float, kinds: Sequence[str] = DEID_KINDS) -> Dict[str, Dict[str, Dict]]:
    """kind -> component -> points and growth; super-linear ones with their top functions."""
    nlp = deid_pipeline()
    sizes = [chars // 100, chars // 10, chars]
    result: Dict[str, Dict[str, Dict]] = {}
    for kind in kinds:
        result[kind] = {}
        for name in ("deid_rules", "deid_transform"):
            points: List[Dict] = []
            try:
                component_seconds(nlp, name, make_text(kind, 1000))  # warm-up
                for size in sizes:
                    done = [p for p in points if not p.get("skipped")]
                    if done:
                        projected = done[-1]["cpu_seconds"] * (size / done[-1]["chars"]) ** growth_exponent(points)
                        if projected > cap:
                            points.append({"chars": size, "skipped": True, "projected_seconds": round(projected, 1)})
                            continue
                    points.append({"chars": size, "cpu_seconds": component_seconds(nlp, name, make_text(kind, size))})
            except Exception as err:  # the components are other files': report and go on
                points.append({"error": type(err).__name__})
            measured = [p for p in points if "chars" in p]
            entry: Dict[str, object] = {"points": points, "growth": growth(measured)}
            if (entry["growth"] or 0) > SUPERLINEAR_GROWTH or any(p.get("skipped") for p in points):
                entry["exponent"] = round(growth_exponent(measured), 2)
                mid = make_text(kind, max(p["chars"] for p in measured if not p.get("skipped") and p["chars"] < chars))
                entry["top_functions"] = top_functions(lambda: component_seconds(nlp, name, mid))
            result[kind][name] = entry
            msg.text(f"{kind:12} {name:15} " + ", ".join(
                (f"{p['chars']:,}: " + (f"skipped (~{p['projected_seconds']:,} s)" if p.get("skipped")
                                        else f"{p['cpu_seconds']:.3f} s")) if "chars" in p else p["error"]
                for p in points), show=True)
    return result


def table_rows(result: Dict[str, Dict[str, Dict]], chars: int) -> List[tuple]:
    """Rows of kind, tokenizer, size, seconds, CPU seconds, chars/s, ratio to the project,
    growth: the largest measured size of each."""
    rows = []
    for kind, by_tok in result.items():
        base = {p["chars"]: p["cpu_seconds"] for p in by_tok["project"]["points"] if not p.get("skipped")}
        for name, entry in by_tok.items():
            done = [p for p in entry["points"] if not p.get("skipped")]
            skipped = [p for p in entry["points"] if p.get("skipped")]
            p = done[-1]
            ratio = p["cpu_seconds"] / base[p["chars"]] if base.get(p["chars"]) else float("nan")
            note = f"{skipped[0]['chars']:,} skipped (~{skipped[0]['projected_seconds']:,} s)" if skipped else ""
            rows.append((kind, name, f"{p['chars']:,}", f"{p['seconds']:.3f}", f"{p['cpu_seconds']:.3f}",
                         f"{p['chars'] / max(p['cpu_seconds'], 1e-9):,.0f}", f"{ratio:.2f}",
                         "" if entry["growth"] is None else f"{entry['growth']}", note))
    return rows
