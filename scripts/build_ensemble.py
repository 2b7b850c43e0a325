"""Project step of `ensemble`: one annotator pipeline that votes over trained NER pipelines.

    python -m scripts.build_ensemble training/meddocan/ensemble/model-best \\
        ner_cpu ner_cpu-seed1 ner_cpu-pretrained-r25 --under training/meddocan

A member is a pipeline path, a name under --under (its model-best), or an installed package.
The work is `deid_synthesis.ensemble`; the result loads with spacy.load and scores with the
project's evaluate step as any trained annotator, and annotates with `--vars.annotator=ensemble`.
"""
from pathlib import Path
from typing import Annotated, List, Optional

import typer
from wasabi import msg

from clinical_deid.io import DataError, read_docbin
from deid_synthesis.ensemble import EnsembleError, best_min_votes, build_ensemble, scores_by_min_votes
from deid_synthesis.prune_strings import prune_strings


def resolve_member(member: str, under: Optional[Path]) -> str:
    """`member` itself if it is a path, else `under/member/model-best` if that exists, else a package name."""
    if Path(member).exists() or under is None:
        return member
    trained = under / member / "model-best"
    return str(trained) if trained.exists() else member


def main(
    output: Annotated[Path, typer.Argument(file_okay=False, help="Pipeline folder to write")],
    members: Annotated[List[str], typer.Argument(help="Member pipelines: paths, names under --under, or packages")],
    under: Annotated[Optional[Path], typer.Option("--under", help="Folder of trained pipelines (NAME/model-best)")] = None,
    min_votes: Annotated[int, typer.Option("--min-votes", help="Votes an entity needs (0: the best on --dev, "
                                           "else a strict majority)")] = 0,
    dev: Annotated[Optional[Path], typer.Option("--dev", help="Gold DocBin (the dev split) to choose the number of "
                                                "votes on, by strict F1 (with --min-votes 0)")] = None,
) -> None:
    """Assemble a voting annotator from trained NER pipelines and save it as one pipeline."""
    paths = [resolve_member(member, under) for member in members]
    try:
        nlp = build_ensemble(paths, min_votes or None)
        component = nlp.get_pipe("deid_ensemble_ner")
        if dev is not None and not min_votes:
            scores = scores_by_min_votes(nlp, read_docbin(dev, nlp.vocab))
            rows = [(path, score) for path, score in zip(paths, scores["members"])]
            rows += [(f"{k} votes", score) for k, score in scores["votes"].items()]
            msg.info(f"Strict entity scores on {dev}")
            for name, score in rows:
                msg.text(f"  {name}: P {score['p']:.4f} R {score['r']:.4f} F {score['f']:.4f}")
            # Built again (same members) so that the saved config holds the number chosen.
            nlp = build_ensemble(paths, best_min_votes(scores["votes"]), loaded=component.members)
            component = nlp.get_pipe("deid_ensemble_ner")
    except (EnsembleError, DataError) as err:
        msg.fail(str(err), exits=1)
    output.parent.mkdir(parents=True, exist_ok=True)
    nlp.to_disk(output)
    prune_strings(output)  # the members prune their own (EnsembleNER.to_disk)
    msg.good(f"{len(paths)} members, an entity needs {component.min_votes} votes → {output}")
    for path in paths:
        msg.text(f"  {path}")


if __name__ == "__main__":
    typer.run(main)
