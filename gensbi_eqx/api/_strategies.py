"""How `Estimator.sample` meets constraints: rejection from the model's own draws, sequential
Monte Carlo over the guided reverse SDE, or guided diffusion alone (a denoiser transform).

Each returns the standardised draws ``(num_samples, batch, num_scalars)`` and what it reports,
``info``: ``strategy`` and, per condition, the acceptance rate or the effective sample size.
"""

from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .._custom_types import Array, Bool, Float, Key
from .._sharding import DataParallel
from ..data import NodeLayout, Standardiser
from ..guidance import SlabGuidance
from ..methods import AbstractDenoiser
from ..methods._denoiser import for_condition
from ..samplers import SMC, AbstractSampler, Rejection, default_sampler
from ..sampling import sample_conditionals
from ._constraints import AbstractConstraint, as_tuple, constrained, stacked

Info = dict[str, Any]


def draw_constrained(
    key: Key,
    denoiser: AbstractDenoiser,
    constraints: AbstractConstraint | Sequence[AbstractConstraint],
    sampler: AbstractSampler | Rejection | SMC | None,
    layout: NodeLayout,
    standardiser: Standardiser,
    y_cond: Float[Array, "batch num_scalars"],
    mask: Bool[Array, "batch num_scalars"],
    num_samples: int,
    *,
    chunk_size: int | None,
    parallel: DataParallel | None,
    metadata: Float[Array, "batch num_scalars"] | None,
) -> tuple[Float[Array, "num_samples batch num_scalars"], Info]:
    """Draws from the conditional restricted to ``constraints`` by the strategy ``sampler``
    names: `Rejection` (the default, ``None``), `SMC`, or a plain sampler for guidance."""
    constraints = as_tuple(constraints)
    options = {"chunk_size": chunk_size, "parallel": parallel, "metadata": metadata}
    if isinstance(sampler, AbstractSampler):
        guided = constrained(denoiser, constraints, layout, standardiser)
        z = sample_conditionals(key, guided, y_cond, mask, num_samples, sampler, **options)
        return z, {"strategy": "guidance"}
    if isinstance(sampler, SMC):
        slab = stacked(denoiser, constraints, layout, standardiser, sampler.variance)
        return smc_draws(key, sampler, slab, y_cond, mask, num_samples, metadata)
    rejection = Rejection() if sampler is None else sampler
    fallback = SMC() if rejection.fallback is None else rejection.fallback
    slab = stacked(denoiser, constraints, layout, standardiser, fallback.variance)
    return rejection_draws(key, rejection, slab, y_cond, mask, num_samples, options)


def smc_draws(
    key: Key,
    smc: SMC,
    slab: SlabGuidance,
    y_cond: Float[Array, "batch num_scalars"],
    mask: Bool[Array, "batch num_scalars"],
    num_samples: int,
    metadata: Float[Array, "batch num_scalars"] | None,
) -> tuple[Float[Array, "num_samples batch num_scalars"], Info]:
    smc.check_method(slab.method)
    draws, info = _smc_batch(key, smc, slab, y_cond, mask, metadata, num_samples)
    info = {name: np.asarray(value) for name, value in info.items()}
    return draws, {"strategy": "smc", **info}


@eqx.filter_jit
def _smc_batch(key, smc, slab, y_cond, mask, metadata, num_samples):
    def one(k, y, m, meta):
        return smc(k, for_condition(slab, y, meta), y, m, num_samples)

    keys = jr.split(key, y_cond.shape[0])
    meta_axis = None if metadata is None else 0
    draws, info = jax.vmap(one, in_axes=(0, 0, 0, meta_axis))(keys, y_cond, mask, metadata)
    return jnp.swapaxes(draws, 0, 1), info


@eqx.filter_jit
def _inside(slab: SlabGuidance, z: Float[Array, "n batch num_scalars"]) -> Bool[Array, "n batch"]:
    return jax.vmap(jax.vmap(slab.satisfied))(z)


def rejection_draws(
    key: Key,
    rejection: Rejection,
    slab: SlabGuidance,
    y_cond: Float[Array, "batch num_scalars"],
    mask: Bool[Array, "batch num_scalars"],
    num_samples: int,
    options: dict,
) -> tuple[Float[Array, "num_samples batch num_scalars"], Info]:
    """Rounds of ``num_samples`` unguided proposals per condition, keeping those inside, until
    every condition has ``num_samples`` (or ``rejection.fallback`` takes over)."""
    denoiser = slab.denoiser
    sampler = default_sampler(denoiser.method) if rejection.sampler is None else rejection.sampler
    batch, n = y_cond.shape
    kept = np.zeros((num_samples, batch, n), dtype=np.float32)
    counts = np.zeros(batch, dtype=int)
    inside_total = np.zeros(batch, dtype=int)
    k_rounds, k_fallback = jr.split(key)
    for round_ in range(rejection.max_rounds):
        z = sample_conditionals(
            jr.fold_in(k_rounds, round_), denoiser, y_cond, mask, num_samples, sampler, **options
        )
        inside = np.asarray(_inside(slab, z))
        z = np.asarray(z)
        inside_total += inside.sum(axis=0)
        for j in range(batch):
            take = z[inside[:, j], j][: num_samples - counts[j]]
            kept[counts[j] : counts[j] + len(take), j] = take
            counts[j] += len(take)
        proposals = (round_ + 1) * num_samples
        acceptance = inside_total / proposals
        if (counts == num_samples).all():
            info = {"strategy": "rejection", "acceptance": acceptance, "proposals": proposals}
            return jnp.asarray(kept), info
        improbable = round_ == 0 and (acceptance < rejection.min_acceptance).any()
        if improbable and rejection.fallback is not None:
            break
    if rejection.fallback is None:
        raise RuntimeError(
            f"Rejection kept fewer than {num_samples} draws for some condition after "
            f"{rejection.max_rounds} rounds (acceptance {acceptance.tolist()}); raise "
            "`max_rounds` or give a `fallback` such as gs.SMC()."
        )
    try:
        rejection.fallback.check_method(denoiser.method)
    except ValueError as error:
        raise ValueError(
            f"The constraints are improbable under the model (acceptance {acceptance.tolist()} "
            f"in {proposals} proposals per condition) and the fallback gs.SMC cannot run: "
            f"{error} Pass sampler=gs.Rejection(fallback=None, max_rounds=...) to go on "
            "rejecting, or a plain sampler for guided diffusion (approximate)."
        ) from None
    draws, info = smc_draws(
        k_fallback, rejection.fallback, slab, y_cond, mask, num_samples, options["metadata"]
    )
    return draws, {**info, "acceptance": acceptance, "proposals": proposals}
