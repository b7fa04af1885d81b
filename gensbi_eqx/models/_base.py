"""The interface every model implements, so methods and samplers can drive any of them."""

import abc
from typing import Any

import equinox as eqx

from .._custom_types import ConditionMask, EdgeMask, NodeIds, Scalar, Tokens


class AbstractModel(eqx.Module):
    """A network over the scalar tokens of ONE example (``vmap`` outside).

    It returns one number per token; what that number means (noise, velocity) is the business
    of the method that trains it, never of the model.
    """

    num_nodes: eqx.AbstractVar[int]

    @abc.abstractmethod
    def __call__(
        self,
        t: Scalar,
        x: Tokens,
        condition_mask: ConditionMask,
        *,
        node_ids: NodeIds | None = None,
        edge_mask: EdgeMask | None = None,
    ) -> Tokens:
        """Args: diffusion time ``t`` (scalar); token values ``x (num_nodes,)``;
        ``condition_mask (num_nodes,)`` (True = observed); optional ``node_ids (num_nodes,)``
        (values in ``[0, num_nodes)``: out-of-range ids are clamped by the lookup, not caught)
        (default ``arange``) and ``edge_mask (num_nodes, num_nodes)`` (``[i, j]``: i attends
        to j). Returns ``(num_nodes,)``."""

    @property
    @abc.abstractmethod
    def config(self) -> dict[str, Any]:
        """The constructor's keyword arguments (JSON-serialisable), to rebuild the skeleton
        when loading."""
