"""Project step: `python -m scripts.privacy` (see deid_synthesis.privacy)."""
import typer

from deid_synthesis.privacy import *  # noqa: F401,F403
from deid_synthesis.privacy import main

if __name__ == "__main__":
    if sys.argv[1:2] == ["prompts"]:  # python -m deid_synthesis.privacy prompts SAMPLES DEV
        sys.argv.pop(1)
        typer.run(prompts_main)
    else:
        typer.run(main)
