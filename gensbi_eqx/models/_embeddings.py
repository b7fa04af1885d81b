"""Embeddings shared by the models."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr

from .._custom_types import Array, Float, Key, Scalar


class GaussianFourierEmbedding(eqx.Module):
    """Random Fourier features of the diffusion time: ``[sin(2 pi w t), cos(2 pi w t)]``.

    The frequencies ``w ~ N(0, scale^2)`` are drawn once and never trained (Tancik et al. 2020,
    Song et al. 2021): training them only adds noise to the time conditioning.
    """

    frequencies: Float[Array, " half_dim"]

    def __init__(self, dim: int, *, scale: float = 16.0, key: Key):
        if dim < 2 or dim % 2:
            raise ValueError(f"`dim` must be an even integer >= 2, got {dim}.")
        self.frequencies = scale * jr.normal(key, (dim // 2,))

    def __call__(self, t: Scalar) -> Float[Array, " dim"]:
        w = jax.lax.stop_gradient(self.frequencies)
        angles = 2 * jnp.pi * w * t
        return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)])
