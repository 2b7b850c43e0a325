"""What an LLM annotator spent and found: requests, tokens, and its parser's span counts.

`annotate` and `evaluate` put these beside their own figures (annotate.json, the metrics JSON),
so a run's cost on a served model can be estimated from measured token counts, and a span the
model named but the text does not hold, or that did not fall on tokens, is counted, not lost.
spacy-llm 0.7 keeps the component's model and the task's parser private (`_model`,
`_parse_responses`): they are read here, in one place, and missing ones give no figures.
"""
from typing import Any, Dict, Optional

from spacy.language import Language


def llm_stats(nlp: Language) -> Optional[Dict[str, Any]]:
    """Figures of the pipeline's first spacy-llm component, or None when it has none."""
    for name, pipe in nlp.pipeline:
        task, model = getattr(pipe, "task", None), getattr(pipe, "_model", None)
        if task is None or model is None:
            continue
        parser = getattr(task, "_parse_responses", None)
        return {"component": name, "model": type(model).__name__,
                "requests": getattr(model, "requests_sent", None),
                "usage": dict(getattr(model, "usage", None) or {}),
                "spans": dict(sorted((getattr(parser, "counts", None) or {}).items()))}
    return None


def per_1000(stats: Dict[str, Any], n_notes: int) -> Dict[str, float]:
    """Token counts per 1,000 notes (the unit of a served model's price)."""
    if n_notes <= 0:
        return {}
    return {key: round(value * 1000 / n_notes) for key, value in stats.get("usage", {}).items()}
