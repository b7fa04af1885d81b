"""Networks over the tokens of one example."""

from ._base import AbstractModel as AbstractModel
from ._embeddings import GaussianFourierEmbedding as GaussianFourierEmbedding
from ._simformer import Simformer as Simformer
from ._transformer import MaskedSelfAttention as MaskedSelfAttention
from ._transformer import Transformer as Transformer
from ._transformer import TransformerBlock as TransformerBlock

__all__ = [
    "AbstractModel",
    "GaussianFourierEmbedding",
    "MaskedSelfAttention",
    "Simformer",
    "Transformer",
    "TransformerBlock",
]
