"""Embedding networks: a node's values to a few summaries, trained with the model
(``gs.Simformer.for_data(data, embeddings={"x": gs.embeddings.SeriesEmbedding(1000, key=k)},
key=...)``). Any `equinox.Module` from the node's per-example values to ``(k,)`` or ``(k, c)``
serves; the ones here are small defaults for series and images."""

from ._base import AbstractEmbedding as AbstractEmbedding
from ._convolutional import ImageEmbedding as ImageEmbedding
from ._convolutional import SeriesEmbedding as SeriesEmbedding

EMBEDDINGS = {cls.__name__: cls for cls in (SeriesEmbedding, ImageEmbedding)}
"""The embedding classes `gs.load` rebuilds from their config, by class name."""

__all__ = ["AbstractEmbedding", "EMBEDDINGS", "ImageEmbedding", "SeriesEmbedding"]
