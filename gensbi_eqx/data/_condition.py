"""Queries: a dict of observed values, NaN meaning "not observed", as one flat vector.

A node with times (`Series` in the training data) holds up to ``T`` points. A query fills
them in order: first the observed points (with their times), then the points to predict (at
the ``predict`` times), and the rest are free points, sampled and dropped, whose times the
caller chooses (`Estimator` spreads them over the training range). The points of such a node
are exchangeable to the model, so where a point sits does not matter; its time does.
"""

from collections.abc import Mapping, Sequence

import numpy as np

from .._custom_types import ArrayLike
from ._layout import NodeLayout
from ._series import NodeData, Series


def _as_float32(value, where: str) -> np.ndarray:
    try:
        return np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as error:
        raise TypeError(f"`{where}` must be an array of numbers.") from error


def _plain_node(layout: NodeLayout, name: str, value, argument: str) -> np.ndarray:
    """A node without times, ``(*batch, *shape)`` -> ``(*batch, size)``."""
    shape = layout.shapes[layout.names.index(name)]
    if isinstance(value, Series):
        raise ValueError(
            f"`{argument}[{name!r}]` is gs.Series, but node {name!r} was trained without "
            "times; give a plain array."
        )
    array = _as_float32(value, f"{argument}[{name!r}]")
    if array.ndim == 0 and shape == (1,):
        array = array[None]
    if array.shape[array.ndim - len(shape):] != shape or array.ndim < len(shape):
        expected = ", ".join(("*batch",) + tuple(map(str, shape)))
        raise ValueError(f"`{argument}[{name!r}]` must have shape ({expected}), got {array.shape}.")
    return array.reshape(array.shape[: array.ndim - len(shape)] + (-1,))


def _timed_node(layout: NodeLayout, name: str, value, times_wanted, free_range, argument: str):
    """A node with times: observed points, then points to predict, then free points, spread
    evenly over ``free_range = (low, high)`` (NaN times if ``None``).

    Returns ``values (*batch, size)`` (NaN: latent), ``times (*batch, size)`` and the flat
    indices of the predicted scalars, ``(n_predict, *channels)``.
    """
    shape = layout.shapes[layout.names.index(name)]
    capacity, channels = shape[0], shape[1:]
    if value is None:
        values = np.zeros((0,) + channels, np.float32)
        times = values.copy()
    elif not isinstance(value, Series):
        raise ValueError(
            f"`{argument}[{name!r}]` must be gs.Series(values, times): node {name!r} was "
            "trained with the time of each point."
        )
    else:
        values, times = value.aligned(f"{argument}[{name!r}]", len(shape))
        if channels and values.shape[-1:] != channels:
            raise ValueError(
                f"`{argument}[{name!r}].values` must have shape (*batch, n, {channels[0]}), "
                f"got {values.shape}."
            )
    if times_wanted is None:
        query = np.zeros((0,) + (1,) * len(channels), np.float32)
    else:
        query = _as_float32(times_wanted, f"predict[{name!r}]")
        if query.ndim == 0 or not np.isfinite(query).all():
            raise ValueError(
                f"`predict[{name!r}]` must be finite times of shape (n,) or (*batch, n), got "
                f"{query if query.ndim == 0 else query.shape}."
            )
        query = query.reshape(query.shape + (1,) * len(channels))
    num_observed = values.shape[values.ndim - 1 - len(channels)]
    num_predicted = query.shape[query.ndim - 1 - len(channels)]
    if num_observed + num_predicted > capacity:
        raise ValueError(
            f"Node {name!r} holds at most {capacity} points (its T in training), got "
            f"{num_observed} observed + {num_predicted} to predict."
        )
    point_axis = -1 - len(channels)
    batch = np.broadcast_shapes(values.shape[:point_axis], query.shape[:point_axis])
    point = (capacity,) + channels
    node_values = np.full(batch + point, np.nan, np.float32)
    node_times = np.full(batch + point, np.nan, np.float32)
    end = num_observed + num_predicted
    observed_points = (Ellipsis, slice(0, num_observed)) + (slice(None),) * len(channels)
    predicted_points = (Ellipsis, slice(num_observed, end)) + (slice(None),) * len(channels)
    node_values[observed_points] = values
    node_times[observed_points] = times
    node_times[predicted_points] = query
    if free_range is not None:
        num_free = capacity - end
        low, high = free_range
        free = low + (np.arange(num_free, dtype=np.float32) + 0.5) / max(num_free, 1) * (high - low)
        node_times[(Ellipsis, slice(end, capacity)) + (slice(None),) * len(channels)] = free.reshape(
            (num_free,) + (1,) * len(channels)
        )
    start = layout.slices[name].start
    flat = start + np.arange(int(np.prod(point))).reshape(point)
    predicted = flat[num_observed:end]
    return node_values.reshape(batch + (-1,)), node_times.reshape(batch + (-1,)), predicted


def query_vectors(
    layout: NodeLayout,
    condition: Mapping[str, NodeData],
    predict: Mapping[str, ArrayLike | Sequence] | None = None,
    argument: str = "condition",
    free_ranges: Mapping[str, tuple[float, float]] | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """A query as flat vectors: ``(given, times, predicted)``.

    - ``given``: ``(*batch, num_scalars)`` float32, NaN where not observed.
    - ``times``: ``(*batch, num_scalars)`` float32: the time of each scalar of a node with times,
      0 for nodes without. The free points of a node in ``free_ranges`` (``{name: (low,
      high)}``) are spread evenly over that range; other free points, and nodes with times
      that the query leaves out, get NaN.
    - ``predicted``: ``{name: flat indices (n, *channels)}`` of the points of ``predict``.

    Nodes missing from ``condition`` are not observed; NaN entries inside a given node are not
    observed either. Batch shapes of the given nodes broadcast against each other.
    """
    if not isinstance(condition, Mapping):
        raise TypeError(
            f"`{argument}` must be a dict of observed values like {{'x': x_o}}, "
            f"got {type(condition).__name__}."
        )
    predict = {} if predict is None else predict
    if not isinstance(predict, Mapping):
        raise TypeError(
            f"`predict` must be a dict of times like {{'x': times}}, got {type(predict).__name__}."
        )
    layout.check_names(condition, argument)
    layout.check_names(predict, "predict")
    untimed = [n for n in predict if n not in layout.metadata_nodes]
    if untimed:
        raise ValueError(
            f"`predict` names node(s) {untimed} that have no times; nodes not in `{argument}` "
            f"are sampled anyway. Nodes with times: {list(layout.metadata_nodes)}."
        )
    values, times, predicted = {}, {}, {}
    for name in layout.names:
        if name in layout.metadata_nodes:
            if name in condition or name in predict or name in (free_ranges or {}):
                free_range = None if free_ranges is None else free_ranges.get(name)
                values[name], times[name], predicted[name] = _timed_node(
                    layout, name, condition.get(name), predict.get(name), free_range, argument
                )
                if name not in predict:
                    del predicted[name]
        elif name in condition:
            values[name] = _plain_node(layout, name, condition[name], argument)
        if name in values and np.isinf(values[name]).any():
            raise ValueError(f"`{argument}[{name!r}]` contains inf; use NaN for 'not observed'.")
    try:
        batch = np.broadcast_shapes(
            *(a.shape[:-1] for a in values.values()), *(a.shape[:-1] for a in times.values())
        )
    except ValueError as error:
        shapes = {n: a.shape[:-1] for n, a in values.items()}
        raise ValueError(f"The batch shapes in `{argument}` do not broadcast: {shapes}.") from error
    flat = np.full(batch + (layout.num_scalars,), np.nan, dtype=np.float32)
    flat_times = np.zeros(batch + (layout.num_scalars,), dtype=np.float32)
    for name in layout.metadata_nodes:
        flat_times[..., layout.slices[name]] = np.nan
    for name, array in values.items():
        flat[..., layout.slices[name]] = array
    for name, array in times.items():
        flat_times[..., layout.slices[name]] = array
    return flat, flat_times, predicted


def condition_vector(
    layout: NodeLayout, condition: Mapping[str, NodeData], argument: str = "condition"
) -> np.ndarray:
    """``{name: (*batch, *shape)}`` -> ``(*batch, num_scalars)`` float32, NaN where not observed.

    Nodes missing from ``condition`` are not observed; NaN entries inside a given node are not
    observed either. Batch shapes of the given nodes broadcast against each other. (For nodes
    with times, see `query_vectors`.)
    """
    return query_vectors(layout, condition, None, argument)[0]
