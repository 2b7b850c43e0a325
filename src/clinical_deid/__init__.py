"""De-identification of clinical notes with spaCy: the runtime that packaged pipelines need.

The clinical tokenizer (`deid.clinical_tokenizer.v1`), the `deid_rules` and `deid_transform`
components and the production command (`clinical-deid`). spaCy finds the registered pieces
through this distribution's entry points, so a model wheel carries weights and config only and
lists `clinical-deid` as a requirement. Importing the package loads nothing heavy (no torch).
"""
__version__ = "0.1.0"
