"""Resuming an interrupted run, refusing damaged outputs, one run per output, failed writes."""
import errno
import json
import os
import pathlib

import pytest

from deidentify_support import jsonl_input, model, run, write_notes  # noqa: F401
from clinical_deid.production.errors import DeidError
from clinical_deid.production.locks import OutputLock
from clinical_deid.production.sinks import PARTIAL_SUFFIX


def test_folder_resumes_after_an_interruption(model, tmp_path):
    write_notes(tmp_path / "in")
    fresh = run(model, tmp_path / "in", tmp_path / "fresh")
    # Interrupted run: a.txt finished, sub/b.txt was being written when it stopped.
    (tmp_path / "out/sub").mkdir(parents=True)
    (tmp_path / "out/a.txt").write_text("FINISHED EARLIER")
    (tmp_path / f"out/sub/.b.txt{PARTIAL_SUFFIX}").write_text("Control de Lu")
    summary = run(model, tmp_path / "in", tmp_path / "out")
    assert summary["skipped"] == 1 and summary["documents"] == 2 and fresh["documents"] == 3
    assert (tmp_path / "out/a.txt").read_text() == "FINISHED EARLIER"
    assert (tmp_path / "out/sub/b.txt").read_text() == (tmp_path / "fresh/sub/b.txt").read_text()
    assert not list((tmp_path / "out").rglob(f"*{PARTIAL_SUFFIX}"))
    # --no-resume does everything again.
    assert run(model, tmp_path / "in", tmp_path / "out", resume=False)["documents"] == 3


def test_jsonl_resume_gives_the_same_output_as_one_run(model, tmp_path):
    inp = jsonl_input(tmp_path / "in.jsonl")
    run(model, inp, tmp_path / "full.jsonl", spans_output=tmp_path / "full.spans.jsonl")
    full = (tmp_path / "full.jsonl").read_bytes()
    lines = full.splitlines(keepends=True)
    # Interrupted after two complete lines and half of the third.
    (tmp_path / "out.jsonl").write_bytes(lines[0] + lines[1] + lines[2][:20])
    (tmp_path / "out.spans.jsonl").write_bytes(b"".join((tmp_path / "full.spans.jsonl").read_bytes().splitlines(keepends=True)[:3]))
    summary = run(model, inp, tmp_path / "out.jsonl", spans_output=tmp_path / "out.spans.jsonl")
    assert summary["skipped"] == 2
    assert (tmp_path / "out.jsonl").read_bytes() == full
    assert (tmp_path / "out.spans.jsonl").read_bytes() == (tmp_path / "full.spans.jsonl").read_bytes()


def test_resume_refuses_damaged_or_foreign_jsonl(model, tmp_path):
    inp = jsonl_input(tmp_path / "in.jsonl")
    run(model, inp, tmp_path / "full.jsonl", spans_output=tmp_path / "full.spans.jsonl")
    full = (tmp_path / "full.jsonl").read_bytes().splitlines(keepends=True)
    spans = (tmp_path / "full.spans.jsonl").read_bytes().splitlines(keepends=True)
    out, out_spans = tmp_path / "out.jsonl", tmp_path / "out.spans.jsonl"
    damaged = {
        "NUL bytes": (full[:3], spans[:1] + [b"\0" * 40 + spans[1]] + spans[2:3]),
        "its line 2 does not match input line 2": (full[:1] + full[:2], spans[:3]),  # a duplicated line
        "spans line is of another document": (full[:3], spans[1:4]),
    }
    for problem, (out_lines, spans_lines) in damaged.items():
        out.write_bytes(b"".join(out_lines))
        out_spans.write_bytes(b"".join(spans_lines))
        with pytest.raises(DeidError, match=problem):
            run(model, inp, out, spans_output=out_spans)
        assert out.read_bytes() == b"".join(out_lines)  # refused, nothing changed
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"id": "x", "text": "otra nota"}) + "\n")
    with pytest.raises(DeidError, match="does not match input line 1"):
        run(model, other, tmp_path / "full.jsonl")
    first = tmp_path / "first.jsonl"  # the first line of the input only
    first.write_bytes(inp.read_bytes().splitlines(keepends=True)[0])
    with pytest.raises(DeidError, match="more lines than the input"):
        run(model, first, tmp_path / "full.jsonl")
    out.write_bytes(b"".join(full[:2]))
    out_spans.write_bytes(b"".join(spans[:2]))
    run(model, inp, out, spans_output=out_spans)  # intact: resumes as before
    assert out.read_bytes() == b"".join(full) and out_spans.read_bytes() == b"".join(spans)


def test_folder_resume_redoes_documents_whose_spans_are_damaged(model, tmp_path):
    write_notes(tmp_path / "in")
    run(model, tmp_path / "in", tmp_path / "fresh", spans_output=tmp_path / "fresh.spans.jsonl")
    run(model, tmp_path / "in", tmp_path / "out", spans_output=tmp_path / "spans.jsonl")
    lines = (tmp_path / "spans.jsonl").read_bytes().splitlines(keepends=True)
    (tmp_path / "spans.jsonl").write_bytes(lines[0] + b"\0" * 30 + lines[1] + lines[0])  # NULs, duplicate, b.txt lost
    summary = run(model, tmp_path / "in", tmp_path / "out", spans_output=tmp_path / "spans.jsonl")
    assert summary["skipped"] == 1 and summary["documents"] == 2
    kept = sorted((tmp_path / "spans.jsonl").read_bytes().splitlines(keepends=True))
    assert kept == sorted((tmp_path / "fresh.spans.jsonl").read_bytes().splitlines(keepends=True))


def test_a_second_run_on_the_same_output_stops_at_once(model, tmp_path):
    inp = jsonl_input(tmp_path / "in.jsonl")
    with OutputLock([tmp_path / "out.jsonl"]):  # another run holds it
        with pytest.raises(DeidError, match="another run is writing .*out.jsonl"):
            run(model, inp, tmp_path / "out.jsonl")
    write_notes(tmp_path / "in")
    with OutputLock([], folders=[tmp_path / "out"]):
        with pytest.raises(DeidError, match="another run is writing"):
            run(model, tmp_path / "in", tmp_path / "out")
    with OutputLock([tmp_path / "spans.jsonl"]):
        with pytest.raises(DeidError, match="another run is writing .*spans.jsonl"):
            run(model, tmp_path / "in", tmp_path / "out2", spans_output=tmp_path / "spans.jsonl")
    assert run(model, inp, tmp_path / "out.jsonl")["documents"] == 3  # free again


def test_a_failing_write_stops_cleanly_and_keeps_what_was_done(model, tmp_path, monkeypatch):
    write_notes(tmp_path / "in")
    real = pathlib.Path.write_bytes
    calls = []

    def read_only(self, data):
        calls.append(self)
        if len(calls) == 2:
            raise PermissionError(errno.EROFS, "Read-only file system", str(self))
        return real(self, data)

    monkeypatch.setattr(pathlib.Path, "write_bytes", read_only)
    with pytest.raises(DeidError, match=r"cannot write .*Read-only file system.*the 1 documents before are kept"):
        run(model, tmp_path / "in", tmp_path / "out", spans_output=tmp_path / "spans.jsonl")
    monkeypatch.undo()
    assert [p.name for p in (tmp_path / "out").rglob("*")] == ["a.txt"]  # no partial file left
    summary = run(model, tmp_path / "in", tmp_path / "out", spans_output=tmp_path / "spans.jsonl")
    assert summary["skipped"] == 1 and summary["documents"] == 2
    if os.path.exists("/dev/full"):  # a full disk
        with pytest.raises(DeidError, match="cannot write /dev/full: No space left on device"):
            run(model, jsonl_input(tmp_path / "in.jsonl"), "/dev/full")
