"""Named nodes <-> flat token vectors.

Users speak in names (``{"theta": (N, 2), "x": (N, 2)}``); models see one flat vector of
scalar tokens per example. A ``NodeLayout`` is the static map between the two.
"""

import math
from collections.abc import Mapping
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array, Bool, Float
from ._series import NodeData, Series


def _as_array(name: str, value: Any, argument: str) -> Array:
    """A node's training data as float32 ``(N, *shape)``; ``(N,)`` is read as ``(N, 1)``."""
    try:
        array = jnp.asarray(value)
    except TypeError as error:
        raise TypeError(
            f"`{argument}[{name!r}]` must be an array, got {type(value).__name__}."
        ) from error
    if not jnp.issubdtype(array.dtype, jnp.number) or jnp.issubdtype(array.dtype, jnp.complexfloating):
        raise TypeError(f"`{argument}[{name!r}]` must hold real numbers, got dtype {array.dtype}.")
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim == 0 or 0 in array.shape[1:]:
        raise ValueError(
            f"`{argument}[{name!r}]` must have shape (N, d), (N, tokens, channels) or (N,), "
            f"got {tuple(array.shape)}."
        )
    return array.astype(jnp.float32)


class NodeLayout(eqx.Module):
    """Ordered node names and their per-example shapes: node ``names[k]`` has shape
    ``shapes[k]`` (``(d,)`` for a vector, ``(tokens, channels)`` for e.g. a multi-channel time
    series) and owns the flat scalars ``slices[names[k]]`` (C order, channels fastest).

    Nodes in ``metadata_nodes`` (given as `Series` values) are ``T`` points of shape ``(T,)``
    or ``(T, channels)`` whose scalars each carry a coordinate (a time); their ``T`` is the
    most points a query can hold."""

    names: tuple[str, ...] = eqx.field(static=True)
    shapes: tuple[tuple[int, ...], ...] = eqx.field(static=True)
    metadata_nodes: tuple[str, ...] = eqx.field(static=True, default=())

    def __check_init__(self):
        if not self.names:
            raise ValueError("A layout needs at least one node, got none.")
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"Node names must be unique, got {self.names}.")
        if len(self.shapes) != len(self.names) or any(
            not shape or any(not isinstance(s, int) or s < 1 for s in shape) for shape in self.shapes
        ):
            raise ValueError(
                f"Every node needs a non-empty shape of positive ints, got "
                f"{dict(zip(self.names, self.shapes))}."
            )
        self.check_names(self.metadata_nodes, "metadata_nodes")
        for name in self.metadata_nodes:
            if len(self.shapes[self.names.index(name)]) > 2:
                raise ValueError(
                    f"Node {name!r} carries times, so it must have shape (T,) or (T, channels), "
                    f"got {self.shapes[self.names.index(name)]}."
                )

    @classmethod
    def from_data(cls, data: Mapping[str, NodeData], argument: str = "data") -> "NodeLayout":
        """The layout of named training data ``{name: (N, *shape), (N,) or Series}``, in the
        dict's order."""
        arrays = validate_data(data, argument)
        return cls(
            tuple(arrays),
            tuple(tuple(int(s) for s in a.shape[1:]) for a in arrays.values()),
            tuple(name for name, value in data.items() if isinstance(value, Series)),
        )

    @property
    def has_metadata(self) -> bool:
        return bool(self.metadata_nodes)

    def token_ids(self) -> tuple[int, ...]:
        """Which learned ID each scalar uses: its own index, except that the points of a node
        with times share one ID per channel (the ID of the node's first point), so that they
        are told apart only by their times and can come in any order."""
        ids = list(range(self.num_scalars))
        for name in self.metadata_nodes:
            part = self.slices[name]
            channels = self.channels(name)
            for k in range(part.start, part.stop):
                ids[k] = part.start + (k - part.start) % channels
        return tuple(ids)

    def metadata_mask(self) -> tuple[bool, ...]:
        """``(num_scalars,)``: True on the scalars that carry a coordinate."""
        return tuple(self.node_mask(self.metadata_nodes).tolist())

    @property
    def sizes(self) -> tuple[int, ...]:
        """Number of scalars of each node."""
        return tuple(math.prod(shape) for shape in self.shapes)

    def channels(self, name: str) -> int:
        """Channels per token of a node: the last axis of a ``(tokens, channels)`` node, 1 for a
        vector node."""
        shape = self.shapes[self.names.index(name)]
        return shape[-1] if len(shape) >= 2 else 1

    @property
    def num_scalars(self) -> int:
        return sum(self.sizes)

    @property
    def slices(self) -> dict[str, slice]:
        bounds = np.cumsum((0,) + self.sizes)
        return {n: slice(int(a), int(b)) for n, a, b in zip(self.names, bounds[:-1], bounds[1:])}

    def node_mask(self, names) -> np.ndarray:
        """``(num_scalars,)`` bool, True on the tokens of the given node names."""
        self.check_names(names, "names")
        mask = np.zeros(self.num_scalars, dtype=bool)
        for name in names:
            mask[self.slices[name]] = True
        return mask

    def check_names(self, names, argument: str) -> None:
        unknown = [n for n in names if n not in self.names]
        if unknown:
            raise ValueError(
                f"`{argument}` names unknown node(s) {unknown}; the nodes are {list(self.names)}."
            )

    def flatten(self, data: Mapping[str, NodeData], argument: str = "data") -> Float[Array, "N num_scalars"]:
        """Concatenate named data ``{name: (N, *shape)}`` into ``(N, num_scalars)`` in layout
        order (the values of `Series` nodes)."""
        self._check_metadata_given(data, argument)
        arrays = validate_data(data, argument)
        if tuple(arrays) != self.names:
            missing = [n for n in self.names if n not in arrays]
            self.check_names(arrays, argument)
            if missing:
                raise ValueError(f"`{argument}` lacks node(s) {missing}; every node is needed.")
            arrays = {n: arrays[n] for n in self.names}
        for name, shape in zip(self.names, self.shapes):
            if arrays[name].shape[1:] != shape:
                raise ValueError(
                    f"`{argument}[{name!r}]` must have shape (N, {', '.join(map(str, shape))}), "
                    f"got {tuple(arrays[name].shape)}."
                )
        return jnp.concatenate([a.reshape(a.shape[0], -1) for a in arrays.values()], axis=1)

    def flatten_times(self, data: Mapping[str, NodeData], argument: str = "data") -> np.ndarray:
        """``(N, num_scalars)`` float32: the times of the `Series` nodes' scalars, 0 elsewhere."""
        self._check_metadata_given(data, argument)
        n = len(next(iter(validate_data(data, argument).values())))
        times = np.zeros((n, self.num_scalars), np.float32)
        for name in self.metadata_nodes:
            shape = self.shapes[self.names.index(name)]
            _, node_times = data[name].aligned(f"{argument}[{name!r}]", len(shape))
            times[:, self.slices[name]] = node_times.reshape(n, -1)
        return times

    def _check_metadata_given(self, data: Mapping, argument: str) -> None:
        if not isinstance(data, Mapping):
            return  # validate_data explains
        for name, value in data.items():
            if (name in self.metadata_nodes) != isinstance(value, Series):
                raise ValueError(
                    f"`{argument}[{name!r}]` must be "
                    + (
                        "gs.Series(values, times): the model was trained with its times."
                        if name in self.metadata_nodes
                        else "a plain array: the model was trained without times for it."
                    )
                )

    def unflatten(self, flat: Float[Array, "*batch num_scalars"], names=None) -> dict[str, Array]:
        """Split ``(..., num_scalars)`` into ``{name: (..., *shape)}`` (only ``names`` if given)."""
        names = self.names if names is None else names
        batch = flat.shape[:-1]
        return {
            n: flat[..., self.slices[n]].reshape(batch + self.shapes[self.names.index(n)])
            for n in names
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "NodeLayout":
        metadata_nodes = tuple(config.get("metadata_nodes", ()))
        if "shapes" in config:
            shapes = tuple(tuple(s) for s in config["shapes"])
        else:
            shapes = tuple((s,) for s in config["sizes"])  # written before shapes existed
        return cls(tuple(config["names"]), shapes, metadata_nodes)

    @property
    def config(self) -> dict[str, Any]:
        """A JSON-able description; `from_config` rebuilds an equal layout."""
        return {
            "names": list(self.names),
            "shapes": [list(s) for s in self.shapes],
            "metadata_nodes": list(self.metadata_nodes),
        }


def validate_data(data: Mapping[str, NodeData], argument: str = "data") -> dict[str, Array]:
    """Check named training data and return it as float32 ``{name: (N, *shape)}``.

    Refuses: a non-mapping, no nodes, non-string names, mismatched or zero ``N``, and rows with
    NaN or inf (counted, so the user can find them in their simulator's output; `fit` drops
    them first unless told not to). An `Series` node gives its values; its times must match
    them (see `Series`) and be finite.
    """
    arrays = _checked_arrays(data, argument)
    bad = _invalid(arrays)
    if bad.any():
        raise ValueError(
            f"`{argument}` has {int(bad.sum())} of {bad.size} rows with NaN or inf (first at row "
            f"{int(np.argmax(bad))}); remove or fix these simulations, or let fit drop them "
            "(gs.Training(drop_invalid=True), the default)."
        )
    return arrays


def drop_invalid_rows(
    data: Mapping[str, NodeData], argument: str = "data"
) -> tuple[dict[str, NodeData], Bool[np.ndarray, " N"]]:
    """``(data without its rows with NaN or inf in any node, (N,) bool: which rows those are)``.

    A failed simulation is a row whose values are not all finite (in a `Series`, its values;
    its times must be finite anyway). Returns ``data`` as given when every row is valid.
    Refuses data whose every row is invalid, and whatever `validate_data` refuses besides.
    """
    bad = _invalid(_checked_arrays(data, argument))
    if bad.all():
        raise ValueError(
            f"Every one of the {bad.size} rows of `{argument}` has NaN or inf: nothing to train "
            "on. Check the simulator."
        )
    if not bad.any():
        return dict(data), bad
    keep = ~bad
    kept = {}
    for name, value in data.items():
        if isinstance(value, Series):
            # Times of shape (T,) are shared by every row; (N, T) or values' shape are per row.
            times = value.times[keep] if value.times.ndim >= 2 else value.times
            kept[name] = Series(value.values[keep], times)
        else:
            kept[name] = np.asarray(value)[keep]
    return kept, bad


def _invalid(arrays: Mapping[str, Array]) -> np.ndarray:
    """``(N,)`` bool: the rows with NaN or inf in any node."""
    bad = np.zeros(next(iter(arrays.values())).shape[0], dtype=bool)
    for a in arrays.values():
        bad |= ~np.isfinite(np.asarray(a)).reshape(a.shape[0], -1).all(axis=1)
    return bad


def _checked_arrays(data: Mapping[str, NodeData], argument: str) -> dict[str, Array]:
    """`validate_data` but for finiteness."""
    if not isinstance(data, Mapping):
        raise TypeError(
            f"`{argument}` must be a dict of named arrays like {{'theta': (N, d), 'x': (N, d)}}, "
            f"got {type(data).__name__}."
        )
    if not data:
        raise ValueError(f"`{argument}` is empty; it needs at least one named node.")
    arrays = {}
    for name, value in data.items():
        if not isinstance(name, str):
            raise TypeError(f"`{argument}` keys must be node names (str), got {name!r}.")
        if isinstance(value, Series):
            array = _as_array(name, value.values, argument)
            if array.ndim not in (2, 3):
                raise ValueError(
                    f"`{argument}[{name!r}].values` must have shape (N, T) or (N, T, channels), "
                    f"got {tuple(array.shape)}."
                )
            value.aligned(f"{argument}[{name!r}]", array.ndim - 1)  # checks the times
        else:
            array = _as_array(name, value, argument)
        arrays[name] = array
    lengths = {n: int(a.shape[0]) for n, a in arrays.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"Every node of `{argument}` must have the same N (rows), got {lengths}.")
    if next(iter(lengths.values())) == 0:
        raise ValueError(f"`{argument}` has no rows (N = 0).")
    return arrays
