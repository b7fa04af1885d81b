"""Networks over the tokens of one example."""

from ._attention_masks import MASK_POLICIES as MASK_POLICIES
from ._attention_masks import DependencyMask as DependencyMask
from ._attention_masks import attention_mask as attention_mask
from ._attention_masks import dense_mask as dense_mask
from ._attention_masks import directed_mask as directed_mask
from ._attention_masks import edge_mask_for as edge_mask_for
from ._attention_masks import undirected_mask as undirected_mask
from ._base import AbstractModel as AbstractModel
from ._embeddings import GaussianFourierEmbedding as GaussianFourierEmbedding
from ._flux1 import Flux1 as Flux1
from ._flux1_joint import Flux1Joint as Flux1Joint
from ._flux_blocks import DoubleStreamBlock as DoubleStreamBlock
from ._flux_blocks import SingleStreamBlock as SingleStreamBlock
from ._ids import STRATEGIES as STRATEGIES
from ._ids import IdEmbedding as IdEmbedding
from ._ids import apply_rope as apply_rope
from ._ids import grid_ids as grid_ids
from ._ids import rope_angles as rope_angles
from ._ids import sequence_ids as sequence_ids
from ._simformer import Simformer as Simformer
from ._transformer import MaskedSelfAttention as MaskedSelfAttention
from ._transformer import Transformer as Transformer
from ._transformer import TransformerBlock as TransformerBlock

MODELS = {cls.__name__: cls for cls in (Simformer, Flux1, Flux1Joint)}

__all__ = [
    "AbstractModel",
    "DependencyMask",
    "DoubleStreamBlock",
    "Flux1",
    "Flux1Joint",
    "GaussianFourierEmbedding",
    "IdEmbedding",
    "MASK_POLICIES",
    "MODELS",
    "MaskedSelfAttention",
    "STRATEGIES",
    "Simformer",
    "SingleStreamBlock",
    "Transformer",
    "TransformerBlock",
    "apply_rope",
    "attention_mask",
    "dense_mask",
    "directed_mask",
    "edge_mask_for",
    "grid_ids",
    "rope_angles",
    "sequence_ids",
    "undirected_mask",
]
