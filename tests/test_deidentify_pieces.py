"""Long notes: cut in bounded pieces, de-identified, joined back exactly; huge ones reported."""
import json

from hypothesis import given, settings, strategies as st

from deidentify_support import NOTES, PHI, model, run  # noqa: F401
from clinical_deid.production.pieces import cut_points


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="ab \n", max_size=300), st.integers(2, 40))
def test_cut_points_cover_the_text_in_bounded_pieces(text, max_chars):
    pieces = cut_points(text, max_chars)
    assert pieces[0][0] == 0 and pieces[-1][1] == len(text)
    assert all(a[1] == b[0] for a, b in zip(pieces, pieces[1:]))
    assert all(0 < end - start <= max_chars for start, end in pieces) or text == ""


def test_long_notes_go_in_pieces_and_huge_ones_are_reported(model, tmp_path):
    long_note = "\n".join([NOTES["a.txt"], NOTES["sub/b.txt"]] * 6)
    rows = [{"id": "long", "text": long_note}, {"id": "huge", "text": "x " * 600}, {"id": "short", "text": NOTES["c.txt"]}]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    whole = run(model, tmp_path / "in.jsonl", tmp_path / "whole.jsonl", mode="redact", max_doc_chars=10_000)
    summary = run(model, tmp_path / "in.jsonl", tmp_path / "out.jsonl", mode="redact", max_chars=100,
                  max_doc_chars=1000, spans_output=tmp_path / "spans.jsonl")
    assert whole["failed"] == 0 and summary["documents"] == 2
    assert summary["failures"] == [{"id": "huge", "error": "too large: 1,200 characters, over --max-doc-chars 1,000; not processed"}]
    out = json.loads((tmp_path / "out.jsonl").read_text().splitlines()[0])["text"]
    assert out == json.loads((tmp_path / "whole.jsonl").read_text().splitlines()[0])["text"]
    spans = json.loads((tmp_path / "spans.jsonl").read_text().splitlines()[0])["spans"]
    assert len(spans) == 12 * 3 + 2 * 6  # every piece's entities, the rules' e-mails and phones
    for span in spans:
        assert out[span["out_start"]:span["out_end"]] == span["replacement"]
        assert long_note[span["start"]:span["end"]] in PHI + ["45 años"]
    # Pseudonymized with a key: a name is the same surrogate in every piece.
    run(model, tmp_path / "in.jsonl", tmp_path / "pseudo.jsonl", max_chars=100, max_doc_chars=1000,
        spans_output=tmp_path / "pseudo.spans.jsonl")
    spans = json.loads((tmp_path / "pseudo.spans.jsonl").read_text().splitlines()[0])["spans"]
    assert len({s["replacement"] for s in spans if long_note[s["start"]:s["end"]] == "Ana García"}) == 1
