"""The research pipeline of the project: corpus conversion, evaluation, privacy figures,
generation of synthetic notes, machine annotation, the ablation grid and packaging.

The steps of `project.yml` are thin command lines in `scripts/` over this package. Only
`deid_synthesis.generation`-type modules need torch (the `generation` extra); the runtime that a
model wheel needs is the separate package `clinical_deid`.
"""
