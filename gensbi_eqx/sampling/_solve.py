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

from .._custom_types import ConditionMask, Key, Tokens
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


def _initial(key: Key, denoiser: AbstractDenoiser, y_cond: Tokens, mask: ConditionMask) -> Tokens:
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


def sample_sde(
    key: Key,
    denoiser: AbstractDenoiser,
    y_cond: Tokens,
    condition_mask: ConditionMask,
    *,
    steps: int = 500,
) -> Tokens:
    """One draw of the latent entries by the reverse SDE, Euler-Maruyama with ``steps`` steps.

    ``y_cond (num_nodes,)`` holds the observed values (standardised) where ``condition_mask``.
    """
    if _data_vanishes_at_noise_end(denoiser.method):
        raise ValueError(
            f"{type(denoiser.method).__name__} has no reverse SDE sampler here (its SDE is "
            "singular where alpha = 0); use sampler='ode'."
        )
    k_init, k_path = jr.split(key)
    y0 = _initial(k_init, denoiser, y_cond, condition_mask)
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


def sample_ode(
    key: Key,
    denoiser: AbstractDenoiser,
    y_cond: Tokens,
    condition_mask: ConditionMask,
    *,
    steps: int | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    max_steps: int = 4096,
) -> Tokens:
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
