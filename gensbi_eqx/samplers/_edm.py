"""Karras et al.'s (2022) stochastic Heun sampler (their Algorithm 2), for EDM."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr

from .._custom_types import ConditionMask, Flat, Key, Scalar
from ..methods import EDM, AbstractDenoiser, AbstractMethod
from ._base import AbstractSampler, check_positive_int, initial_state

# Karras et al. cap the churn so that one step never more than doubles the variance.
_MAX_GAMMA = math.sqrt(2) - 1


class EDMSampler(AbstractSampler):
    """Karras et al.'s Heun sampler with stochastic churn, for an `EDM` method.

    The noise levels are ``sigma_i = method.sigma(t_i)`` at ``t_i = linspace(1, 0, steps)`` (the
    ``rho`` schedule), then 0. Step ``i`` first raises the noise level from ``sigma_i`` to
    ``sigma_hat = sigma_i (1 + gamma_i)`` by adding fresh noise of variance
    ``(sigma_hat^2 - sigma_i^2) s_noise^2``, where ``gamma_i = min(s_churn / steps, sqrt(2) - 1)``
    if ``s_min <= sigma_i <= s_max`` and 0 otherwise; then it takes a Heun step of
    ``dy/dsigma = (y - x0_hat) / sigma`` down to ``sigma_{i+1}``. The last step, to
    ``sigma = 0``, is a single Euler step, which returns the denoised ``x0_hat``: ``2 steps - 1``
    denoiser evaluations in all. ``s_churn = 0`` (the default) is the deterministic
    probability-flow sampler.

    **Arguments:**
    - `steps`: number of noise levels (Karras' ``N``).
    - `s_churn`, `s_min`, `s_max`, `s_noise`: churn strength, the noise-level window where it
      applies, and the scale of the fresh noise.
    """

    steps: int = eqx.field(static=True, default=18)
    s_churn: float = eqx.field(static=True, default=0.0)
    s_min: float = eqx.field(static=True, default=0.0)
    s_max: float = eqx.field(static=True, default=math.inf)
    s_noise: float = eqx.field(static=True, default=1.0)

    def __check_init__(self):
        check_positive_int(self.steps, "steps")
        if not (math.isfinite(self.s_churn) and self.s_churn >= 0):
            raise ValueError(f"`s_churn` must be finite and non-negative, got {self.s_churn}.")
        if not (self.s_min >= 0 and self.s_min <= self.s_max):
            raise ValueError(f"Need 0 <= `s_min` <= `s_max`, got {self.s_min} and {self.s_max}.")
        if not (math.isfinite(self.s_noise) and self.s_noise >= 0):
            raise ValueError(f"`s_noise` must be finite and non-negative, got {self.s_noise}.")

    def check_method(self, method: AbstractMethod) -> None:
        if not isinstance(method, EDM):
            raise ValueError(
                "gs.EDMSampler steps in EDM's noise levels and needs an EDM method, got "
                f"{type(method).__name__}; use gs.SDE() or gs.ODE()."
            )

    @property
    def evaluations(self) -> int:
        return 2 * self.steps - 1

    def __call__(
        self, key: Key, denoiser: AbstractDenoiser, y_cond: Flat, condition_mask: ConditionMask
    ) -> Flat:
        method = denoiser.method
        self.check_method(method)
        gamma = min(self.s_churn / self.steps, _MAX_GAMMA)
        sigmas = method.sigma(jnp.linspace(1.0, 0.0, self.steps))
        k_init, k_churn = jr.split(key)
        churn_keys = jr.split(k_churn, self.steps)

        def churn(y, sigma, churn_key) -> tuple[Flat, Scalar]:
            in_window = (self.s_min <= sigma) & (sigma <= self.s_max)
            sigma_hat = sigma * (1 + jnp.where(in_window, gamma, 0.0))
            noise = jnp.sqrt(sigma_hat**2 - sigma**2) * self.s_noise * jr.normal(churn_key, y.shape)
            return jnp.where(condition_mask, y, y + noise), sigma_hat

        def slope(y, sigma) -> Flat:
            x0_hat, _ = denoiser(method.time_of_sigma(sigma), y, condition_mask)
            return jnp.where(condition_mask, 0.0, (y - x0_hat) / sigma)

        # With churn each step re-noises before it integrates, so this is not one ODE solve
        # for diffrax; a scan over the noise levels runs Karras' loop as written.
        def heun_step(y, inputs):
            sigma, sigma_next, churn_key = inputs
            y_hat, sigma_hat = churn(y, sigma, churn_key)
            d = slope(y_hat, sigma_hat)
            y_euler = y_hat + (sigma_next - sigma_hat) * d
            d_next = slope(y_euler, sigma_next)
            return y_hat + (sigma_next - sigma_hat) * 0.5 * (d + d_next), None

        y = initial_state(k_init, denoiser, y_cond, condition_mask)
        # Every step but the last ends above sigma = 0 and gets Heun's correction.
        y, _ = jax.lax.scan(heun_step, y, (sigmas[:-1], sigmas[1:], churn_keys[:-1]))
        y_hat, sigma_hat = churn(y, sigmas[-1], churn_keys[-1])
        x0_hat, _ = denoiser(method.time_of_sigma(sigma_hat), y_hat, condition_mask)
        # Euler to sigma = 0 lands on x0_hat exactly.
        return jnp.where(condition_mask, y_cond, x0_hat)
