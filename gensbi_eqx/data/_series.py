"""Values that carry a coordinate per element: a series observed at times, a function on a grid.

``Series(values, times)`` marks a node whose elements sit at continuous coordinates (a time,
a position). Each scalar then becomes a token that knows its coordinate, so examples may be
observed at different times, and a query may give any times, including ones never simulated.
"""

from collections.abc import Sequence
from typing import TypeAlias

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .._custom_types import ArrayLike
from ._standardiser import Standardiser


class Series(eqx.Module):
    """A node's ``values`` with the coordinate (``times``) of each of its elements.

    **Arguments:**
    - `values`: ``(*batch, T)`` or ``(*batch, T, channels)``: ``T`` points of a series (of
      ``channels`` quantities each, e.g. prey and predator). In training data the batch is the
      ``N`` simulations; in a query it is optional.
    - `times`: the coordinate of every value: ``(T,)`` (the same for every row), ``(*batch, T)``
      (per row, shared by the channels), or ``values``' own shape (per row and channel). Any
      real numbers, in any order; a query may use times no simulation had.

    Used in `gensbi_eqx.fit`'s ``data`` (the node is then a set of ``T`` exchangeable tokens,
    told apart only by their coordinate) and in `Estimator.sample`'s ``condition``.
    """

    values: np.ndarray
    times: np.ndarray

    def __init__(self, values: ArrayLike | Sequence, times: ArrayLike | Sequence):
        try:
            self.values = np.asarray(values, dtype=np.float32)
            self.times = np.asarray(times, dtype=np.float32)
        except (TypeError, ValueError) as error:
            raise TypeError(
                "gs.Series(values, times) takes arrays of real numbers, got "
                f"{type(values).__name__} and {type(times).__name__}."
            ) from error

    def aligned(self, argument: str, point_ndim: int) -> tuple[np.ndarray, np.ndarray]:
        """``(values, times)`` as float32 arrays of the same shape ``(*batch, T, *channels)``.

        ``point_ndim`` is 1 for a ``(T,)`` node and 2 for a ``(T, channels)`` node.
        """
        values, times = self.values, self.times
        if values.ndim < point_ndim:
            kind = "(*batch, T)" if point_ndim == 1 else "(*batch, T, channels)"
            raise ValueError(f"`{argument}.values` must have shape {kind}, got {values.shape}.")
        channels = values.shape[values.ndim - point_ndim + 1 :]
        if times.ndim >= 1 and times.shape != values.shape and channels:
            times = times[..., None]  # one time per point, shared by its channels
        try:
            times = np.broadcast_to(times, values.shape)
        except ValueError:
            times = None
        if times is None or np.ndim(self.times) == 0:
            raise ValueError(
                f"`{argument}.times` must have shape (T,), (*batch, T) or values' shape "
                f"{values.shape} (T = {values.shape[values.ndim - point_ndim]}), got "
                f"{np.shape(self.times)}."
            )
        if not np.isfinite(times).all():
            raise ValueError(f"`{argument}.times` must be finite, got NaN or inf.")
        return values, np.array(times)


# What a node of named data may be: an array (or nested list), or values with times.
NodeData: TypeAlias = ArrayLike | Sequence | Series



def time_standardiser(layout, times: np.ndarray) -> Standardiser:
    """Maps each node's times onto ``[0, 1]`` over their range in ``times`` ``(N, num_scalars)``
    (`NodeLayout.flatten_times`; a node with one time throughout maps it to 0); the model sees
    times in these units. Scalars without times get the identity."""
    mean = np.zeros(layout.num_scalars, np.float32)
    std = np.ones(layout.num_scalars, np.float32)
    for name in layout.metadata_nodes:
        part = layout.slices[name]
        low, high = float(times[:, part].min()), float(times[:, part].max())
        mean[part] = low
        std[part] = high - low if high > low else 1.0
    return Standardiser(jnp.asarray(mean), jnp.asarray(std))
