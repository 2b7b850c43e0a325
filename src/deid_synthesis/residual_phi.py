"""The production check: is every gold PHI string the model found gone from the output, and
how much gold PHI is left in it?

    python -m clinical_deid.deidentify training/meddocan/ner_cpu/model-best ../shared/data/meddocan/test \
        deidentified/meddocan/test --spans-output deidentified/meddocan/test.spans.jsonl --no-resume
    python -m scripts.residual_phi ../shared/data/meddocan/test deidentified/meddocan/test \
        --spans deidentified/meddocan/test.spans.jsonl --output metrics/meddocan/residual_phi.json \
        --markdown metrics/meddocan/residual_phi.md

Any corpus format, as `spacy project run production-check` does it (a JSONL data folder here):

    python -m scripts.gold_texts assets/demo-es check/input.jsonl --format jsonl --part test
    python -m clinical_deid.deidentify MODEL check/input.jsonl check/output.jsonl --spans-output check/spans.jsonl
    python -m scripts.residual_phi assets/demo-es check/output.jsonl --format jsonl --part test \
        --spans check/spans.jsonl

GOLD is any format the converters read (a BRAT folder, a JSONL or CoNLL file, or a data folder
with `--part test`), read by `deid_synthesis.corpus`'s readers so that its document ids are the
converter's (a JSONL record without an id: `<stem>-<line>`), or the gold DocBin (ids in
`user_data["id"]`; whole documents, not `--split` pieces); see `deid_synthesis.residual_input`.
OUTPUT is what `clinical_deid.deidentify` wrote: a folder (a .txt input folder gives `<id>.txt`
files, the input's relative paths) or a JSONL file (records matched by their id field; records
without one, by line, when GOLD is the JSONL the command read). Fewer than half the gold
documents matched is an error. For the production check of a JSONL or CoNLL corpus,
`python -m scripts.gold_texts` writes the command's input with the converter's ids. For each
gold entity:

- found: a span of the spans JSONL (offsets in the input) overlaps it (partly or wholly);
  unknown without --spans.
- leaked: its string occurs in the document's output text in any case or accent form
  ("GARCIA", "garcía" for "García": Unicode case folding, marks dropped, as deid_transform
  propagates; a one-character string only as written, its case is its meaning: sex "H", not
  "24 h"), as a word (`--match word`, default: not glued to letters or digits around it, so
  "H" is not found in "HTA" nor "45" in "145") or anywhere (`--match substring`); an entity
  that no span overlaps is leaked in place. The JSON also gives the overall figures of the other mode.
- violation: found and leaked. Each violation gets its causes, from where the string
  occurs in the output: `kept_by_policy` (inside a span of its own label left as it was by
  design: a label mapped to the kind keep), `inside_kept_span` (inside such a
  span of another label: a kept span that swallowed other PHI), `replacement` (inside or
  across a surrogate), `missed_mention` (unreplaced text over a gold entity: another
  mention of the same string, or the uncovered part of a partly found one) and `elsewhere`
  (text that no gold entity covers: a coincidence, or PHI the gold does not mark).
- residual share: leaked gold entities / all gold entities, per label and overall; also the
  share not found.

Caveat: a string is counted as leaked wherever it occurs in the output, so a short one (an
age "45", a sex "H") can be "leaked" by a coincidence ("45 mg", "vitamina D" for "D"); read
the figures per label and the causes. Only counts, ids, labels and offsets are printed or
written; the PHI strings are printed (never written) with --show only.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from typing import Dict, List, Optional, Sequence, Tuple

from clinical_deid.folding import folded_text, glued
from deid_synthesis.markdown import table
from deid_synthesis.residual_input import GoldDoc, key, read_gold, read_outputs, read_spans  # noqa: F401 (API)

CAUSES = ("kept_by_policy", "inside_kept_span", "replacement", "missed_mention", "elsewhere")
MATCHES = ("word", "substring")
# deid_transform's kinds that leave the text as it is.
KEPT_KINDS = ("keep",)
CAVEATS = [
    "A gold string counts as leaked wherever it occurs in the document's output (in any case "
    "or accent form, one-character strings as written; as a word unless match is substring), so short strings (ages such as "
    "'45', sex such as 'H') can be counted by coincidence; read the figures per label and "
    "the causes (elsewhere: text that no gold entity covers).",
    "A gold entity is found when any span of the de-identification overlaps it, even partly; "
    "a partly covered entity whose string is gone is not leaked, though a part of it may be.",
    "Labels mapped to the kind keep are left in the text by design: their violations have "
    "the cause kept_by_policy; 'not kept by policy' counts the violations with any other cause.",
]


def occurrence_spans(text: str, needle: str, match: str = "word") -> List[Tuple[int, int]]:
    """(start, end) in `text` of the (overlapping) occurrences of `needle`, in any case or
    accent form (a one-character needle as written); `word`: only those not glued to the word
    or number around them ("H" is not in "HTA", "pH" nor "H1N1", "45" not in "145"). The end
    is where the occurrence ends in `text` ("STRASSE" is longer than "Straße")."""
    if len(needle) == 1:
        found, pos = [], text.find(needle)
        while pos >= 0:
            end = pos + 1
            if match == "substring" or not (glued(text[pos - 1 : pos], needle, True) or glued(needle, text[end : end + 1], True)):
                found.append((pos, end))
            pos = text.find(needle, pos + 1)
        return found
    return folded_text(text).find(needle, word=match == "word")


def occurrences(text: str, needle: str, match: str = "word") -> List[int]:
    """Start offsets of occurrence_spans."""
    return [start for start, _ in occurrence_spans(text, needle, match)]


def to_input_offset(pos: int, spans: Sequence[Dict]) -> Optional[int]:
    """Input offset of output offset `pos` outside every replacement (None inside one)."""
    shift = 0
    for s in spans:  # sorted by position
        if pos < s["out_start"]:
            break
        if pos < s["out_end"]:
            return None
        shift = s["end"] - s["out_end"]
    return pos + shift


def outside_placeholders(output: str, needle: str, spans: Optional[Sequence[Dict]],
                         match: str = "word") -> List[Tuple[int, int]]:
    """`occurrence_spans` but those inside a default redaction placeholder (the label's name in
    brackets: "familiares" in "[FAMILIARES_SUJETO_ASISTENCIA]" is the label, not PHI)."""
    found = occurrence_spans(output, needle, match)
    placeholders = [(s["out_start"], s["out_end"]) for s in spans or ()
                    if s.get("replacement") == f"[{s.get('label')}]"]
    return [(o, e) for o, e in found if not any(a <= o and e <= b for a, b in placeholders)]


def leak_causes(gold: GoldDoc, label: str, needle: str, output: str, spans: Sequence[Dict],
                match: str = "word") -> List[str]:
    """Why `needle` (a found `label` entity's string) is still in `output`: a sorted list of CAUSES."""
    causes = set()
    for o, end in outside_placeholders(output, needle, spans, match):
        inside = [s for s in spans if s["out_start"] < end and o < s["out_end"]]
        if inside:
            if all(s.get("kind") in KEPT_KINDS and gold.text[s["start"] : s["end"]] == s["replacement"] for s in inside):
                # Left as it was by design; but a kept span over PHI of another label is a leak.
                causes.add("kept_by_policy" if all(s["label"] == label for s in inside) else "inside_kept_span")
            else:
                causes.add("replacement")
            continue
        # Outside every replacement: the input text there is unchanged. Over a gold entity,
        # that entity (or that part of it) was missed.
        start = to_input_offset(o, spans)
        missed = any(s < start + end - o and start < e for s, e, _ in gold.ents)
        causes.add("missed_mention" if missed else "elsewhere")
    return [c for c in CAUSES if c in causes]


def check_document(gold: GoldDoc, output: str, spans: Optional[Sequence[Dict]], match: str = "word") -> List[Dict]:
    """One row per gold entity: label, offsets, found (None without spans), leaked, violation, causes.

    An entity that no span overlaps is leaked: its text is unchanged in the output.
    """
    spans = sorted(spans, key=lambda s: s["start"]) if spans is not None else None
    found: List[Optional[bool]] = [
        None if spans is None else any(s["start"] < e and st < s["end"] for s in spans) for st, e, _ in gold.ents
    ]
    rows = []
    for (start, end, label), is_found in zip(gold.ents, found):
        needle = gold.text[start:end]
        leaked = is_found is False or (bool(needle) and bool(outside_placeholders(output, needle, spans, match)))
        row = {"id": gold.id, "label": label, "start": start, "end": end, "found": is_found, "leaked": leaked,
               "violation": bool(is_found and leaked)}
        if row["violation"]:
            row["causes"] = leak_causes(gold, label, needle, output, spans, match)  # type: ignore[arg-type]
        rows.append(row)
    return rows


def _share(part: int, whole: int) -> Optional[float]:
    return round(part / whole, 4) if whole else None


def summarize(rows: Sequence[Dict]) -> Dict:
    n = len(rows)
    known = [r for r in rows if r["found"] is not None]
    leaked = sum(r["leaked"] for r in rows)
    not_found = sum(not r["found"] for r in known)
    violations = [r for r in rows if r["violation"]]
    return {
        "gold_entities": n, "found": len(known) - not_found if known else None,
        "not_found": not_found if known else None, "not_found_share": _share(not_found, len(known)) if known else None,
        "leaked": leaked, "residual_share": _share(leaked, n),
        "violations": len(violations) if known else None,
        "violations_not_kept_by_policy": sum(r.get("causes") != ["kept_by_policy"] for r in violations) if known else None,
        "leaked_not_found": sum(r["leaked"] and r["found"] is False for r in rows) if known else None,
    }


def residual_check(gold_docs: Sequence[GoldDoc], outputs: Dict[str, str],
                   spans: Optional[Dict[str, List[Dict]]] = None, match: str = "word") -> Tuple[Dict, List[Dict]]:
    """The figures (overall, per label, violations by cause) and the rows of every gold entity."""
    rows: List[Dict] = []
    missing_output, missing_spans = [], []
    for gold in gold_docs:
        doc_key = key(gold.id)
        if doc_key not in outputs:
            missing_output.append(gold.id)
            continue
        doc_spans = None
        if spans is not None:
            doc_spans = spans.get(doc_key)
            if doc_spans is None:
                missing_spans.append(gold.id)
                doc_spans = []
        rows.extend(check_document(gold, outputs[doc_key], doc_spans, match))
    by_label: Dict[str, List[Dict]] = defaultdict(list)
    for row in rows:
        by_label[row["label"]].append(row)
    violations = [r for r in rows if r["violation"]]
    causes = Counter(c for r in violations for c in r["causes"])
    result = {
        "match": match,
        "documents": len(gold_docs) - len(missing_output),
        "documents_without_output": len(missing_output), "ids_without_output": missing_output,
        "documents_without_spans": len(missing_spans) if spans is not None else None,
        "ids_without_spans": missing_spans,
        "spans_given": spans is not None,
        "overall": summarize(rows),
        "per_label": {label: summarize(rs) for label, rs in sorted(by_label.items(), key=lambda kv: -len(kv[1]))},
        "violations_by_cause": {c: causes[c] for c in CAUSES},
        "violations_by_cause_note": "a violation is counted under each cause it has",
        "violation_ids": sorted({r["id"] for r in violations}),
        "violations": [{k: r[k] for k in ("id", "label", "start", "end", "causes")} for r in violations],
        "caveats": CAVEATS,
    }
    return result, rows


def check_run(gold_docs: Sequence[GoldDoc], outputs: Dict[str, str], spans: Optional[Dict[str, List[Dict]]] = None,
              match: str = "word") -> Tuple[Dict, List[Dict]]:
    """`residual_check` with the overall figures of the other match mode added
    (`overall_if_match_<mode>`), as the command writes them."""
    result, rows = residual_check(gold_docs, outputs, spans, match)
    other = next(mode for mode in MATCHES if mode != match)
    result[f"overall_if_match_{other}"] = residual_check(gold_docs, outputs, spans, other)[0]["overall"]
    return result, rows


def to_markdown(result: Dict) -> str:
    """The residual table (overall and per label), the violations by cause and the caveats."""
    def pct(x: Optional[float]) -> str:
        return "n/a" if x is None else f"{x:.2%}"

    def num(x: Optional[int]) -> str:
        return "n/a" if x is None else f"{x:,}"

    rows = [[label, f"{s['gold_entities']:,}", f"{num(s['not_found'])} ({pct(s['not_found_share'])})",
             f"{s['leaked']:,}", pct(s["residual_share"]), num(s["violations"]), num(s["violations_not_kept_by_policy"])]
            for label, s in [("**all**", result["overall"]), *result["per_label"].items()]]
    lines = [
        f"Residual PHI in the de-identified output of {result['documents']:,} documents "
        f"(strings matched as {'words' if result['match'] == 'word' else 'substrings'})"
        + (f" ({result['documents_without_output']:,} without output, left out)" if result["documents_without_output"] else ""),
        "",
        table(["label", "gold", "not found", "leaked", "residual", "violations", "not kept by policy"], rows, "lrrrrrr"),
    ]
    causes = ", ".join(f"{c} {n:,}" for c, n in result["violations_by_cause"].items())
    if result["spans_given"]:
        lines += [f"Violations (found, yet the string is in the output) by cause: {causes} "
                  f"({result['violations_by_cause_note']}).", ""]
    else:
        lines += ["Found, not found and violations need the spans JSONL of the run (--spans).", ""]
    lines += [f"- {c}" for c in result["caveats"]]
    return "\n".join(lines) + "\n"
