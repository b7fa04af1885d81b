"""The interface every model implements, so methods and samplers can drive any of them."""

import abc
from typing import Any

import equinox as eqx

from .._custom_types import ConditionMask, EdgeMask, Scalar, Tokens


class AbstractModel(eqx.Module):
    """A network over the flat scalar vector of ONE example (``vmap`` outside).

    It returns one number per scalar; what that number means (noise, velocity, denoised value)
    is the business of the method that trains it, never of the model. Joint models (Simformer,
    Flux1Joint) answer any condition mask; a conditional model (Flux1) answers only its
    ``fixed_condition_mask``. Models may take further keyword inputs (token IDs).
    """

    num_nodes: eqx.AbstractVar[int]

    @abc.abstractmethod
    def __call__(
        self,
        t: Scalar,
        x: Tokens,
        condition_mask: ConditionMask,
        *,
        edge_mask: EdgeMask | None = None,
    ) -> Tokens:
        """Args: the noise level ``t`` (scalar, as the method encodes it); values
        ``x (num_nodes,)``; ``condition_mask (num_nodes,)`` (True = observed); optional
        ``edge_mask (num_nodes, num_nodes)`` (``[i, j]``: i attends to j). Returns
        ``(num_nodes,)``."""

    @property
    def fixed_condition_mask(self) -> tuple[bool, ...] | None:
        """``None`` for a joint model (any conditional); otherwise the only condition mask
        (True = observed) the model was built to answer."""
        return None

    @property
    @abc.abstractmethod
    def config(self) -> dict[str, Any]:
        """The constructor's keyword arguments (JSON-serialisable), to rebuild the skeleton
        when loading."""


def check_positive_ints(**values) -> None:
    """Raise a ValueError naming the first argument that is not a positive integer."""
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")


def check_shapes(**given: tuple[Any, tuple[int, ...]]) -> None:
    """``check_shapes(x=(x, (n,)), ...)``: raise a ValueError naming the first given array
    (``None`` means not given) whose shape is not the expected one."""
    for name, (value, shape) in given.items():
        if value is not None and value.shape != shape:
            raise ValueError(f"`{name}` must have shape {shape}, got {value.shape}.")
