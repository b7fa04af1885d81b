"""Queries: a dict of observed values, NaN meaning "not observed", as one flat vector."""

from collections.abc import Mapping

import numpy as np

from .._custom_types import ArrayLike
from ._layout import NodeLayout


def condition_vector(
    layout: NodeLayout, condition: Mapping[str, ArrayLike], argument: str = "condition"
) -> np.ndarray:
    """``{name: (*batch, *shape)}`` -> ``(*batch, num_nodes)`` float32, NaN where not observed.

    Nodes missing from ``condition`` are not observed; NaN entries inside a given node are not
    observed either. Batch shapes of the given nodes broadcast against each other.
    """
    if not isinstance(condition, Mapping):
        raise TypeError(
            f"`{argument}` must be a dict of observed values like {{'x': x_o}}, "
            f"got {type(condition).__name__}."
        )
    layout.check_names(condition, argument)
    values = {}
    for name, value in condition.items():
        shape = layout.shapes[layout.names.index(name)]
        try:
            array = np.asarray(value, dtype=np.float32)
        except (TypeError, ValueError) as error:
            raise TypeError(f"`{argument}[{name!r}]` must be an array of numbers.") from error
        if array.ndim == 0 and shape == (1,):
            array = array[None]
        if array.shape[array.ndim - len(shape):] != shape or array.ndim < len(shape):
            expected = ", ".join(("*batch",) + tuple(map(str, shape)))
            raise ValueError(
                f"`{argument}[{name!r}]` must have shape ({expected}), got {array.shape}."
            )
        if np.isinf(array).any():
            raise ValueError(f"`{argument}[{name!r}]` contains inf; use NaN for 'not observed'.")
        values[name] = array.reshape(array.shape[: array.ndim - len(shape)] + (-1,))
    try:
        batch = np.broadcast_shapes(*(a.shape[:-1] for a in values.values()))
    except ValueError as error:
        shapes = {n: a.shape for n, a in values.items()}
        raise ValueError(f"The batch shapes in `{argument}` do not broadcast: {shapes}.") from error
    flat = np.full(batch + (layout.num_nodes,), np.nan, dtype=np.float32)
    for name, array in values.items():
        flat[..., layout.slices[name]] = array
    return flat
