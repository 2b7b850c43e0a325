"""Freeze the embeddings and the lower layers of a spacy-transformers encoder before training.

On 2 CPU cores a 12-layer encoder trains at about 90 tokens/s (docs/results.md, "Annotators"):
an epoch of MEDDOCAN takes about an hour. Most of that is the backward pass through every layer
and the optimizer's step over the 250k-row embedding table. Frozen parameters get no gradient,
so the backward pass stops at the first trainable layer and the optimizer skips them
(thinc's PyTorchShim updates only parameters with a gradient). spacy-transformers has no such
option, so it is an `[initialize.after_init]` callback of the training config:

    [initialize.after_init]
    @callbacks = "deid.freeze_transformer.v1"
    frozen_layers = 8
    freeze_embeddings = true

It acts at `nlp.initialize` only (training); a saved pipeline loads and runs as any other.
"""
from typing import Callable

from spacy.language import Language


class FreezeError(ValueError):
    """The pipeline's encoder cannot be frozen as asked (the message says why)."""


def freeze_encoder(nlp: Language, frozen_layers: int, freeze_embeddings: bool, pipe: str = "transformer") -> int:
    """Turn off gradients of the encoder's embeddings and its lowest `frozen_layers` layers.

    nlp (Language): a pipeline with a spacy-transformers component named `pipe`.
    frozen_layers (int): layers frozen from the bottom (0: none).
    freeze_embeddings (bool): freeze the embedding table too.
    RETURNS (int): the number of parameters frozen.
    """
    if frozen_layers == 0 and not freeze_embeddings:
        return 0
    if pipe not in nlp.pipe_names:
        raise FreezeError(f"no '{pipe}' component to freeze (pipeline: {', '.join(nlp.pipe_names)})")
    encoder = nlp.get_pipe(pipe).model.transformer
    layers = getattr(getattr(encoder, "encoder", None), "layer", None)
    if layers is None or not hasattr(encoder, "embeddings"):
        raise FreezeError(f"{type(encoder).__name__}: not a BERT-like encoder (embeddings + encoder.layer)")
    if not 0 <= frozen_layers <= len(layers):
        raise FreezeError(f"frozen_layers = {frozen_layers}: the encoder has {len(layers)} layers")
    modules = ([encoder.embeddings] if freeze_embeddings else []) + list(layers[:frozen_layers])
    frozen = 0
    for module in modules:
        for parameter in module.parameters():
            parameter.requires_grad_(False)
            frozen += parameter.numel()
    return frozen


def make_freeze_transformer(frozen_layers: int = 0, freeze_embeddings: bool = False) -> Callable[[Language], Language]:
    """The `deid.freeze_transformer.v1` callback (see the module docstring)."""
    def freeze(nlp: Language) -> Language:
        freeze_encoder(nlp, frozen_layers, freeze_embeddings)
        return nlp

    return freeze
