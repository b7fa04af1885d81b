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


class MetadataEmbedding(eqx.Module):
    """A token's coordinate (e.g. its observation time, scaled to ``[0, 1]`` over the training
    range) as random Fourier features ``[sin(2 pi w u), cos(2 pi w u)]``, ``w ~ N(0,
    scale^2)`` fixed, then a learned linear map (Tancik et al. 2020), so that times never seen
    in training still get a smooth embedding."""

    features: GaussianFourierEmbedding
    linear: eqx.nn.Linear

    def __init__(self, dim_out: int, *, dim_features: int = 64, scale: float = 4.0, key: Key):
        k_features, k_linear = jr.split(key)
        self.features = GaussianFourierEmbedding(dim_features, scale=scale, key=k_features)
        self.linear = eqx.nn.Linear(dim_features, dim_out, key=k_linear)

    def __call__(self, u: Float[Array, " num_tokens"]) -> Float[Array, "num_tokens dim_out"]:
        return jax.vmap(lambda v: self.linear(self.features(v)))(u)
