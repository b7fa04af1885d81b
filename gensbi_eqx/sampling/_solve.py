"""Reverse-time sampling on diffrax, for ONE example (``vmap`` outside).

Both solvers integrate in ``s in [0, 1]`` with ``t = 1 - s (1 - t_min)``, so diffrax always
steps forward. Observed entries have zero drift and zero diffusion and are restored exactly at
the end, so they are never noised or moved.
"""

import diffrax
import jax
import jax.numpy as jnp
import jax.random as jr
import lineax as lx

from .._custom_types import ConditionMask, Key, Flat
from ._denoiser import AbstractDenoiser


def _time(method, s):
    span = 1.0 - method.t_min
    return 1.0 - span * s, span


def _data_vanishes_at_noise_end(method) -> bool:
    """Whether ``alpha(1) = 0``: then the drift ``f = alpha'/alpha`` blows up at ``t = 1``."""
    # Static method parameters make this concrete even while a caller is being traced.
    with jax.ensure_compile_time_eval():
        alpha, _ = method.alpha_sigma(1.0)
        return bool(alpha == 0)


def _initial(key: Key, denoiser: AbstractDenoiser, y_cond: Flat, mask: ConditionMask) -> Flat:
    noise = denoiser.method.prior_std() * jr.normal(key, y_cond.shape)
    return jnp.where(mask, y_cond, noise)


def _reverse_sde_drift(s, y, args):
    denoiser, mask = args
    t, span = _time(denoiser.method, s)
    f, g2 = denoiser.method.drift_diffusion(t)
    drift = f * y - g2 * denoiser.score(t, y, mask)
    return jnp.where(mask, 0.0, -span * drift)


def _reverse_sde_diffusion(s, y, args):
    denoiser, mask = args
    t, span = _time(denoiser.method, s)
    _, g2 = denoiser.method.drift_diffusion(t)
    return lx.DiagonalLinearOperator(jnp.where(mask, 0.0, jnp.sqrt(span * g2)))


def _reverse_ode(s, y, args):
    denoiser, mask = args
    t, span = _time(denoiser.method, s)
    return jnp.where(mask, 0.0, -span * denoiser.velocity(t, y, mask))


def _check_resample_steps(resample_steps) -> None:
    is_int = isinstance(resample_steps, int) and not isinstance(resample_steps, bool)
    if not is_int or resample_steps < 0:
        raise ValueError(
            f"`resample_steps` must be a non-negative integer, got {resample_steps!r}."
        )


def sample_sde(
    key: Key,
    denoiser: AbstractDenoiser,
    y_cond: Flat,
    condition_mask: ConditionMask,
    *,
    steps: int = 500,
    resample_steps: int = 0,
) -> Flat:
    """One draw of the latent entries by the reverse SDE, Euler-Maruyama with ``steps`` steps.

    ``y_cond (num_scalars,)`` holds the observed values (standardised) where ``condition_mask``.

    ``resample_steps = r > 0`` adds RePaint-style resampling (Lugmayr et al. 2022, as used for
    guided sampling by the Simformer): after each reverse step from ``t`` to ``t'``, the latent
    entries are ``r`` times re-noised forward to ``t`` with the path's transition kernel,
    ``y_t = (alpha_t / alpha_t') y_t' + sqrt(sigma_t^2 - (alpha_t / alpha_t')^2 sigma_t'^2) z``,
    and the reverse step is repeated with fresh noise: ``(r + 1) * steps`` denoiser evaluations.
    With an exact score this leaves every marginal unchanged; it gives guidance more rounds to
    act at each noise level. ``resample_steps = 0`` is the plain sampler.
    """
    if _data_vanishes_at_noise_end(denoiser.method):
        raise ValueError(
            f"{type(denoiser.method).__name__} has no reverse SDE sampler here (its SDE is "
            "singular where alpha = 0); use sampler='ode'."
        )
    _check_resample_steps(resample_steps)
    k_init, k_path = jr.split(key)
    y0 = _initial(k_init, denoiser, y_cond, condition_mask)
    if resample_steps > 0:
        y1 = _resampled_sde(k_path, denoiser, y0, condition_mask, steps, resample_steps)
        return jnp.where(condition_mask, y_cond, y1)
    brownian = diffrax.UnsafeBrownianPath(shape=y_cond.shape, key=k_path)
    terms = diffrax.MultiTerm(
        diffrax.ODETerm(_reverse_sde_drift),
        diffrax.ControlTerm(_reverse_sde_diffusion, brownian),
    )
    solution = diffrax.diffeqsolve(
        terms,
        diffrax.Euler(),
        t0=0.0,
        t1=1.0,
        dt0=1.0 / steps,
        y0=y0,
        args=(denoiser, condition_mask),
        saveat=diffrax.SaveAt(t1=True),
        max_steps=steps,
        adjoint=diffrax.ForwardMode(),  # sampling is never differentiated in reverse mode
    )
    return jnp.where(condition_mask, y_cond, solution.ys[-1])


def _resampled_sde(
    key: Key,
    denoiser: AbstractDenoiser,
    y0: Flat,
    condition_mask: ConditionMask,
    steps: int,
    resample_steps: int,
) -> Flat:
    """Euler-Maruyama with RePaint resampling; see `sample_sde`."""
    # Each step is repeated after re-noising, so the solve is no longer one diffeqsolve: a scan
    # over the grid drives diffrax's Euler step by step, with fresh Brownian noise every round.
    method = denoiser.method
    solver = diffrax.Euler()
    args = (denoiser, condition_mask)
    grid = jnp.linspace(0.0, 1.0, steps + 1)
    k_brownian, k_renoise = jr.split(key)
    brownian_keys = jr.split(k_brownian, (steps, resample_steps + 1))
    renoise_keys = jr.split(k_renoise, (steps, resample_steps + 1))
    rounds = jnp.arange(resample_steps + 1)

    def reverse(y, s0, s1, brownian_key):
        terms = diffrax.MultiTerm(
            diffrax.ODETerm(_reverse_sde_drift),
            diffrax.ControlTerm(
                _reverse_sde_diffusion,
                diffrax.UnsafeBrownianPath(shape=y.shape, key=brownian_key),
            ),
        )
        y1, _, _, _, _ = solver.step(terms, s0, s1, y, args, None, made_jump=False)
        return y1

    def renoise(y, s_from, s_to, noise_key):
        alpha_to, sigma_to = method.alpha_sigma(_time(method, s_to)[0])
        alpha_from, sigma_from = method.alpha_sigma(_time(method, s_from)[0])
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

    y, _ = jax.lax.scan(step, y0, (grid[:-1], grid[1:], brownian_keys, renoise_keys))
    return y


def sample_ode(
    key: Key,
    denoiser: AbstractDenoiser,
    y_cond: Flat,
    condition_mask: ConditionMask,
    *,
    steps: int | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    max_steps: int = 4096,
) -> Flat:
    """One draw of the latent entries by the probability-flow ODE.

    ``steps=None``: adaptive ``Tsit5`` with a PID controller (``rtol``, ``atol``);
    ``steps=k``: fixed-step ``Heun`` with ``k`` steps (``2k`` network evaluations).
    """
    y0 = _initial(key, denoiser, y_cond, condition_mask)
    if steps is None:
        solver = diffrax.Tsit5()
        controller = diffrax.PIDController(rtol=rtol, atol=atol)
        dt0 = None
    else:
        solver = diffrax.Heun()
        controller = diffrax.ConstantStepSize()
        dt0 = 1.0 / steps
        max_steps = steps
    solution = diffrax.diffeqsolve(
        diffrax.ODETerm(_reverse_ode),
        solver,
        t0=0.0,
        t1=1.0,
        dt0=dt0,
        y0=y0,
        args=(denoiser, condition_mask),
        saveat=diffrax.SaveAt(t1=True),
        stepsize_controller=controller,
        max_steps=max_steps,
    )
    return jnp.where(condition_mask, y_cond, solution.ys[-1])
