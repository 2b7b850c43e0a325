"""What the synthetic notes give away about the real ones they were adapted to.

Counts only (no text is printed or written unless `--show-strings`):

* n-gram recall (the paper's privacy measure) and copy rate (`ngrams`: hashed word n-grams);
* verbatim PHI reproduction, per label, for all and for the identifying strings (`phi`);
* the filter of the notes that reproduce an identifying string or share a long run of words
  with a real note (`filtering`);
* the prompt check: prompts holding a PHI string of their own dev note, which must be 0
  (`prompts`);
* all of them against every real split the run touched (`sources`, `report`);
* record linkage: synthetic notes holding 2+ identifying strings of one real note (`linkage`);
* the real identifying strings left in a text, located, for the second pass of
  pseudonymize-synthetic and the release gate (`verbatim`);
* membership inference on the adapter (`membership`) and canary exposure (`canaries`): these
  load the generator (torch), so they are imported from their modules, not from here.

The step's command line is `python -m scripts.privacy` (and `python -m scripts.privacy prompts`,
`... membership`, `... canaries`); the release gate is `deid_synthesis.release`.
"""
from deid_synthesis.privacy.filtering import filter_synthetic
from deid_synthesis.privacy.ngrams import distinct_ngrams, ngram_hashes, ngram_recall, word_runs
from deid_synthesis.privacy.phi import PhiIndex, phi_reproduction
from deid_synthesis.privacy.prompts import check_prompts, find_own_phi, find_phi_runs, phi_word_runs, prompt_phi
from deid_synthesis.privacy.report import privacy_report, split_figures
from deid_synthesis.privacy.sources import adaptation_docs, read_gold, tag_sources

__all__ = ["PhiIndex", "adaptation_docs", "check_prompts", "distinct_ngrams", "filter_synthetic", "find_own_phi",
           "find_phi_runs", "ngram_hashes", "ngram_recall", "phi_reproduction", "phi_word_runs", "privacy_report",
           "prompt_phi", "read_gold", "split_figures", "tag_sources", "word_runs"]
