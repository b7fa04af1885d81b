"""RePaint resampling (Lugmayr et al. 2022, used for guided sampling by the Simformer): a
wrapper that repeats each reverse SDE step after re-noising."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr

from .._custom_types import ConditionMask, Flat, Key
from ..methods import AbstractDenoiser, AbstractMethod
from ._base import AbstractSampler, initial_state, method_time
from ._sde import SDE, reverse_terms


class Resampled(AbstractSampler):
    """``sampler`` (an `SDE`) with ``rounds`` RePaint rounds per step.

    After each reverse step from ``t`` to ``t'``, the latent entries are re-noised forward to
    ``t`` with the path's transition kernel,
    ``y_t = (alpha_t / alpha_t') y_t' + sqrt(sigma_t^2 - (alpha_t / alpha_t')^2 sigma_t'^2) z``,
    and the step is repeated with fresh noise: ``(rounds + 1) * steps`` denoiser evaluations.
    With an exact score this leaves every marginal unchanged; it gives guidance more rounds to
    act at each noise level.
    """

    sampler: SDE
    rounds: int = eqx.field(static=True, default=1)

    def __check_init__(self):
        if not isinstance(self.sampler, SDE):
            raise TypeError(
                f"`sampler` must be a gs.SDE (resampling re-noises between its fixed steps), got "
                f"{type(self.sampler).__name__}."
            )
        if isinstance(self.rounds, bool) or not isinstance(self.rounds, int) or self.rounds < 0:
            raise ValueError(f"`rounds` must be a non-negative integer, got {self.rounds!r}.")

    def check_method(self, method: AbstractMethod) -> None:
        self.sampler.check_method(method)

    @property
    def evaluations(self) -> int:
        return (self.rounds + 1) * self.sampler.steps

    def __call__(
        self, key: Key, denoiser: AbstractDenoiser, y_cond: Flat, condition_mask: ConditionMask
    ) -> Flat:
        if self.rounds == 0:
            return self.sampler(key, denoiser, y_cond, condition_mask)
        # Each step is repeated after re-noising, so the solve is no longer one diffeqsolve: a
        # scan over the grid drives diffrax's Euler step by step, with fresh noise every round.
        method, steps = denoiser.method, self.sampler.steps
        solver = diffrax.Euler()
        args = (denoiser, condition_mask)
        grid = jnp.linspace(0.0, 1.0, steps + 1)
        k_init, k_brownian, k_renoise = jr.split(key, 3)
        brownian_keys = jr.split(k_brownian, (steps, self.rounds + 1))
        renoise_keys = jr.split(k_renoise, (steps, self.rounds + 1))
        rounds = jnp.arange(self.rounds + 1)

        def reverse(y, s0, s1, brownian_key):
            terms = reverse_terms(diffrax.UnsafeBrownianPath(shape=y.shape, key=brownian_key))
            y1, _, _, _, _ = solver.step(terms, s0, s1, y, args, None, made_jump=False)
            return y1

        def renoise(y, s_from, s_to, noise_key):
            alpha_to, sigma_to = method.alpha_sigma(method_time(method, s_to)[0])
            alpha_from, sigma_from = method.alpha_sigma(method_time(method, s_from)[0])
            ratio = alpha_to / alpha_from
            std = jnp.sqrt(jnp.maximum(sigma_to**2 - (ratio * sigma_from) ** 2, 0.0))
            noised = ratio * y + std * jr.normal(noise_key, y.shape)
            return jnp.where(condition_mask, y, noised)

        def step(y, inputs):
            s0, s1, step_brownian_keys, step_renoise_keys = inputs

            # Round 0 steps from s0; every later round first re-noises from s1 back to s0. One
            # scan over the rounds keeps a single copy of the denoiser in the compiled graph.
            def round_(y, round_inputs):
                r, brownian_key, noise_key = round_inputs
                y = jnp.where(r == 0, y, renoise(y, s1, s0, noise_key))
                return reverse(y, s0, s1, brownian_key), None

            y, _ = jax.lax.scan(round_, y, (rounds, step_brownian_keys, step_renoise_keys))
            return y, None

        y0 = initial_state(k_init, denoiser, y_cond, condition_mask)
        y, _ = jax.lax.scan(step, y0, (grid[:-1], grid[1:], brownian_keys, renoise_keys))
        return jnp.where(condition_mask, y_cond, y)
