"""`python -m clinical_deid MODEL INPUT OUTPUT ...`: the production command (see deidentify)."""
from .deidentify import cli_main

cli_main()
