"""Record linkage: synthetic notes that hold two or more identifying PHI strings of one real note.

One real name in a synthetic note is a leak; a name *with* the date, record number or town of
the same real note points at a patient. For each synthetic note, the identifying strings it
holds (`PhiIndex`, annotated in at most `max_gold_docs` real documents) are grouped by the real
document they were annotated in; the note is linked when one real document gives two or more
distinct strings. Counts, and the label pairs involved, only: never the strings, never which
real note.
"""
from collections import Counter
from typing import Dict, Iterable

from deid_synthesis.privacy.phi import PhiIndex


def record_linkage(index: PhiIndex, synth_texts: Iterable[str]) -> Dict:
    """The linked notes among the synthetic texts.

    index (PhiIndex): the real splits' PHI strings (their `sources` and `identifying`).
    synth_texts (Iterable[str]): the synthetic notes.
    RETURNS (Dict): notes, linked_notes, share, max_strings_of_one_real_note, label_pairs
        ("LABEL_A + LABEL_B": linked notes holding that pair of one real note).
    """
    label_of: Dict[int, str] = {i: label for label, ids in index.by_label.items() for i in ids}
    notes = linked = most = 0
    pairs: Counter = Counter()
    for text in synth_texts:
        notes += 1
        by_source: Dict[str, set] = {}
        for i in index.find(text) & index.identifying:
            for source in index.sources[i]:
                by_source.setdefault(source, set()).add(i)
        together = [ids for ids in by_source.values() if len(ids) >= 2]
        if together:
            linked += 1
            most = max(most, max(len(ids) for ids in together))
            pairs.update({" + ".join(sorted({label_of[i] for i in ids})) for ids in together})
    return {"notes": notes, "linked_notes": linked, "share": round(linked / notes, 4) if notes else 0.0,
            "max_strings_of_one_real_note": most, "label_pairs": dict(pairs.most_common())}
