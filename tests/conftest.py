"""Hypothesis profiles for the property-based tests.

`ci` (the default): derandomized, so every run of the suite tries the same examples and a
landing never fails on a new random draw; bounded by each test's `max_examples`.
`explore` (`HYPOTHESIS_PROFILE=explore`): random draws, to look for new failures on purpose
(with FUZZ_EXAMPLES / DEID_FUZZ_EXAMPLES raised).
"""
import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
