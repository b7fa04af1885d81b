"""Named nodes <-> flat token vectors.

Users speak in names (``{"theta": (N, 2), "x": (N, 2)}``); models see one flat vector of
scalar tokens per example. A ``NodeLayout`` is the static map between the two.
"""

from collections.abc import Mapping
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array, ArrayLike, Float


def _as_2d(name: str, value: Any, argument: str) -> Array:
    """A node's training data as ``(N, d)``; ``(N,)`` is read as ``(N, 1)``."""
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
    if array.ndim != 2:
        raise ValueError(
            f"`{argument}[{name!r}]` must have shape (N, d) or (N,), got {tuple(array.shape)}."
        )
    return array.astype(jnp.float32)


class NodeLayout(eqx.Module):
    """Ordered node names and their widths: node ``names[k]`` owns tokens ``slices[names[k]]``."""

    names: tuple[str, ...] = eqx.field(static=True)
    sizes: tuple[int, ...] = eqx.field(static=True)

    def __check_init__(self):
        if not self.names:
            raise ValueError("A layout needs at least one node, got none.")
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"Node names must be unique, got {self.names}.")
        if len(self.sizes) != len(self.names) or any(s < 1 for s in self.sizes):
            raise ValueError(f"Every node needs a positive size, got {dict(zip(self.names, self.sizes))}.")

    @classmethod
    def from_data(cls, data: Mapping[str, ArrayLike], argument: str = "data") -> "NodeLayout":
        """The layout of named training data ``{name: (N, d) or (N,)}``, in the dict's order."""
        arrays = validate_data(data, argument)
        return cls(tuple(arrays), tuple(int(a.shape[1]) for a in arrays.values()))

    @property
    def num_nodes(self) -> int:
        return sum(self.sizes)

    @property
    def slices(self) -> dict[str, slice]:
        bounds = np.cumsum((0,) + self.sizes)
        return {n: slice(int(a), int(b)) for n, a, b in zip(self.names, bounds[:-1], bounds[1:])}

    def node_mask(self, names) -> np.ndarray:
        """``(num_nodes,)`` bool, True on the tokens of the given node names."""
        self.check_names(names, "names")
        mask = np.zeros(self.num_nodes, dtype=bool)
        for name in names:
            mask[self.slices[name]] = True
        return mask

    def check_names(self, names, argument: str) -> None:
        unknown = [n for n in names if n not in self.names]
        if unknown:
            raise ValueError(
                f"`{argument}` names unknown node(s) {unknown}; the nodes are {list(self.names)}."
            )

    def flatten(self, data: Mapping[str, ArrayLike], argument: str = "data") -> Float[Array, "N num_nodes"]:
        """Concatenate named data ``{name: (N, d)}`` into ``(N, num_nodes)`` in layout order."""
        arrays = validate_data(data, argument)
        if tuple(arrays) != self.names:
            missing = [n for n in self.names if n not in arrays]
            self.check_names(arrays, argument)
            if missing:
                raise ValueError(f"`{argument}` lacks node(s) {missing}; every node is needed.")
            arrays = {n: arrays[n] for n in self.names}
        for name, size in zip(self.names, self.sizes):
            if arrays[name].shape[1] != size:
                raise ValueError(
                    f"`{argument}[{name!r}]` must have shape (N, {size}), "
                    f"got {tuple(arrays[name].shape)}."
                )
        return jnp.concatenate(list(arrays.values()), axis=1)

    def unflatten(self, flat: Float[Array, "*batch num_nodes"], names=None) -> dict[str, Array]:
        """Split ``(..., num_nodes)`` into ``{name: (..., d)}`` (only ``names`` if given)."""
        names = self.names if names is None else names
        return {n: flat[..., self.slices[n]] for n in names}

    def config(self) -> dict[str, Any]:
        return {"names": list(self.names), "sizes": list(self.sizes)}


def validate_data(data: Mapping[str, ArrayLike], argument: str = "data") -> dict[str, Array]:
    """Check named training data and return it as float32 ``{name: (N, d)}``.

    Refuses: a non-mapping, no nodes, non-string names, mismatched or zero ``N``, and rows with
    NaN or inf (counted, so the user can find them in their simulator's output).
    """
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
        arrays[name] = _as_2d(name, value, argument)
    lengths = {n: int(a.shape[0]) for n, a in arrays.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"Every node of `{argument}` must have the same N (rows), got {lengths}.")
    if next(iter(lengths.values())) == 0:
        raise ValueError(f"`{argument}` has no rows (N = 0).")
    bad = np.zeros(next(iter(lengths.values())), dtype=bool)
    for a in arrays.values():
        bad |= ~np.isfinite(np.asarray(a)).all(axis=1)
    if bad.any():
        raise ValueError(
            f"`{argument}` has {int(bad.sum())} of {bad.size} rows with NaN or inf (first at row "
            f"{int(np.argmax(bad))}); remove or fix these simulations before training."
        )
    return arrays
