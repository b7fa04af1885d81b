"""Per-token standardisation, learned from training data and stored with the estimator."""

from collections.abc import Sequence

import equinox as eqx
import jax.numpy as jnp

from .._custom_types import Array, Float


class Standardiser(eqx.Module):
    """``z = (x - mean) / std`` per token; constant tokens keep ``std = 1`` so they stay finite."""

    mean: Float[Array, " num_scalars"]
    std: Float[Array, " num_scalars"]

    @classmethod
    def fit(cls, x: Float[Array, "N num_scalars"], groups: Sequence[int] | None = None) -> "Standardiser":
        """Mean and std of each token over the rows of ``x``; tokens with the same entry in
        ``groups`` (e.g. the points of a series, `NodeLayout.token_ids`) pool their statistics,
        so that exchangeable tokens stay exchangeable."""
        if groups is None:
            mean, std = jnp.mean(x, axis=0), jnp.std(x, axis=0)
        else:
            groups = jnp.asarray(groups)
            count = jnp.zeros(x.shape[1]).at[groups].add(x.shape[0])
            total = jnp.zeros(x.shape[1]).at[groups].add(jnp.sum(x, axis=0))
            mean = (total / jnp.maximum(count, 1))[groups]
            squares = jnp.zeros(x.shape[1]).at[groups].add(jnp.sum((x - mean) ** 2, axis=0))
            std = jnp.sqrt(squares / jnp.maximum(count, 1))[groups]
        return cls(mean, jnp.where(std > 1e-8, std, 1.0))

    @classmethod
    def identity(cls, num_scalars: int) -> "Standardiser":
        return cls(jnp.zeros(num_scalars), jnp.ones(num_scalars))

    def __call__(self, x: Float[Array, "*batch num_scalars"]) -> Float[Array, "*batch num_scalars"]:
        return (x - self.mean) / self.std

    def inverse(self, z: Float[Array, "*batch num_scalars"]) -> Float[Array, "*batch num_scalars"]:
        return z * self.std + self.mean
