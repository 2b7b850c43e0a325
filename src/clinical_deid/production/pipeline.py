"""The pipeline of a run: loaded, completed with the de-identification components, and set to
report a failing document instead of stopping."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, Tuple, Union
from pathlib import Path

import spacy
from spacy.language import Language
from spacy.tokens import Doc

from .errors import DeidError

if TYPE_CHECKING:
    from .options import RunOptions


def ensure_registered() -> None:
    """Register the tokenizer and the components (an import; entry points do it for spaCy too)."""
    from .. import rules, tokenizer, transform  # noqa: F401


def prepare_pipeline(nlp: Language, mode: Optional[str] = None, rules: bool = True,
                     seed: Optional[int] = None) -> Language:
    """Add deid_rules and deid_transform when the pipeline lacks them; set mode and seed.

    nlp (Language): the pipeline (changed in place).
    mode (Optional[str]): redact, mask or pseudonymize (None: the pipeline's, else pseudonymize).
    rules (bool): add deid_rules (or, when the pipeline has it, leave it enabled).
    seed (Optional[int]): the surrogates' seed (None: the pipeline's).
    RETURNS (Language): `nlp`.
    """
    ensure_registered()
    if "deid_transform" not in nlp.pipe_names:
        if rules and "deid_rules" not in nlp.pipe_names:
            nlp.add_pipe("deid_rules")
        config: Dict[str, Any] = {"mode": mode or "pseudonymize"}
        if seed is not None:
            config["seed"] = seed
        nlp.add_pipe("deid_transform", config=config)
    else:
        transform = nlp.get_pipe("deid_transform")
        if mode:
            transform.mode = mode
        if seed is not None:
            transform.seed = seed
        if not rules and "deid_rules" in nlp.pipe_names:
            nlp.disable_pipe("deid_rules")
    return nlp


def load_pipeline(model: Union[str, Path, Language]) -> Language:
    """The pipeline by path or package name (or a loader a packaged pipeline registered).

    model (Union[str, Path, Language]): a folder, an installed package, or a pipeline as it is.
    RETURNS (Language): the pipeline.
    """
    if isinstance(model, Language):
        return model
    ensure_registered()
    try:
        return spacy.load(model)
    except OSError as err:
        raise DeidError(f"cannot load the pipeline {model}: no installed package or readable pipeline folder "
                        f"by that name ({type(err).__name__})") from None
    except Exception as err:  # a broken config or weights: the path and the type say where to look
        raise DeidError(f"cannot load the pipeline {model}: {type(err).__name__}") from None


def ready_pipeline(model: Union[str, Path, Language], options: "RunOptions") -> Tuple[Language, "ErrorLog"]:
    """The pipeline as a run uses it: loaded, deid components added, label map, key, length
    limit, and an error log as its components' error handler. A run's process and each of its
    workers call this, so that all of them de-identify alike.

    model (Union[str, Path, Language]): as load_pipeline.
    options (RunOptions): the run's options (checked).
    RETURNS (Tuple[Language, ErrorLog]): the pipeline and its error log.
    """
    from ..label_map import apply_label_map
    from .keys import use_key

    nlp = load_pipeline(model)
    prepare_pipeline(nlp, mode=options.mode, rules=options.rules, seed=options.seed)
    apply_label_map(nlp, options.label_map)  # type: ignore[arg-type]  (check read it)
    use_key(nlp, options.key, options.insecure_demo_key)
    nlp.max_length = max(nlp.max_length, options.max_chars + 1)
    errors = ErrorLog()
    set_error_handler(nlp, errors)
    return nlp, errors


def make_doc(nlp: Language, text: str, group: Optional[str] = None) -> Doc:
    """Tokenize `text`, with its date-shift group (a patient id) when the component takes one."""
    doc = nlp.make_doc(text)
    if group is not None and Doc.has_extension("deid_group"):
        doc._.deid_group = group
    return doc


class ErrorLog:
    """Error handler of the pipeline's components: remembers why a document was dropped
    (the component and the exception's type: an exception's text may quote the note)."""

    def __init__(self) -> None:
        self.by_index: Dict[int, str] = {}

    def __call__(self, proc_name: str, proc: Callable, docs: Any, err: Exception) -> None:
        for doc in docs or ():  # spaCy drops the docs and goes on
            if isinstance(getattr(doc, "_context", None), int):
                self.by_index[doc._context] = f"{proc_name} failed: {type(err).__name__}"


def set_error_handler(nlp: Language, handler: Callable) -> None:
    """Like nlp.set_error_handler, for the components that take one.

    spaCy's parser-based components (ner) have no attribute for it, and
    Language.set_error_handler raises on them; their errors are caught around nlp.pipe.
    """
    nlp.default_error_handler = handler
    for _, pipe in nlp.pipeline:
        if hasattr(pipe, "set_error_handler"):
            try:
                pipe.set_error_handler(handler)
            except AttributeError:
                pass
