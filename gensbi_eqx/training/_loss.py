"""The denoising loss shared by every method."""

import jax
import jax.numpy as jnp
import jax.random as jr

from .._custom_types import Array, Bool, ConditionMask, Flat, Float, Key, Scalar
from ..methods import AbstractMethod
from ..methods._base import network_output
from ..models import AbstractAttention, AbstractModel


def example_loss(
    model: AbstractModel,
    method: AbstractMethod,
    x0: Flat,
    condition_mask: ConditionMask,
    t: Scalar,
    eps: Flat,
    attention: AbstractAttention | None = None,
    metadata: Float[Array, " num_scalars"] | None = None,
) -> Scalar:
    """Squared error of the network against the method's target on the latent tokens of one
    example noised to ``y_t = alpha(t) x0 + sigma(t) eps``; observed tokens are never noised and
    contribute zero. ``metadata``: the tokens' coordinates, for models with metadata tokens."""
    alpha, sigma = method.alpha_sigma(t)
    y = jnp.where(condition_mask, x0, alpha * x0 + sigma * eps)
    output = network_output(model, method, t, y, condition_mask, attention, metadata)
    error = (output - method.target(x0, eps, t)) ** 2
    return jnp.mean(jnp.where(condition_mask, 0.0, error))


def batch_loss(
    model: AbstractModel,
    method: AbstractMethod,
    x0: Float[Array, "batch num_scalars"],
    condition_masks: Bool[Array, "batch num_scalars"],
    key: Key,
    attention: AbstractAttention | None = None,
    metadata: Float[Array, "batch num_scalars"] | None = None,
    stratified: bool = False,
) -> Scalar:
    """Mean of ``example_loss`` over a batch (``metadata``: each example's token
    coordinates). Times come from ``method.times``, one per example; ``stratified`` draws them
    one per equal-probability stratum (the same expected loss, with less variance)."""
    k_t, k_eps = jr.split(key)
    n = x0.shape[0]
    if stratified:
        t = method.times.stratified(k_t, method, n)
    else:
        t = method.sample_time(k_t, (n,))
    eps = jr.normal(k_eps, x0.shape)
    in_axes = (None, None, 0, 0, 0, 0, None, None if metadata is None else 0)
    per_example = jax.vmap(example_loss, in_axes=in_axes)
    return jnp.mean(per_example(model, method, x0, condition_masks, t, eps, attention, metadata))
