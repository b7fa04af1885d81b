"""Many draws for many conditions in one compiled call."""

import math
from typing import Literal

import equinox as eqx
import jax
import jax.random as jr

from .._custom_types import Array, Bool, Float, Key
from ._denoiser import AbstractDenoiser
from ._edm import sample_edm
from ._solve import _check_resample_steps, sample_ode, sample_sde

Sampler = Literal["sde", "ode", "edm"]
_NO_CHURN = (0.0, 0.0, math.inf, 1.0)


@eqx.filter_jit
@eqx.debug.assert_max_traces(max_traces=None)  # counts traces: eqx.debug.get_num_traces
def sample_conditionals(
    key: Key,
    denoiser: AbstractDenoiser,
    y_cond: Float[Array, "batch num_nodes"],
    condition_mask: Bool[Array, "batch num_nodes"],
    num_samples: int,
    sampler: Sampler = "sde",
    steps: int | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    churn: tuple[float, float, float, float] = _NO_CHURN,
    resample_steps: int = 0,
) -> Float[Array, "num_samples batch num_nodes"]:
    """``num_samples`` independent draws for each of the ``batch`` conditions.

    **Arguments:**
    - `key`: a `jax.random` key.
    - `denoiser`: ``(t, y, mask) -> (x0_hat, eps_hat)`` for one example.
    - `y_cond`, `condition_mask`: ``(batch, num_nodes)`` observed values (standardised) and
      which entries are observed.
    - `num_samples`: draws per condition.
    - `sampler`: ``"sde"`` (reverse SDE, Euler-Maruyama, ``steps`` default 500), ``"ode"``
      (probability-flow ODE: adaptive Tsit5 with ``rtol``/``atol``, or fixed-step Heun when
      ``steps`` is given) or ``"edm"`` (EDM methods only: ``sample_edm``, ``steps`` default 18).
    - `churn`: ``(s_churn, s_min, s_max, s_noise)`` of ``sample_edm``; only for ``"edm"``.
    - `resample_steps`: RePaint resampling rounds per step of ``sample_sde``; only for
      ``"sde"`` (0, the default, is no resampling).

    **Returns:** ``(num_samples, batch, num_nodes)``. Observed entries (``condition_mask``) of
    ``y_cond`` come back unchanged. Conditions and masks are traced: a new observation of the
    same shape reuses the compiled sampler; the sample count and sampler settings are
    compile-time constants.
    """
    if sampler != "edm" and tuple(churn) != _NO_CHURN:
        raise ValueError(f"`churn` applies to sampler='edm' only, got {churn} with {sampler!r}.")
    _check_resample_steps(resample_steps)
    if sampler != "sde" and resample_steps != 0:
        raise ValueError(
            f"`resample_steps` applies to sampler='sde' only, got {resample_steps} with "
            f"{sampler!r}."
        )
    batch = y_cond.shape[0]
    keys = jr.split(key, (num_samples, batch))
    if sampler == "sde":
        one = lambda k, y, m: sample_sde(
            k,
            denoiser,
            y,
            m,
            steps=500 if steps is None else steps,
            resample_steps=resample_steps,
        )
    elif sampler == "ode":
        one = lambda k, y, m: sample_ode(k, denoiser, y, m, steps=steps, rtol=rtol, atol=atol)
    elif sampler == "edm":
        s_churn, s_min, s_max, s_noise = churn
        one = lambda k, y, m: sample_edm(
            k,
            denoiser,
            y,
            m,
            steps=18 if steps is None else steps,
            s_churn=s_churn,
            s_min=s_min,
            s_max=s_max,
            s_noise=s_noise,
        )
    else:
        raise ValueError(f"`sampler` must be 'sde', 'ode' or 'edm', got {sampler!r}.")
    over_conditions = jax.vmap(one, in_axes=(0, 0, 0))
    return jax.vmap(over_conditions, in_axes=(0, None, None))(keys, y_cond, condition_mask)
