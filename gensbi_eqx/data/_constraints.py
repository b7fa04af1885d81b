"""Interval constraints on named nodes, as flat lower and upper bounds."""

from collections.abc import Mapping

import numpy as np

from ._layout import NodeLayout


def _bound(value, shape: tuple[int, ...], default: float, where: str) -> np.ndarray:
    if value is None:
        return np.full(shape, default, dtype=np.float32)
    if isinstance(value, (list, tuple)):
        # ``None`` entries leave that entry open, as a ``None`` bound leaves the node open.
        value = [default if v is None else v for v in value]
    try:
        array = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as error:
        raise TypeError(f"`{where}` must be a number or an array of numbers.") from error
    try:
        array = np.broadcast_to(array, shape)
    except ValueError as error:
        raise ValueError(
            f"`{where}` must broadcast to the node's shape {shape}, got {array.shape}."
        ) from error
    if np.isnan(array).any():
        raise ValueError(f"`{where}` contains NaN; use -inf / inf (or None) for no bound.")
    return array


def interval_bounds(
    layout: NodeLayout, constraints: Mapping, argument: str = "constraints", times: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """``{name: (lower, upper)}`` -> flat ``lower, upper``, each ``(num_scalars,)`` float32.

    Each bound is a number or an array broadcasting to the node's shape; ``None``, ``-inf`` and
    ``inf`` mean no bound on that side. Nodes (and entries) not constrained get ``(-inf, inf)``.
    ``argument`` names the mapping in errors; ``times`` admits nodes with times.
    """
    if not isinstance(constraints, Mapping):
        raise TypeError(
            f"`{argument}` must be a dict like {{'theta': (lower, upper)}}, got "
            f"{type(constraints).__name__}."
        )
    layout.check_names(constraints, argument)
    timed = [name for name in constraints if name in layout.metadata_nodes]
    if timed and not times:
        raise ValueError(
            f"`constraints` on node(s) with times {timed} are not available: which of their "
            "points a box would bind depends on the query. Constrain nodes without times."
        )
    lower = np.full(layout.num_scalars, -np.inf, dtype=np.float32)
    upper = np.full(layout.num_scalars, np.inf, dtype=np.float32)
    for name, bounds in constraints.items():
        if not (isinstance(bounds, (tuple, list)) and len(bounds) == 2):
            raise ValueError(
                f"`{argument}[{name!r}]` must be a pair (lower, upper), got {bounds!r}."
            )
        shape = layout.shapes[layout.names.index(name)]
        lo = _bound(bounds[0], shape, -np.inf, f"{argument}[{name!r}][0]").reshape(-1)
        hi = _bound(bounds[1], shape, np.inf, f"{argument}[{name!r}][1]").reshape(-1)
        if (lo >= hi).any():
            bad = int(np.argmax(lo >= hi))
            raise ValueError(
                f"`{argument}[{name!r}]`: lower must be below upper, got {lo[bad]} >= "
                f"{hi[bad]} at element {bad}."
            )
        lower[layout.slices[name]] = lo
        upper[layout.slices[name]] = hi
    return lower, upper
