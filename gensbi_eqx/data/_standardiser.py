"""Per-token standardisation, learned from training data and stored with the estimator."""

import equinox as eqx
import jax.numpy as jnp

from .._custom_types import Array, Float


class Standardiser(eqx.Module):
    """``z = (x - mean) / std`` per token; constant tokens keep ``std = 1`` so they stay finite."""

    mean: Float[Array, " num_nodes"]
    std: Float[Array, " num_nodes"]

    @classmethod
    def fit(cls, x: Float[Array, "N num_nodes"]) -> "Standardiser":
        std = jnp.std(x, axis=0)
        return cls(jnp.mean(x, axis=0), jnp.where(std > 1e-8, std, 1.0))

    @classmethod
    def identity(cls, num_nodes: int) -> "Standardiser":
        return cls(jnp.zeros(num_nodes), jnp.ones(num_nodes))

    def __call__(self, x: Float[Array, "*batch num_nodes"]) -> Float[Array, "*batch num_nodes"]:
        return (x - self.mean) / self.std

    def inverse(self, z: Float[Array, "*batch num_nodes"]) -> Float[Array, "*batch num_nodes"]:
        return z * self.std + self.mean
