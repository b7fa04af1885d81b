"""Networks over the tokens of one example, and the attention policies of joint models."""

from ._attention_masks import AbstractAttention as AbstractAttention
from ._attention_masks import DenseAttention as DenseAttention
from ._attention_masks import DirectedAttention as DirectedAttention
from ._attention_masks import FixedAttention as FixedAttention
from ._attention_masks import UndirectedAttention as UndirectedAttention
from ._attention_masks import dense_mask as dense_mask
from ._attention_masks import directed_mask as directed_mask
from ._attention_masks import undirected_mask as undirected_mask
from ._base import AbstractModel as AbstractModel
from ._embedded import EmbeddedModel as EmbeddedModel
from ._flux1 import Flux1 as Flux1
from ._flux1_joint import Flux1Joint as Flux1Joint
from ._ids import grid_ids as grid_ids
from ._ids import sequence_ids as sequence_ids
from ._simformer import Simformer as Simformer

MODELS = {cls.__name__: cls for cls in (Simformer, Flux1, Flux1Joint, EmbeddedModel)}
"""The model classes `gs.load` rebuilds, by class name."""

__all__ = [
    "AbstractAttention",
    "AbstractModel",
    "DenseAttention",
    "DirectedAttention",
    "EmbeddedModel",
    "FixedAttention",
    "Flux1",
    "Flux1Joint",
    "MODELS",
    "Simformer",
    "UndirectedAttention",
    "dense_mask",
    "directed_mask",
    "grid_ids",
    "sequence_ids",
    "undirected_mask",
]
