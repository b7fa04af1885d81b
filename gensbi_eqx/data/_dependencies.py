"""Known dependencies between named nodes: the user's DAG, turned into a base attention mask.

The Simformer (Gloeckler et al. 2024) can use what the user knows about the simulator: which
variables a variable is computed from. ``Dependencies`` is that declaration, in node names, and
``Dependencies.adjacency(layout)`` is the scalar-level mask that the attention-mask policies of
``gensbi_eqx.models`` start from.
"""

from collections.abc import Mapping
from typing import Any

import equinox as eqx
import numpy as np

from ._layout import NodeLayout

# A reference to a node ("x", None) or to one of its scalars ("x", 3): the flat (C order) element
# index within the node.
Ref = tuple[str, int | None]


def _is_index(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_pair(value: Any) -> bool:
    return (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and isinstance(value[0], str)
        and _is_index(value[1])
    )


def _ref(value: Any, what: str) -> Ref:
    if isinstance(value, str):
        return (value, None)
    if _is_pair(value):
        if value[1] < 0:
            raise ValueError(
                f"`parents`: element indices are flat indices from 0, got {tuple(value)!r} in "
                f"{what}."
            )
        return (value[0], int(value[1]))
    raise TypeError(
        f"`parents`: {what} must be a node name or a (name, flat_index) pair, got {value!r}."
    )


def _sort_key(ref: Ref) -> tuple[str, int]:
    return (ref[0], -1 if ref[1] is None else ref[1])


def _label(ref: Ref) -> str:
    return ref[0] if ref[1] is None else f"{ref[0]}[{ref[1]}]"


def _find_cycle(depends: np.ndarray) -> list[int] | None:
    """A cycle ``[v0, v1, ..., v0]`` (v0 depends on v1, ...) of the off-diagonal graph, or None."""
    n = depends.shape[0]
    edges = depends & ~np.eye(n, dtype=bool)
    pending = edges.sum(axis=1)  # parents not yet placed in a topological order
    queue = list(np.flatnonzero(pending == 0))
    placed = np.zeros(n, dtype=bool)
    while queue:
        v = queue.pop()
        placed[v] = True
        children = np.flatnonzero(edges[:, v])
        pending[children] -= 1
        queue.extend(int(c) for c in children if pending[c] == 0)
    if placed.all():
        return None
    # Every unplaced node has an unplaced parent: following parents must come back round.
    v = int(np.flatnonzero(~placed)[0])
    path, seen = [], {}
    while v not in seen:
        seen[v] = len(path)
        path.append(v)
        v = int(np.flatnonzero(edges[v] & ~placed)[0])
    return path[seen[v] :] + [v]


def _cycle_error(cycle: list[int], label, argument: str) -> ValueError:
    return ValueError(
        f"`{argument}` must describe a DAG, but these dependencies form a cycle (a -> b: a depends "
        f"on b): {' -> '.join(label(k) for k in cycle)}."
    )


class Dependencies(eqx.Module):
    """Which variables depend on which: a DAG over the scalars of named nodes.

    Declare each node's (or element's) parents, i.e. the variables it is computed from in the
    simulator::

        Dependencies({"x": ["theta"]})            # every scalar of x depends on all of theta
        Dependencies({"x": "theta"})              # the same, one parent given bare
        Dependencies({
            ("x", 0): [("theta", 0)],             # x[0] depends on theta[0] only
            ("x", 1): [("theta", 0), ("theta", 1), ("x", 0)],
        })
        Dependencies.from_adjacency(matrix)       # bool (num_scalars, num_scalars) over all scalars

    Keys and parents are node names (all of the node's scalars) or ``(name, index)`` pairs with
    ``index`` the flat (C order) element index within the node, so for a ``(tokens, channels)``
    node ``index = token * channels + channel``. Names and forms can be mixed; declarations add
    up; nodes that are never a key have no parents. A whole node listed as its own parent makes
    its scalars depend on each other, which is a cycle unless the node has one scalar.

    A frozen, hashable value: equality compares the declarations (not the masks they give), and
    ``config()`` / ``from_config()`` round-trip it through JSON. Names, indices and acyclicity are
    checked against a layout by ``adjacency`` (an adjacency matrix is checked for cycles at once).
    """

    parents: tuple[tuple[Ref, tuple[Ref, ...]], ...] | None = eqx.field(static=True)
    matrix: tuple[tuple[bool, ...], ...] | None = eqx.field(static=True)

    def __init__(self, parents: Mapping[Any, Any] | None = None, *, adjacency: Any = None):
        """Declare dependencies by parents or by an adjacency matrix.

        Args:
            parents: ``{child: parents}``; a child is a name or ``(name, index)``, its parents
                a name, a ``(name, index)`` pair, or a list/tuple/set of those.
            adjacency: instead of ``parents``, a bool ``(num_scalars, num_scalars)`` array over all
                scalar nodes with ``[i, j]`` True when scalar i depends on scalar j (see
                ``from_adjacency``).
        """
        if (parents is None) == (adjacency is None):
            raise TypeError("Give exactly one of `parents` and `adjacency`.")
        if adjacency is not None:
            self.parents = None
            self.matrix = _parse_adjacency(adjacency)
            return
        if not isinstance(parents, Mapping):
            raise TypeError(
                "`parents` must be a dict like {'x': ['theta']} (child -> its parents), got "
                f"{type(parents).__name__}."
            )
        declared: dict[Ref, set[Ref]] = {}
        for key, value in parents.items():
            child = _ref(key, "a key")
            what = f"the parents of {_label(child)!r}"
            if isinstance(value, str) or _is_pair(value):
                items = [value]
            elif isinstance(value, (list, tuple, set, frozenset)):
                items = list(value)
            else:
                raise TypeError(
                    f"`parents`: {what} must be a name, a (name, index) pair or a list of those, "
                    f"got {value!r}."
                )
            declared.setdefault(child, set()).update(_ref(item, what) for item in items)
        self.parents = tuple(
            (child, tuple(sorted(declared[child], key=_sort_key)))
            for child in sorted(declared, key=_sort_key)
        )
        self.matrix = None

    @classmethod
    def from_adjacency(cls, adjacency: Any) -> "Dependencies":
        """Dependencies given as a bool (or 0/1) ``(num_scalars, num_scalars)`` matrix over all scalar
        nodes of a layout, ``[i, j]`` True when scalar i depends on scalar j. The diagonal is
        ignored (it is always True in the mask); the rest must be acyclic."""
        return cls(adjacency=adjacency)

    def adjacency(self, layout: NodeLayout) -> np.ndarray:
        """The base mask over ``layout``'s scalars: bool ``(num_scalars, num_scalars)``, ``[i, j]``
        True when scalar i depends on scalar j, diagonal True.

        Raises ValueError for names the layout does not have, element indices beyond a node's
        size, an adjacency matrix of the wrong shape, and cycles (naming the scalars that form
        one).
        """
        n = layout.num_scalars
        if self.matrix is not None:
            matrix = np.array(self.matrix, dtype=bool).reshape(len(self.matrix), -1)
            if matrix.shape != (n, n):
                raise ValueError(
                    f"`adjacency` must have shape ({n}, {n}) for the nodes "
                    f"{dict(zip(layout.names, layout.shapes))}, got {matrix.shape}."
                )
            return matrix | np.eye(n, dtype=bool)
        refs = [ref for child, parents in self.parents for ref in (child, *parents)]
        layout.check_names(list(dict.fromkeys(name for name, _ in refs)), "parents")
        sizes = dict(zip(layout.names, layout.sizes))
        beyond = {r for r in refs if r[1] is not None and r[1] >= sizes[r[0]]}
        beyond = sorted(beyond, key=_sort_key)
        if beyond:
            raise ValueError(
                f"`parents` refers to element(s) {[_label(r) for r in beyond]} beyond their "
                f"node's size; the node sizes are {sizes}."
            )
        slices = layout.slices

        def scalars(ref: Ref) -> np.ndarray:
            whole = np.arange(slices[ref[0]].start, slices[ref[0]].stop)
            return whole if ref[1] is None else whole[ref[1] : ref[1] + 1]

        depends = np.eye(n, dtype=bool)
        for child, parents in self.parents:
            if parents:
                columns = np.concatenate([scalars(p) for p in parents])
                depends[np.ix_(scalars(child), columns)] = True
        cycle = _find_cycle(depends)
        if cycle is not None:
            starts = np.array([slices[name].start for name in layout.names])

            def label(k: int) -> str:
                node = int(np.searchsorted(starts, k, side="right")) - 1
                return f"{layout.names[node]}[{k - starts[node]}]"

            raise _cycle_error(cycle, label, "parents")
        return depends

    @property
    def config(self) -> dict[str, Any]:
        """A JSON-able description; ``Dependencies.from_config`` rebuilds an equal value."""
        if self.matrix is not None:
            return {"adjacency": [list(row) for row in self.matrix]}
        return {
            "parents": [
                [list(child), [list(p) for p in parents]] for child, parents in self.parents
            ]
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "Dependencies":
        if "adjacency" in config:
            return cls(adjacency=np.array(config["adjacency"], dtype=bool))

        def ref(item) -> Any:
            name, index = item
            return name if index is None else (name, index)

        # A child listed with no parents still counts as declared (its name is checked).
        return cls({ref(child): [ref(p) for p in parents] for child, parents in config["parents"]})


def _parse_adjacency(adjacency: Any) -> tuple[tuple[bool, ...], ...]:
    try:
        matrix = np.asarray(adjacency)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"`adjacency` must be a 2-D bool array, got {type(adjacency).__name__}."
        ) from error
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] == 0:
        raise ValueError(
            f"`adjacency` must be a square (num_scalars, num_scalars) matrix, got shape {matrix.shape}."
        )
    if matrix.dtype != np.bool_:
        if not (np.issubdtype(matrix.dtype, np.integer) and np.isin(matrix, (0, 1)).all()):
            raise TypeError(
                f"`adjacency` must hold bools (or 0/1 integers), got dtype {matrix.dtype}."
            )
        matrix = matrix.astype(bool)
    cycle = _find_cycle(matrix)
    if cycle is not None:
        raise _cycle_error(cycle, lambda k: f"node {k}", "adjacency")
    return tuple(tuple(bool(b) for b in row) for row in matrix)


__all__ = ["Dependencies"]
