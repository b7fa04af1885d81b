"""Karras et al.'s (2022) stochastic Heun sampler (their Algorithm 2) for ONE example."""

import math

import jax
import jax.numpy as jnp
import jax.random as jr

from .._custom_types import ConditionMask, Key, Scalar, Flat
from ..methods import EDM
from ._denoiser import AbstractDenoiser
from ._solve import _initial

# Karras et al. cap the churn so that one step never more than doubles the variance.
_MAX_GAMMA = math.sqrt(2) - 1


def _check_settings(denoiser, steps, s_churn, s_min, s_max, s_noise) -> None:
    method = denoiser.method
    if not isinstance(method, EDM):
        raise ValueError(
            f"sampler 'edm' needs an EDM method (it steps in EDM's noise levels), got "
            f"{type(method).__name__}; use sampler='sde' or 'ode'."
        )
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"`steps` must be a positive integer, got {steps!r}.")
    if not (math.isfinite(s_churn) and s_churn >= 0):
        raise ValueError(f"`s_churn` must be finite and non-negative, got {s_churn}.")
    if not (s_min >= 0 and s_min <= s_max):
        raise ValueError(f"Need 0 <= `s_min` <= `s_max`, got {s_min} and {s_max}.")
    if not (math.isfinite(s_noise) and s_noise >= 0):
        raise ValueError(f"`s_noise` must be finite and non-negative, got {s_noise}.")


def sample_edm(
    key: Key,
    denoiser: AbstractDenoiser,
    y_cond: Flat,
    condition_mask: ConditionMask,
    *,
    steps: int = 18,
    s_churn: float = 0.0,
    s_min: float = 0.0,
    s_max: float = math.inf,
    s_noise: float = 1.0,
) -> Flat:
    """One draw of the latent entries by Karras et al.'s Heun sampler with stochastic churn.

    The noise levels are ``sigma_i = method.sigma(t_i)`` at ``t_i = linspace(1, 0, steps)`` (the
    ``rho`` schedule), then 0. Step ``i`` first raises the noise level from ``sigma_i`` to
    ``sigma_hat = sigma_i (1 + gamma_i)`` by adding fresh noise of variance
    ``(sigma_hat^2 - sigma_i^2) s_noise^2``, where ``gamma_i = min(s_churn / steps, sqrt(2) - 1)``
    if ``s_min <= sigma_i <= s_max`` and 0 otherwise; then it takes a Heun step of
    ``dy/dsigma = (y - x0_hat) / sigma`` down to ``sigma_{i+1}``. The last step, to
    ``sigma = 0``, is a single Euler step, which returns the denoised ``x0_hat``: ``2 steps - 1``
    denoiser evaluations in all. ``s_churn = 0`` is the deterministic probability-flow sampler.

    **Arguments:**
    - `key`: a `jax.random` key.
    - `denoiser`: ``(t, y, mask) -> (x0_hat, eps_hat)``; its method must be an ``EDM``.
    - `y_cond`: ``(num_scalars,)`` observed values (standardised) where ``condition_mask``.
    - `condition_mask`: ``(num_scalars,)``, True = observed; those entries are returned as given.
    - `steps`: number of noise levels (Karras' ``N``).
    - `s_churn`, `s_min`, `s_max`, `s_noise`: churn strength, the noise-level window where it
      applies, and the scale of the fresh noise.

    **Returns:** ``(num_scalars,)``.
    """
    _check_settings(denoiser, steps, s_churn, s_min, s_max, s_noise)
    method = denoiser.method
    gamma = min(s_churn / steps, _MAX_GAMMA)
    sigmas = method.sigma(jnp.linspace(1.0, 0.0, steps))
    k_init, k_churn = jr.split(key)
    churn_keys = jr.split(k_churn, steps)

    def churn(y, sigma, churn_key) -> tuple[Flat, Scalar]:
        in_window = (s_min <= sigma) & (sigma <= s_max)
        sigma_hat = sigma * (1 + jnp.where(in_window, gamma, 0.0))
        noise = jnp.sqrt(sigma_hat**2 - sigma**2) * s_noise * jr.normal(churn_key, y.shape)
        return jnp.where(condition_mask, y, y + noise), sigma_hat

    def slope(y, sigma) -> Flat:
        x0_hat, _ = denoiser(method.time_of_sigma(sigma), y, condition_mask)
        return jnp.where(condition_mask, 0.0, (y - x0_hat) / sigma)

    # With churn each step re-noises before it integrates, so this is not one ODE solve for
    # diffrax; a scan over the noise levels runs Karras' loop as written.
    def heun_step(y, inputs):
        sigma, sigma_next, churn_key = inputs
        y_hat, sigma_hat = churn(y, sigma, churn_key)
        d = slope(y_hat, sigma_hat)
        y_euler = y_hat + (sigma_next - sigma_hat) * d
        d_next = slope(y_euler, sigma_next)
        return y_hat + (sigma_next - sigma_hat) * 0.5 * (d + d_next), None

    y = _initial(k_init, denoiser, y_cond, condition_mask)
    # Every step but the last ends above sigma = 0 and gets Heun's correction.
    y, _ = jax.lax.scan(heun_step, y, (sigmas[:-1], sigmas[1:], churn_keys[:-1]))
    y_hat, sigma_hat = churn(y, sigmas[-1], churn_keys[-1])
    x0_hat, _ = denoiser(method.time_of_sigma(sigma_hat), y_hat, condition_mask)
    # Euler to sigma = 0 lands on x0_hat exactly.
    return jnp.where(condition_mask, y_cond, x0_hat)
