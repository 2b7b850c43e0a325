"""Annotated corpora in, spaCy DocBins out.

`records` (the record shape, `Problems`, `CorpusError`), one reader a format (`brat`, `conll`,
`jsonl`, dispatched by `readers.read_corpus`), `docs` (records to Docs, misaligned spans,
sentence and chunk splitting), `convert` (one part, with its report), `prepare` (a folder's
train / dev / test parts) and `demo` (the synthetic demo corpus).
"""
