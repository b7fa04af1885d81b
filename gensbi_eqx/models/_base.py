"""The interface every model implements, so methods and samplers can drive any of them."""

import abc
from collections.abc import Mapping
from typing import Any, TypeVar

import equinox as eqx
import numpy as np

from .._custom_types import ConditionMask, EdgeMask, Key, Scalar, Flat
from .._arguments import check_positive_ints as check_positive_ints
from ..data import NodeData, NodeLayout

# Not `typing.Self`: the test suite's runtime checker (beartype) refuses it outside a class it
# decorates itself.
_Model = TypeVar("_Model", bound="AbstractModel")


class AbstractModel(eqx.Module):
    """A network over the flat scalar vector of ONE example (``vmap`` outside).

    It returns one number per scalar; what that number means (noise, velocity, denoised value)
    is the business of the method that trains it, never of the model. Joint models (Simformer,
    Flux1Joint) answer any condition mask; a conditional model (Flux1) answers only its
    ``fixed_condition_mask``. Models may take further keyword inputs (token IDs).

    A model's settings are typed static fields; ``config`` gives them back as the JSON-able
    keyword arguments of its constructor and ``from_config`` rebuilds the model from them, so
    ``eqx.filter_eval_shape(cls.from_config, config, key=key)`` is its skeleton (shapes and
    dtypes, no weights) for ``eqx.tree_deserialise_leaves``.
    """

    num_scalars: eqx.AbstractVar[int]

    @abc.abstractmethod
    def __call__(
        self, t: Scalar, x: Flat, condition_mask: ConditionMask, *, edge_mask: EdgeMask | None = None
    ) -> Flat:
        """Args: the noise level ``t`` (scalar, as the method encodes it); values
        ``x (num_scalars,)``; ``condition_mask (num_scalars,)`` (True = observed); optional
        ``edge_mask (num_scalars, num_scalars)`` (``[i, j]``: i attends to j). Returns
        ``(num_scalars,)``."""

    @property
    def fixed_condition_mask(self) -> tuple[bool, ...] | None:
        """``None`` for a joint model (any conditional); otherwise the only condition mask
        (True = observed) the model was built to answer."""
        return None

    @property
    def observed_always(self) -> tuple[bool, ...] | None:
        """``None``, or ``(num_scalars,)`` bools: the scalars every training example and every
        query must observe (the nodes a model reads only through an embedding network)."""
        return None

    def given(self: _Model, y_cond: Flat) -> _Model:
        """This model for one condition ``y_cond (num_scalars,)`` (observed entries in
        standardised units): work that depends on the observed values alone is done here, once,
        instead of at every solver step. The default has none and returns the model."""
        return self

    def check_data(self, data, layout, argument: str = "data") -> None:
        """Raise a ValueError naming ``argument`` if named ``data`` (training data or a
        query's condition, over ``layout``) holds something this model cannot read; the
        layout's own checks have passed already."""

    @property
    @abc.abstractmethod
    def config(self) -> dict[str, Any]:
        """The constructor's keyword arguments (JSON-serialisable, without ``key``) that
        rebuild this model's structure: `from_config` takes them back."""

    @classmethod
    def from_config(cls: type[_Model], config: Mapping[str, Any], *, key: Key) -> _Model:
        """The model that ``config`` (a model's `config`, possibly through JSON) describes,
        with fresh weights drawn from ``key``; the same key gives the same weights as the
        constructor."""
        return cls(**config, key=key)


def check_shapes(**given: tuple[Any, tuple[int, ...]]) -> None:
    """``check_shapes(x=(x, (n,)), ...)``: raise a ValueError naming the first given array
    (``None`` means not given) whose shape is not the expected one."""
    for name, (value, shape) in given.items():
        if value is not None and value.shape != shape:
            raise ValueError(f"`{name}` must have shape {shape}, got {value.shape}.")


def token_metadata(
    num_scalars: int, token_ids, has_metadata
) -> tuple[tuple[int, ...], tuple[bool, ...]]:
    """Checked ``(token_ids, has_metadata)`` of a joint model, one entry per token; defaults
    ``arange(num_scalars)`` and all False."""
    token_ids = tuple(range(num_scalars)) if token_ids is None else tuple(token_ids)
    has_metadata = (False,) * num_scalars if has_metadata is None else tuple(has_metadata)
    if len(token_ids) != num_scalars or any(
        isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < num_scalars
        for i in token_ids
    ):
        raise ValueError(
            f"`token_ids` must be {num_scalars} ints in [0, {num_scalars}), got {token_ids!r}."
        )
    if len(has_metadata) != num_scalars or any(
        not isinstance(m, (bool, np.bool_)) for m in has_metadata
    ):
        raise ValueError(f"`has_metadata` must be {num_scalars} bools, got {has_metadata!r}.")
    return tuple(int(i) for i in token_ids), tuple(bool(m) for m in has_metadata)


def check_metadata(model, metadata) -> None:
    """A model with metadata tokens needs ``metadata``; one without refuses it."""
    name = type(model).__name__
    if any(model.has_metadata) and metadata is None:
        raise ValueError(
            f"This {name} embeds the coordinates of {sum(model.has_metadata)} tokens; pass "
            "`metadata` (num_scalars,)."
        )
    if not any(model.has_metadata) and metadata is not None:
        raise ValueError(
            f"This {name} has no tokens with metadata, got `metadata`; build it with "
            f"{name}.for_data(data) on data with gs.Series nodes."
        )


def layout_metadata(layout) -> dict[str, tuple]:
    """``for_data``'s defaults for a layout's nodes with times: ``token_ids`` and
    ``has_metadata`` (nothing for a layout without such nodes)."""
    if not layout.has_metadata:
        return {}
    return {"token_ids": layout.token_ids(), "has_metadata": layout.metadata_mask()}


def one_token_per_scalar(
    cls: type[_Model], data: Mapping[str, NodeData], key: Key, hyperparameters: Mapping[str, Any]
) -> _Model:
    """The joint model ``cls(num_scalars, ...)`` with one token per scalar of the named data
    ``{name: (N, *shape)}``; the scalars of `Series` nodes take their times as metadata unless
    ``hyperparameters`` say otherwise."""
    layout = NodeLayout.from_data(data)
    return cls(layout.num_scalars, key=key, **{**layout_metadata(layout), **hyperparameters})


def rope_metadata_scale(
    has_metadata: tuple[bool, ...],
    metadata_scale: float | int | None,
    default_scale: float | int,
    theta: float | int | None,
    default_theta: float | int,
) -> tuple[float | None, float]:
    """The ``(metadata_scale, theta)`` a Flux model keeps, from the arguments as given (``None``:
    the default). Without metadata tokens: ``None`` and ``theta`` (default ``default_theta``).
    With them: the RoPE position per unit of coordinate (default ``default_scale``) and
    ``theta`` (default ``10 * metadata_scale``: positions reach ``metadata_scale``; a base ten
    times that keeps the slowest rotation below one turn over the range)."""
    if not any(has_metadata):
        return None, float(default_theta if theta is None else theta)
    scale = float(default_scale if metadata_scale is None else metadata_scale)
    if not scale > 0:
        raise ValueError(f"`metadata_scale` must be positive, got {metadata_scale!r}.")
    return scale, 10.0 * scale if theta is None else float(theta)


def token_config(
    token_ids: tuple[int, ...], has_metadata: tuple[bool, ...], metadata_scale: float | None
) -> dict[str, Any]:
    """The token settings a model's ``config`` records: nothing for default IDs without
    metadata; custom ``token_ids``; or, with metadata tokens, both and ``metadata_scale``.
    (Files saved so far hold exactly these keys, so they keep loading.)"""
    if any(has_metadata):
        return {
            "token_ids": list(token_ids),
            "has_metadata": list(has_metadata),
            "metadata_scale": metadata_scale,
        }
    if token_ids != tuple(range(len(token_ids))):
        return {"token_ids": list(token_ids)}
    return {}
