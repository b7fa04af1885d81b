"""Many draws for many conditions in one compiled call."""

import math
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr

from .._custom_types import Array, Bool, Float, Key
from .._sharding import DataParallel
from ._denoiser import AbstractDenoiser, with_metadata
from ._edm import sample_edm
from ._solve import _check_resample_steps, sample_ode, sample_sde

Sampler = Literal["sde", "ode", "edm"]
_NO_CHURN = (0.0, 0.0, math.inf, 1.0)


@eqx.filter_jit
@eqx.debug.assert_max_traces(max_traces=None)  # counts traces: eqx.debug.get_num_traces
def sample_conditionals(
    key: Key,
    denoiser: AbstractDenoiser,
    y_cond: Float[Array, "batch num_scalars"],
    condition_mask: Bool[Array, "batch num_scalars"],
    num_samples: int,
    sampler: Sampler = "sde",
    steps: int | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    churn: tuple[float, float, float, float] = _NO_CHURN,
    resample_steps: int = 0,
    chunk_size: int | None = None,
    parallel: DataParallel | None = None,
    metadata: Float[Array, "batch num_scalars"] | None = None,
) -> Float[Array, "num_samples batch num_scalars"]:
    """``num_samples`` independent draws for each of the ``batch`` conditions.

    **Arguments:**
    - `key`: a `jax.random` key.
    - `denoiser`: ``(t, y, mask) -> (x0_hat, eps_hat)`` for one example.
    - `y_cond`, `condition_mask`: ``(batch, num_scalars)`` observed values (standardised) and
      which entries are observed.
    - `num_samples`: draws per condition.
    - `sampler`: ``"sde"`` (reverse SDE, Euler-Maruyama, ``steps`` default 500), ``"ode"``
      (probability-flow ODE: adaptive Tsit5 with ``rtol``/``atol``, or fixed-step Heun when
      ``steps`` is given) or ``"edm"`` (EDM methods only: ``sample_edm``, ``steps`` default 18).
    - `churn`: ``(s_churn, s_min, s_max, s_noise)`` of ``sample_edm``; only for ``"edm"``.
    - `resample_steps`: RePaint resampling rounds per step of ``sample_sde``; only for
      ``"sde"`` (0, the default, is no resampling).
    - `chunk_size`: draw at most this many (draw, condition) pairs at once, one chunk after
      the other (``lax.map``), so that working memory is bounded by the chunk, not by
      ``num_samples * batch``. Draw ``i`` of condition ``j`` has the same key whatever the
      chunking, so results agree up to floating-point rounding. ``None``: all at once.
    - `parallel`: split each chunk over several devices (``gensbi_eqx._sharding``); the
      denoiser and conditions must be replicated on them.
    - `metadata`: each condition's token coordinates, for a model with metadata tokens
      (`with_metadata`).

    **Returns:** ``(num_samples, batch, num_scalars)``. Observed entries (``condition_mask``) of
    ``y_cond`` come back unchanged. Conditions and masks are traced: a new observation of the
    same shape reuses the compiled sampler; the sample count and sampler settings are
    compile-time constants.
    """
    if sampler != "edm" and tuple(churn) != _NO_CHURN:
        raise ValueError(f"`churn` applies to sampler='edm' only, got {churn} with {sampler!r}.")
    _check_resample_steps(resample_steps)
    if chunk_size is not None and (
        isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1
    ):
        raise ValueError(f"`chunk_size` must be a positive int or None, got {chunk_size!r}.")
    if sampler != "sde" and resample_steps != 0:
        raise ValueError(
            f"`resample_steps` applies to sampler='sde' only, got {resample_steps} with "
            f"{sampler!r}."
        )
    batch = y_cond.shape[0]
    keys = jr.split(key, (num_samples, batch))
    if sampler == "sde":
        one = lambda k, y, m, d: sample_sde(
            k,
            d,
            y,
            m,
            steps=500 if steps is None else steps,
            resample_steps=resample_steps,
        )
    elif sampler == "ode":
        one = lambda k, y, m, d: sample_ode(k, d, y, m, steps=steps, rtol=rtol, atol=atol)
    elif sampler == "edm":
        s_churn, s_min, s_max, s_noise = churn
        one = lambda k, y, m, d: sample_edm(
            k,
            d,
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
    bind = metadata is not None
    if not bind:
        metadata = jnp.zeros((batch, 0))  # a stand-in that vmap can slice

    def one_with_metadata(k, y, m, meta):
        return one(k, y, m, with_metadata(denoiser, meta) if bind else denoiser)

    if chunk_size is None and parallel is None:
        over_conditions = jax.vmap(one_with_metadata, in_axes=(0, 0, 0, 0))
        return jax.vmap(over_conditions, in_axes=(0, None, None, None))(
            keys, y_cond, condition_mask, metadata
        )
    # Pair k is draw k // batch of condition k % batch, with the key it has unchunked.
    n = num_samples * batch
    size = n if chunk_size is None else min(chunk_size, n)
    if parallel is not None:
        size = -(-size // parallel.num_devices) * parallel.num_devices
    num_chunks = -(-n // size)
    flat_keys = keys.reshape(n)

    def chunk(index):
        # Padding of the last chunk repeats early pairs; their draws are dropped.
        pairs = (index * size + jnp.arange(size)) % n
        if parallel is not None:
            pairs = parallel.constrain(pairs)
        cond = pairs % batch
        return jax.vmap(one_with_metadata)(
            flat_keys[pairs], y_cond[cond], condition_mask[cond], metadata[cond]
        )

    draws = jax.lax.map(chunk, jnp.arange(num_chunks)).reshape(num_chunks * size, -1)[:n]
    return draws.reshape(num_samples, batch, -1)
