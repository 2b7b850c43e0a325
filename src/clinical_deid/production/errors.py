"""The production command's one error type: what a run cannot do, said without a note's text."""


class DeidError(ValueError):
    """A problem reported as one clean message: paths, ids, offsets, never a note's text."""
