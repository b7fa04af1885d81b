"""Many draws for many conditions in one compiled call."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr

from .._custom_types import Array, Bool, Float, Key
from .._sharding import DataParallel
from ..methods import AbstractDenoiser
from ..methods._denoiser import for_condition
from ..samplers import AbstractSampler


@eqx.filter_jit
@eqx.debug.assert_max_traces(max_traces=None)  # counts traces: eqx.debug.get_num_traces
def sample_conditionals(
    key: Key,
    denoiser: AbstractDenoiser,
    y_cond: Float[Array, "batch num_scalars"],
    condition_mask: Bool[Array, "batch num_scalars"],
    num_samples: int,
    sampler: AbstractSampler,
    *,
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
    - `sampler`: a `gensbi_eqx.samplers.AbstractSampler` (e.g. ``gs.SDE(steps=500)``).
    - `chunk_size`: draw at most this many (draw, condition) pairs at once, one chunk after
      the other (``lax.map``), so that working memory is bounded by the chunk, not by
      ``num_samples * batch``. Draw ``i`` of condition ``j`` has the same key whatever the
      chunking, so results agree up to floating-point rounding. ``None``: all at once.
    - `parallel`: split each chunk over several devices (``gensbi_eqx._sharding``); the
      denoiser and conditions must be replicated on them.
    - `metadata`: each condition's token coordinates, for a model with metadata tokens
      (`for_condition`).

    **Returns:** ``(num_samples, batch, num_scalars)``. Observed entries (``condition_mask``) of
    ``y_cond`` come back unchanged. Conditions and masks are traced: a new observation of the
    same shape reuses the compiled sampler; the sample count and sampler settings are
    compile-time constants.
    """
    if not isinstance(sampler, AbstractSampler):
        raise TypeError(
            f"`sampler` must be a sampler such as gs.SDE() or gs.ODE(), got {sampler!r}."
        )
    sampler.check_method(denoiser.method)
    if chunk_size is not None and (
        isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1
    ):
        raise ValueError(f"`chunk_size` must be a positive int or None, got {chunk_size!r}.")
    batch = y_cond.shape[0]
    keys = jr.split(key, (num_samples, batch))
    bind = metadata is not None
    if not bind:
        metadata = jnp.zeros((batch, 0))  # a stand-in that vmap can slice

    def one_condition(k, y, m, meta):
        # Specialised to the condition here, outside the solver's loop (and, unchunked, outside
        # the vmap over draws): work on observed values alone is done once per condition.
        return sampler(k, for_condition(denoiser, y, meta if bind else None), y, m)

    if chunk_size is None and parallel is None:
        over_conditions = jax.vmap(one_condition, in_axes=(0, 0, 0, 0))
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
        return jax.vmap(one_condition)(
            flat_keys[pairs], y_cond[cond], condition_mask[cond], metadata[cond]
        )

    draws = jax.lax.map(chunk, jnp.arange(num_chunks)).reshape(num_chunks * size, -1)[:n]
    return draws.reshape(num_samples, batch, -1)
