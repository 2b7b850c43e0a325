"""The production command, as a project step: `python -m scripts.deidentify MODEL INPUT OUTPUT ...`.

The command lives in the runtime package (`clinical_deid.deidentify`, its pieces in
`clinical_deid.production`; console script `clinical-deid`); this file only lets
`project.yml` name it beside the other steps.
"""
from clinical_deid.deidentify import cli_main

if __name__ == "__main__":
    cli_main()
