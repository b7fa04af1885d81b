"""Condition-mask samplers: ``(key, num_scalars) -> Bool[num_scalars]``, True = observed.

Training on random condition masks is what lets one joint model answer every conditional.
Any callable with this signature works; the ones here are the Simformer paper's.
"""

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .._custom_types import Array, Bool, ConditionMask, Key


def never_all_observed(mask: ConditionMask) -> ConditionMask:
    """A mask that observes every node leaves nothing to learn: make it the joint instead."""
    return jnp.where(jnp.all(mask), jnp.zeros_like(mask), mask)


class _ParameterMaskSampler(eqx.Module):
    parameters: tuple[bool, ...] = eqx.field(static=True)

    def __check_init__(self):
        if not all(isinstance(p, (bool, np.bool_)) for p in self.parameters):
            raise ValueError(f"`parameters` must be a tuple of bools, got {self.parameters!r}.")
        if not any(self.parameters) or all(self.parameters):
            raise ValueError(
                "`parameters` must mark some but not all nodes as parameters, got "
                f"{list(self.parameters)}."
            )

    def _check(self, num_scalars: int) -> Bool[Array, " num_scalars"]:
        if num_scalars != len(self.parameters):
            raise ValueError(
                f"`num_scalars` must be {len(self.parameters)} for this sampler, got {num_scalars}."
            )
        return jnp.asarray(np.asarray(self.parameters))


class StructuredMasks(_ParameterMaskSampler):
    """The Simformer paper's mixture, drawn per example with probability 0.2 each: joint (nothing
    observed), posterior (data observed), likelihood (parameters observed), and independent
    Bernoulli(0.3) and Bernoulli(0.7) masks. An all-observed draw becomes the joint.

    ``parameters``: one bool per node, True for parameter tokens.
    """

    def __call__(self, key: Key, num_scalars: int) -> ConditionMask:
        is_parameter = self._check(num_scalars)
        k_kind, k_bern = jr.split(key)
        kind = jr.randint(k_kind, (), 0, 5)
        rate = jnp.where(kind == 3, 0.3, 0.7)
        bernoulli = jr.bernoulli(k_bern, rate, (num_scalars,))
        masks = jnp.stack(
            [jnp.zeros(num_scalars, bool), ~is_parameter, is_parameter, bernoulli, bernoulli]
        )
        return never_all_observed(masks[kind])


class PosteriorMasks(_ParameterMaskSampler):
    """Always the posterior: data observed, parameters latent (like NPE/NPSE)."""

    def __call__(self, key: Key, num_scalars: int) -> ConditionMask:
        return ~self._check(num_scalars)


class BernoulliMasks(eqx.Module):
    """Each node observed independently with probability ``rate``."""

    rate: float = eqx.field(static=True)

    def __check_init__(self):
        if not 0.0 <= self.rate < 1.0:
            raise ValueError(f"`rate` must lie in [0, 1), got {self.rate}.")

    def __call__(self, key: Key, num_scalars: int) -> ConditionMask:
        return never_all_observed(jr.bernoulli(key, self.rate, (num_scalars,)))
