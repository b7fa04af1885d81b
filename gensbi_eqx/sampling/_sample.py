"""Many draws for many conditions in one compiled call."""

from typing import Literal

import equinox as eqx
import jax
import jax.random as jr

from .._custom_types import Array, Bool, Float, Key
from ._denoiser import AbstractDenoiser
from ._solve import sample_ode, sample_sde

Sampler = Literal["sde", "ode"]


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
) -> Float[Array, "num_samples batch num_nodes"]:
    """``num_samples`` independent draws for each of the ``batch`` conditions.

    Observed entries (``condition_mask``) of ``y_cond`` come back unchanged. Conditions and
    masks are traced: a new observation of the same shape reuses the compiled sampler; the
    sample count and sampler settings are compile-time constants.
    """
    batch = y_cond.shape[0]
    keys = jr.split(key, (num_samples, batch))
    if sampler == "sde":
        one = lambda k, y, m: sample_sde(k, denoiser, y, m, steps=500 if steps is None else steps)
    elif sampler == "ode":
        one = lambda k, y, m: sample_ode(k, denoiser, y, m, steps=steps, rtol=rtol, atol=atol)
    else:
        raise ValueError(f"`sampler` must be 'sde' or 'ode', got {sampler!r}.")
    over_conditions = jax.vmap(one, in_axes=(0, 0, 0))
    return jax.vmap(over_conditions, in_axes=(0, None, None))(keys, y_cond, condition_mask)
