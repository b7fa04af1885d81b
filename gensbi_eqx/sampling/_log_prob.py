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
  the same ``pi`` is pushed through the same ODE by the `ODE` sampler, the result is the exact
  log-density (up to solver error) of what the probability-flow sampler returns, and it
  integrates to one whatever ``pi`` is.
- **Lower limit.** The solve starts at ``t_min``, so ``y`` is read as ``y_{t_min}`` (which is
  what the samplers return): the data scaled by ``alpha(t_min)`` and blurred by noise of
  standard deviation ``sigma(t_min)`` -- nothing for flow matching (``t_min = 0``), about
  ``1e-4`` for VE, ``3e-4`` for VP (``alpha`` differs from 1 by ``5e-8``) and ``2e-3`` for EDM
  in standardised units. Nothing is extrapolated to ``t = 0``.

The time convention is the samplers', run the other way: ``u in [0, 1]`` with
``t = method_time(method, 1 - u) = t_min + u (1 - t_min)``, so diffrax steps forward from data to
noise. The divergence is exact (one Jacobian-vector product per scalar, observed ones
included; cost grows with ``num_scalars``) or Hutchinson's estimate ``E_z[z^T (dv/dy) z]`` with
Rademacher probes on the latent entries, drawn once and held fixed for the whole solve, so the
estimate of the integral is unbiased.
"""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr

from .._custom_types import Array, Bool, ConditionMask, Flat, Float, Key, Scalar
from ..methods import AbstractDenoiser
from ..methods._denoiser import for_condition
from ..samplers import ODE
from ..samplers._base import method_time


class AbstractTrace(eqx.Module):
    """How `log_prob` takes the divergence of the probability-flow velocity."""


class ExactTrace(AbstractTrace):
    """The Jacobian's trace: one Jacobian-vector product per scalar (cost grows with
    ``num_scalars``)."""


class Hutchinson(AbstractTrace):
    """Hutchinson's unbiased estimate ``E_z[z^T (dv/dy) z]`` with ``num_probes`` Rademacher
    probes on the latent entries, drawn once and held fixed over the solve (needs a key)."""

    num_probes: int = eqx.field(static=True, default=1)

    def __check_init__(self):
        if isinstance(self.num_probes, bool) or not isinstance(self.num_probes, int) or self.num_probes < 1:
            raise ValueError(f"`num_probes` must be a positive integer, got {self.num_probes!r}.")


def _latent_field(y, t, span, denoiser, mask):
    # dy/du of the frozen-observation ODE: the velocity times dt/du, zero on observed entries.
    return jnp.where(mask, 0.0, span * denoiser.velocity(t, y, mask))


def _field_exact(u, state, args):
    y, _ = state
    denoiser, mask = args
    t, span = method_time(denoiser.method, 1.0 - u)
    dy, jvp = jax.linearize(lambda z: _latent_field(z, t, span, denoiser, mask), y)
    # Column k of the Jacobian is J e_k; observed rows of J vanish (frozen entries), so the
    # full trace is the trace of the latent block.
    columns = jax.vmap(jvp)(jnp.eye(y.shape[0], dtype=y.dtype))
    return dy, jnp.trace(columns)


def _field_hutchinson(u, state, args):
    y, _ = state
    denoiser, mask, probes = args
    t, span = method_time(denoiser.method, 1.0 - u)
    dy, jvp = jax.linearize(lambda z: _latent_field(z, t, span, denoiser, mask), y)
    # Probes are zero on observed entries, so z^T J z only sees the latent block.
    estimates = jnp.sum(probes * jax.vmap(jvp)(probes), axis=-1)
    return dy, jnp.mean(estimates)


def _check(denoiser, y, condition_mask, trace, key, ode) -> None:
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
    check_trace(trace, key)
    if not isinstance(ode, ODE):
        raise TypeError(f"`ode` must be a gs.ODE, got {type(ode).__name__}.")


def check_trace(trace, key) -> None:
    if not isinstance(trace, AbstractTrace):
        raise TypeError(
            "`trace` must be gs.sampling.ExactTrace() or gs.sampling.Hutchinson(num_probes), got "
            f"{trace!r}."
        )
    if isinstance(trace, Hutchinson) and key is None:
        raise ValueError("`key` is required with a Hutchinson trace (it draws the probes).")


def log_prob(
    denoiser: AbstractDenoiser,
    y: Flat,
    condition_mask: ConditionMask,
    *,
    trace: AbstractTrace = ExactTrace(),
    key: Key | None = None,
    ode: ODE = ODE(),
) -> Scalar:
    """``log p(y_latent | y_observed)`` under the model's probability-flow ODE.

    **Arguments:**
    - `denoiser`: ``(t, y, mask) -> (x0_hat, eps_hat)`` for one example.
    - `y`: ``(num_scalars,)`` in standardised units: the point at which the latent entries'
      density is evaluated, and the observed values.
    - `condition_mask`: ``(num_scalars,)``, True where observed.
    - `trace`: `ExactTrace` or `Hutchinson` (probes drawn from ``key``, fixed over the solve).
    - `key`: a `jax.random` key; required for `Hutchinson`, unused for `ExactTrace`.
    - `ode`: the solver settings (`gensbi_eqx.ODE`; default adaptive Tsit5 at ``rtol = atol =
      1e-5``) for the solve from ``t_min`` to ``t = 1``; tolerances apply to ``y`` and to the
      accumulated log-density alike.

    **Returns:** a scalar: the log-density of the latent entries in standardised units, i.e.
    of the law of that ``ode``'s draws (see the module docstring for the limits and the
    terminal density). Jit- and vmap-able; `y` and `condition_mask` are traced.
    """
    _check(denoiser, y, condition_mask, trace, key, ode)
    latent = jnp.logical_not(condition_mask)
    if isinstance(trace, ExactTrace):
        field, args = _field_exact, (denoiser, condition_mask)
    else:
        probes = jr.rademacher(key, (trace.num_probes, y.shape[0]), dtype=y.dtype)
        field, args = _field_hutchinson, (denoiser, condition_mask, jnp.where(latent, probes, 0))
    solution = ode.solve(diffrax.ODETerm(field), (y, jnp.zeros((), dtype=y.dtype)), args)
    y_1, divergence_integral = solution.ys[0][-1], solution.ys[1][-1]
    return _log_prior(denoiser, y_1, latent) + divergence_integral


@eqx.filter_jit
def log_prob_batch(
    denoiser: AbstractDenoiser,
    y: Float[Array, "batch num_scalars"],
    condition_mask: Bool[Array, "batch num_scalars"],
    keys: Key | None,
    metadata: Float[Array, "batch num_scalars"] | None,
    trace: AbstractTrace,
    ode: ODE,
) -> Float[Array, " batch"]:
    """`log_prob` over a batch of examples, with per-example keys ``(batch,)`` (or None) and
    token coordinates (or None); one compile per batch size."""

    def one(y_i, mask_i, key_i, metadata_i):
        d = for_condition(denoiser, y_i, metadata_i)
        return log_prob(d, y_i, mask_i, trace=trace, key=key_i, ode=ode)

    return jax.vmap(one)(y, condition_mask, keys, metadata)


def _log_prior(
    denoiser: AbstractDenoiser, y_1: Flat, latent: ConditionMask
) -> Scalar:
    """``log N(y_1; 0, prior_std^2 I)`` over the latent entries."""
    prior_std = denoiser.method.prior_std()
    per_entry = -0.5 * (y_1 / prior_std) ** 2 - jnp.log(prior_std) - 0.5 * jnp.log(2 * jnp.pi)
    return jnp.sum(jnp.where(latent, per_entry, 0.0))
