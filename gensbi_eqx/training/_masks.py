"""Condition-mask samplers: ``masks(key, num_scalars) -> Bool[num_scalars]``, True = observed.

Training on random condition masks is what lets one joint model answer every conditional. The
ones here are the Simformer paper's; any `AbstractConditionMasks` (or plain callable with this
signature) works.
"""

import abc
from collections.abc import Callable, Sequence

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .._custom_types import Array, Bool, ConditionMask, Key
from ..data import NodeLayout


def never_all_observed(mask: ConditionMask) -> ConditionMask:
    """A mask that observes every scalar leaves nothing to learn: make it the joint instead."""
    return jnp.where(jnp.all(mask), jnp.zeros_like(mask), mask)


class AbstractConditionMasks(eqx.Module):
    """A distribution of condition masks for training. Samplers that tell parameters from
    data name the parameter nodes and are bound to the data's layout by `gensbi_eqx.fit`."""

    @abc.abstractmethod
    def __call__(self, key: Key, num_scalars: int) -> ConditionMask:
        ...

    def bind(self, layout: NodeLayout) -> "AbstractConditionMasks":
        """This sampler over the scalars of ``layout``."""
        return self


class ObservedAlways(AbstractConditionMasks):
    """``masks`` with the scalars of ``observed`` always observed (the nodes a model reads only
    through an embedding network); a draw that would observe every scalar observes only
    ``observed`` instead (the joint of the rest)."""

    masks: AbstractConditionMasks | Callable
    observed: tuple[bool, ...] = eqx.field(static=True)

    def __call__(self, key: Key, num_scalars: int) -> ConditionMask:
        observed = jnp.asarray(np.asarray(self.observed))
        mask = self.masks(key, num_scalars) | observed
        return jnp.where(jnp.all(mask), observed, mask)


class _ParameterMasks(AbstractConditionMasks):
    parameters: tuple[str, ...] | None = eqx.field(static=True, default=None)
    is_parameter: tuple[bool, ...] | None = eqx.field(static=True, default=None)

    def __init__(
        self,
        parameters: str | Sequence[str] | None = None,
        is_parameter: Sequence[bool] | None = None,
    ):
        self.parameters = (parameters,) if isinstance(parameters, str) else (
            None if parameters is None else tuple(parameters)
        )
        if is_parameter is not None:
            is_parameter = tuple(bool(p) for p in is_parameter)
            if not any(is_parameter) or all(is_parameter):
                raise ValueError(
                    "The parameters must be some but not all scalars, got "
                    f"{list(is_parameter)}."
                )
        self.is_parameter = is_parameter

    def bind(self, layout: NodeLayout):
        names = self.parameters
        if names is None:
            names = ("theta",) if "theta" in layout.names else layout.names[:1]
        layout.check_names(names, "parameters")
        return type(self)(names, tuple(layout.node_mask(names).tolist()))

    def _pattern(self, num_scalars: int) -> Bool[Array, " num_scalars"]:
        if self.is_parameter is None:
            raise ValueError(
                f"This {type(self).__name__} is not bound to a layout yet; gs.fit binds it."
            )
        if num_scalars != len(self.is_parameter):
            raise ValueError(
                f"`num_scalars` must be {len(self.is_parameter)} for this sampler, got "
                f"{num_scalars}."
            )
        return jnp.asarray(np.asarray(self.is_parameter))


class StructuredMasks(_ParameterMasks):
    """The Simformer paper's mixture, drawn per example with probability 0.2 each: joint
    (nothing observed), posterior (data observed), likelihood (parameters observed), and
    independent Bernoulli(0.3) and Bernoulli(0.7) masks. An all-observed draw becomes the joint.

    ``parameters``: names of the parameter nodes (default ``"theta"`` if there is one, else the
    first node).
    """

    def __call__(self, key: Key, num_scalars: int) -> ConditionMask:
        is_parameter = self._pattern(num_scalars)
        k_kind, k_bern = jr.split(key)
        kind = jr.randint(k_kind, (), 0, 5)
        rate = jnp.where(kind == 3, 0.3, 0.7)
        bernoulli = jr.bernoulli(k_bern, rate, (num_scalars,))
        masks = jnp.stack(
            [jnp.zeros(num_scalars, bool), ~is_parameter, is_parameter, bernoulli, bernoulli]
        )
        return never_all_observed(masks[kind])


class PosteriorMasks(_ParameterMasks):
    """Always the posterior: data observed, parameters latent (as NPE/NPSE learn)."""

    def __call__(self, key: Key, num_scalars: int) -> ConditionMask:
        return ~self._pattern(num_scalars)


class BernoulliMasks(AbstractConditionMasks):
    """Each scalar observed independently with probability ``rate``."""

    rate: float = eqx.field(static=True)

    def __check_init__(self):
        if not 0.0 <= self.rate < 1.0:
            raise ValueError(f"`rate` must lie in [0, 1), got {self.rate}.")

    def __call__(self, key: Key, num_scalars: int) -> ConditionMask:
        return never_all_observed(jr.bernoulli(key, self.rate, (num_scalars,)))
