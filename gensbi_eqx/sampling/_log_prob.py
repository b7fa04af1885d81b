"""Log-densities by the probability-flow ODE, for ONE example (``vmap`` outside).

The probability-flow ODE ``dy/dt = v(t, y)`` (``AbstractDenoiser.velocity``) carries the
marginal ``p_t`` of the path ``y_t = alpha(t) x0 + sigma(t) eps`` along its solutions, and
along a solution the continuity equation gives ``d log p_t(y_t) / dt = -div v(t, y_t)``.
Integrating from data (``t_min``) to noise (``t = 1``)::

    log p_{t_min}(y) = log pi(y_1) + int_{t_min}^{1} div v(t, y_t) dt,   y_{t_min} = y,

where ``pi = N(0, prior_std^2 I)`` is the distribution sampling starts from.

What exactly is computed:

- **Only latent entries** (``condition_mask`` False) move and carry density. Observed entries
  are frozen (zero velocity) and are the condition, so the divergence is the trace of the
  latent block of ``dv/dy`` and ``pi`` is over the latent entries only. The result is
  ``log p(y_latent | y_observed)``; with every entry observed it is 0.
- **Terminal density.** ``pi`` is the model's start, not the true noised marginal ``p_1``; the
  two agree only when ``alpha(1) = 0`` and ``sigma(1) = prior_std`` (flow matching). Because
  the same ``pi`` is pushed through the same ODE by :func:`sample_ode`, the result is the exact
  log-density (up to solver error) of what the probability-flow sampler returns, and it
  integrates to one whatever ``pi`` is.
- **Lower limit.** The solve starts at ``t_min``, so ``y`` is read as ``y_{t_min}`` (which is
  what the samplers return): the data scaled by ``alpha(t_min)`` and blurred by noise of
  standard deviation ``sigma(t_min)`` -- nothing for flow matching (``t_min = 0``), about
  ``1e-4`` for VE, ``3e-4`` for VP (``alpha`` differs from 1 by ``5e-8``) and ``2e-3`` for EDM
  in standardised units. Nothing is extrapolated to ``t = 0``.

The time convention is ``_solve``'s, run the other way: ``u in [0, 1]`` with
``t = _time(method, 1 - u) = t_min + u (1 - t_min)``, so diffrax steps forward from data to
noise. The divergence is exact (one Jacobian-vector product per node, observed ones
included; cost grows with ``num_scalars``) or Hutchinson's estimate ``E_z[z^T (dv/dy) z]`` with
Rademacher probes on the latent entries, drawn once and held fixed for the whole solve, so the
estimate of the integral is unbiased.
"""

from typing import Literal

import diffrax
import jax
import jax.numpy as jnp
import jax.random as jr

from .._custom_types import ConditionMask, Key, Scalar, Flat
from ._denoiser import AbstractDenoiser
from ._solve import _time


def _latent_field(y, t, span, denoiser, mask):
    # dy/du of the frozen-observation ODE: the velocity times dt/du, zero on observed entries.
    return jnp.where(mask, 0.0, span * denoiser.velocity(t, y, mask))


def _field_exact(u, state, args):
    y, _ = state
    denoiser, mask = args
    t, span = _time(denoiser.method, 1.0 - u)
    dy, jvp = jax.linearize(lambda z: _latent_field(z, t, span, denoiser, mask), y)
    # Column k of the Jacobian is J e_k; observed rows of J vanish (frozen entries), so the
    # full trace is the trace of the latent block.
    columns = jax.vmap(jvp)(jnp.eye(y.shape[0], dtype=y.dtype))
    return dy, jnp.trace(columns)


def _field_hutchinson(u, state, args):
    y, _ = state
    denoiser, mask, probes = args
    t, span = _time(denoiser.method, 1.0 - u)
    dy, jvp = jax.linearize(lambda z: _latent_field(z, t, span, denoiser, mask), y)
    # Probes are zero on observed entries, so z^T J z only sees the latent block.
    estimates = jnp.sum(probes * jax.vmap(jvp)(probes), axis=-1)
    return dy, jnp.mean(estimates)


def _check(denoiser, y, condition_mask, trace, key, num_probes, rtol, atol, max_steps):
    if not isinstance(denoiser, AbstractDenoiser):
        raise TypeError(f"`denoiser` must be an AbstractDenoiser, got {type(denoiser).__name__}.")
    if jnp.ndim(y) != 1:
        raise ValueError(
            f"`y` must be one example of shape (num_scalars,), got shape {jnp.shape(y)}; "
            "vmap over a batch."
        )
    if not jnp.issubdtype(jnp.result_type(y), jnp.floating):
        raise ValueError(f"`y` must be a float array, got dtype {jnp.result_type(y)}.")
    if jnp.shape(condition_mask) != jnp.shape(y) or jnp.result_type(condition_mask) != bool:
        raise ValueError(
            f"`condition_mask` must be boolean of shape {jnp.shape(y)} like `y`, got "
            f"{jnp.result_type(condition_mask)} of shape {jnp.shape(condition_mask)}."
        )
    if trace not in ("exact", "hutchinson"):
        raise ValueError(f"`trace` must be 'exact' or 'hutchinson', got {trace!r}.")
    if trace == "hutchinson" and key is None:
        raise ValueError("`key` is required with trace='hutchinson' (it draws the probes).")
    if isinstance(num_probes, bool) or not isinstance(num_probes, int) or num_probes < 1:
        raise ValueError(f"`num_probes` must be a positive int, got {num_probes!r}.")
    for name, value in (("rtol", rtol), ("atol", atol)):
        if not value > 0:
            raise ValueError(f"`{name}` must be positive, got {value!r}.")
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise ValueError(f"`max_steps` must be a positive int, got {max_steps!r}.")


def log_prob(
    denoiser: AbstractDenoiser,
    y: Flat,
    condition_mask: ConditionMask,
    *,
    trace: Literal["exact", "hutchinson"] = "exact",
    key: Key | None = None,
    num_probes: int = 1,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    max_steps: int = 4096,
) -> Scalar:
    """``log p(y_latent | y_observed)`` under the model's probability-flow ODE.

    **Arguments:**
    - `denoiser`: ``(t, y, mask) -> (x0_hat, eps_hat)`` for one example.
    - `y`: ``(num_scalars,)`` in standardised units: the point at which the latent entries'
      density is evaluated, and the observed values.
    - `condition_mask`: ``(num_scalars,)``, True where observed.
    - `trace`: ``"exact"`` (Jacobian trace, one JVP per node) or ``"hutchinson"`` (unbiased
      estimate with ``num_probes`` Rademacher probes drawn from ``key``, fixed over the solve).
    - `key`: a `jax.random` key; required for ``"hutchinson"``, unused for ``"exact"``.
    - `rtol`, `atol`, `max_steps`: the adaptive Tsit5 solve (PID controller) from ``t_min`` to
      ``t = 1``; tolerances apply to ``y`` and to the accumulated log-density alike.

    **Returns:** a scalar: the log-density of the latent entries in standardised units, i.e.
    of the law of ``sample_ode``'s output (see the module docstring for the limits and the
    terminal density). Jit- and vmap-able; `y` and `condition_mask` are traced.
    """
    _check(denoiser, y, condition_mask, trace, key, num_probes, rtol, atol, max_steps)
    latent = jnp.logical_not(condition_mask)
    if trace == "exact":
        field, args = _field_exact, (denoiser, condition_mask)
    else:
        probes = jr.rademacher(key, (num_probes, y.shape[0]), dtype=y.dtype)
        field, args = _field_hutchinson, (denoiser, condition_mask, jnp.where(latent, probes, 0))
    solution = diffrax.diffeqsolve(
        diffrax.ODETerm(field),
        diffrax.Tsit5(),
        t0=0.0,
        t1=1.0,
        dt0=None,
        y0=(y, jnp.zeros((), dtype=y.dtype)),
        args=args,
        saveat=diffrax.SaveAt(t1=True),
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
        max_steps=max_steps,
    )
    y_1, divergence_integral = solution.ys[0][-1], solution.ys[1][-1]
    return _log_prior(denoiser, y_1, latent) + divergence_integral


def _log_prior(
    denoiser: AbstractDenoiser, y_1: Flat, latent: ConditionMask
) -> Scalar:
    """``log N(y_1; 0, prior_std^2 I)`` over the latent entries."""
    prior_std = denoiser.method.prior_std()
    per_entry = -0.5 * (y_1 / prior_std) ** 2 - jnp.log(prior_std) - 0.5 * jnp.log(2 * jnp.pi)
    return jnp.sum(jnp.where(latent, per_entry, 0.0))
