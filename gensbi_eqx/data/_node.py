"""Per-node specifications: what `fit` should know about a node beyond its values."""

from collections.abc import Mapping

import equinox as eqx
import numpy as np

from ._constraints import interval_bounds
from ._layout import NodeLayout


class Node(eqx.Module):
    """What `fit` should know about one node beyond its values:
    ``fit(..., nodes={"theta": gs.Node(bounds=(0.0, None))})``.

    - `bounds`: ``(lower, upper)``, the support of the node's values, each a number or an array
      broadcasting to the node's shape (per entry); ``None`` or an infinity leaves that side
      open, so one-sided bounds work (e.g. ``(0, None)`` for rates). A task's prior gives its
      own: ``gs.Node(bounds=task.prior.support)``. The model learns the node through a map of
      the support onto the real line (a logit between two bounds, a log for one), so every
      draw lies strictly inside; values given and returned stay in the user's units.
    """

    bounds: tuple | None = None

    def __check_init__(self):
        if self.bounds is not None and not (
            isinstance(self.bounds, (tuple, list)) and len(self.bounds) == 2
        ):
            raise ValueError(
                f"`bounds` must be a pair (lower, upper) or None, got {self.bounds!r}."
            )


def node_bounds(
    layout: NodeLayout, nodes: Mapping[str, Node] | None
) -> tuple[np.ndarray, np.ndarray] | None:
    """The flat support ``(lower, upper)``, each ``(num_scalars,)``, declared by ``nodes``;
    ``None`` when no node is bounded."""
    if nodes is None:
        return None
    if not isinstance(nodes, Mapping):
        raise TypeError(
            f"`nodes` must be a dict like {{'theta': gs.Node(bounds=(0, 1))}}, got "
            f"{type(nodes).__name__}."
        )
    layout.check_names(nodes, "nodes")
    for name, node in nodes.items():
        if not isinstance(node, Node):
            raise TypeError(f"`nodes[{name!r}]` must be a gs.Node(...), got {node!r}.")
    declared = {name: node.bounds for name, node in nodes.items() if node.bounds is not None}
    if not declared:
        return None
    return interval_bounds(layout, declared, "bounds", times=True)
