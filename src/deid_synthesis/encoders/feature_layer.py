"""`deid.Tok2VecWithEncoder.v1`: a tok2vec's vectors side by side with frozen encoder features.

The NER of a CNN annotator reads, for each token, its own tok2vec output (trained, an 8-token
window of hashed word features) next to a trained projection of the frozen encoder's contextual
features that `deid_encoder_features` stored in `doc._.deid_encoder` (encoders.features). The
encoder gives what the CNN lacks (context across the sentence, knowledge of the language); the
projection and the CNN train at CNN learning rates, and no gradient reaches the encoder.

    [components.ner.model.tok2vec]
    @architectures = "deid.Tok2VecWithEncoder.v1"
    width = 128
    n_features = null   # hidden size x layers of the features component: null = from the first doc
    dropout = 0.1

    [components.ner.model.tok2vec.tok2vec]
    @architectures = "spacy.Tok2VecListener.v1"
    ...
"""
from typing import Callable, List, Optional, Tuple

from spacy.tokens import Doc
from thinc.api import Maxout, Model, concatenate
from thinc.types import Floats2d

from deid_synthesis.encoders.features import EXTENSION, EncoderFeaturesError


def doc_features(docs: List[Doc], n_features: Optional[int]) -> List[Floats2d]:
    """The stored features of each doc, checked for presence and width (any, if None)."""
    arrays = []
    for doc in docs:
        features = doc._.get(EXTENSION) if doc.has_extension(EXTENSION) else None
        if features is None:
            raise EncoderFeaturesError(
                "a doc has no encoder features: the pipeline needs a 'deid_encoder_features' component "
                "before this one (when frozen in training, also in [training] annotating_components)")
        if features.shape != (len(doc), n_features or features.shape[-1]):
            raise EncoderFeaturesError(f"encoder features of shape {features.shape}, expected "
                                       f"({len(doc)}, {n_features}): n_features must equal the "
                                       "encoder's hidden size times its number of layers")
        arrays.append(features)
    return arrays


def encoder_projection(width: int, n_features: Optional[int], dropout: float) -> Model[List[Doc], List[Floats2d]]:
    """Docs → a trained Maxout projection (width `width`) of their stored encoder features.

    With n_features None, the projection's input width is set by the first docs with features
    (the first training batch; a saved pipeline restores it with its weights).
    """
    projection = Maxout(nO=width, nI=n_features, nP=2, dropout=dropout, normalize=True)
    # nlp.initialize runs the NER's tok2vec once on sample docs to infer its shapes (thinc's
    # chain predicts after initializing), before any component has annotated them: that one
    # call, on the very list init saw, gets zeros. Any other doc without features is an error.
    init_docs: List[List[Doc]] = []

    def forward(model: Model, docs: List[Doc], is_train: bool) -> Tuple[List[Floats2d], Callable]:
        ops = model.ops
        if init_docs and docs is init_docs.pop():
            return [ops.alloc2f(len(doc), width) for doc in docs], lambda d_outputs: []
        n_inputs = projection.get_dim("nI") if projection.has_dim("nI") else None
        arrays = [ops.asarray2f(features, dtype="float32") for features in doc_features(docs, n_inputs)]
        lengths = [len(array) for array in arrays]
        if n_inputs is None and arrays:
            projection.initialize(X=ops.alloc2f(1, arrays[0].shape[1]))
        if sum(lengths) == 0:
            return [ops.alloc2f(0, width) for _ in arrays], lambda d_outputs: []
        outputs, backprop_projection = projection(ops.flatten(arrays, pad=0), is_train)

        def backprop(d_outputs: List[Floats2d]) -> List[Doc]:
            backprop_projection(ops.flatten(d_outputs, pad=0))
            return []

        return ops.unflatten(outputs, lengths, pad=0), backprop

    # The projection initialises without data (or at its first features, see above).
    def init(model: Model, X=None, Y=None) -> None:
        if projection.has_dim("nI"):
            projection.initialize()
        init_docs[:] = [X] if X is not None else []

    return Model("deid_encoder_projection", forward, init=init, layers=[projection],
                 dims={"nO": width})


def make_tok2vec_with_encoder(tok2vec: Model[List[Doc], List[Floats2d]], width: int,
                              n_features: Optional[int] = None, dropout: float = 0.1) -> Model[List[Doc], List[Floats2d]]:
    """The `deid.Tok2VecWithEncoder.v1` architecture (module docstring)."""
    model = concatenate(tok2vec, encoder_projection(width, n_features, dropout))
    if tok2vec.has_dim("nO") and tok2vec.get_dim("nO"):
        model.set_dim("nO", tok2vec.get_dim("nO") + width)
    return model
