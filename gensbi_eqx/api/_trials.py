"""Queries with i.i.d. trials (``{"x": gs.Trials(X)}``): one flat query per trial, the prior and
each trial's posterior precision in the model's units, and the composed draws
(`gensbi_eqx.sampling.sample_trials`)."""

import warnings
from collections.abc import Mapping, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .._custom_types import Array, ArrayLike, Key
from ..data import NodeData, NodeLayout, Standardiser
from ..models import AbstractModel
from ..samplers import AbstractSampler
from ..sampling import (
    AbstractCorrection,
    GaussCorrection,
    GaussianPrior,
    NoCorrection,
    gaussian_start,
    posterior_precisions,
    sample_conditionals,
    sample_trials,
)
from ._query import check_conditional, check_support, flat_query

PRIOR_DRAWS = 10_000  # draws of a user's prior for its mean and covariance


class Trials(eqx.Module):
    """``n`` independent observations of one node, all for the same parameters:
    ``est.sample(key, {"x": gs.Trials(X)}, num_samples)`` draws from ``p(rest | x_1 ... x_n)``.

    **Arguments:**
    - `values`: ``(*batch, n, *node_shape)``: ``n`` trials per condition (the node's shape as
      in training, e.g. ``(n, 2)`` for a node of 2 scalars).
    - `prior`: the prior of the entries drawn (e.g. ``task.prior``, anything with ``.sample(key,
      num)`` returning ``(num, num_latent)`` in layout order), whose score the composition
      subtracts ``n - 1`` times. It is used through its mean and covariance (exact for Gaussian
      priors). ``None``: a Gaussian with the training data's mean and variance per entry,
      which is what the standardiser learned (correlations between entries are then ignored).
    - `correction`: how the single-trial scores are combined:
      ``gs.sampling.GaussCorrection(num_draws=100, handover=1.0)`` (default: each trial's
      posterior mean and covariance estimated once from that many single-trial draws; at
      noise levels above ``handover`` single-trial posterior sds the draws follow the Gaussian
      fit of the composed posterior),
      ``gs.sampling.JacobianCorrection()`` (the network's Jacobian per step; unstable with
      trained networks), ``gs.sampling.NoCorrection()`` (the naive sum; biased, for
      comparison).

    The model needs a method with a score at every time (gs.VESDE, gs.VPSDE, gs.EDM).
    Every trial's score error enters the composition: with a Simformer trained on 10,000
    Gaussian-linear simulations the mean was within 0.2 posterior sds for 5 trials and within
    0.75 for 20 and 100. Draws that run away are counted in ``samples.info["diverged"]``, with
    a warning. See the how-to "Many trials per parameter".
    """

    values: np.ndarray
    prior: object = None
    correction: AbstractCorrection = GaussCorrection()

    def __init__(self, values: ArrayLike | Sequence, prior: object = None,
                 correction: AbstractCorrection | None = None):
        try:
            self.values = np.asarray(values, dtype=np.float32)
        except (TypeError, ValueError) as error:
            raise TypeError(
                f"gs.Trials(values) takes an array of real numbers, got {type(values).__name__}."
            ) from error
        if not np.isfinite(self.values).all():
            raise ValueError("`values` of gs.Trials must be finite: every trial is observed.")
        if prior is not None and not callable(getattr(prior, "sample", None)):
            raise TypeError(
                f"`prior` must have .sample(key, num) (e.g. task.prior), got {prior!r}."
            )
        correction = GaussCorrection() if correction is None else correction
        if not isinstance(correction, AbstractCorrection):
            raise TypeError(
                "`correction` must be gs.sampling.GaussCorrection(), JacobianCorrection() or "
                f"NoCorrection(), got {correction!r}."
            )
        self.prior = prior
        self.correction = correction


def trial_queries(
    layout: NodeLayout, model: AbstractModel, condition: Mapping[str, NodeData | Trials]
) -> tuple[np.ndarray, np.ndarray, Trials]:
    """``(given, trial_mask, spec)``: the flat query of every trial, ``(n, *batch,
    num_scalars)`` (NaN: latent), the entries that hold a trial, and the `Trials` settings."""
    specs = {name: value for name, value in condition.items() if isinstance(value, Trials)}
    layout.check_names(specs, "condition")
    if layout.has_metadata:
        raise ValueError(
            "gs.Trials is not available with nodes with times (gs.Series) in the layout yet."
        )
    first = next(iter(specs.values()))
    if any(s.prior is not first.prior or s.correction != first.correction for s in specs.values()):
        raise ValueError("Every gs.Trials node of one query must share `prior` and `correction`.")
    moved = {}
    for name, spec in specs.items():
        shape = layout.shapes[layout.names.index(name)]
        values = spec.values
        if shape == (1,) and values.shape[-1:] != (1,):
            values = values[..., None]  # a one-scalar node's trials may come as (*batch, n)
        if values.ndim < len(shape) + 1 or values.shape[values.ndim - len(shape):] != shape:
            raise ValueError(
                f"`condition[{name!r}]` must be gs.Trials of shape (*batch, n, *{shape}), got "
                f"{spec.values.shape}."
            )
        moved[name] = np.moveaxis(values, values.ndim - len(shape) - 1, 0)  # (n, *batch, *shape)
    counts = {name: v.shape[0] for name, v in moved.items()}
    if len(set(counts.values())) > 1:
        raise ValueError(f"gs.Trials nodes must hold the same number of trials, got {counts}.")
    rest = {name: value for name, value in condition.items() if name not in specs}
    n = next(iter(counts.values()))
    given = np.stack([
        flat_query(layout, model, None, {**rest, **{k: v[j] for k, v in moved.items()}})[0]
        for j in range(n)
    ])
    return given, layout.node_mask(list(specs)), first


def gaussian_prior(
    key: Key, spec: Trials, standardiser: Standardiser, latent: np.ndarray
) -> GaussianPrior:
    """The prior of the ``latent`` entries as a Gaussian in the model's units: the user's
    prior's moments, or the training data's (zero mean, unit variance, no correlation)."""
    num_scalars = latent.shape[0]
    if spec.prior is None:
        return GaussianPrior(jnp.zeros(num_scalars), jnp.eye(num_scalars))
    draws = np.asarray(spec.prior.sample(key, PRIOR_DRAWS))
    if draws.ndim != 2 or draws.shape[1] != latent.sum():
        raise ValueError(
            f"`prior` of gs.Trials must draw the {int(latent.sum())} latent scalars of the query "
            f"in layout order, (num, {int(latent.sum())}); its .sample gave {draws.shape}."
        )
    full = np.zeros((PRIOR_DRAWS, num_scalars), np.float32)
    full[:, latent] = draws
    z = np.asarray(standardiser(jnp.asarray(full)))[:, latent]
    mean, covariance = np.zeros(num_scalars), np.eye(num_scalars)
    mean[latent] = z.mean(0)
    covariance[np.ix_(latent, latent)] = np.cov(z, rowvar=False).reshape(latent.sum(), -1)
    return GaussianPrior(jnp.asarray(mean, jnp.float32), jnp.asarray(covariance, jnp.float32))


def draw_trials(
    key: Key,
    estimator,
    condition: Mapping[str, NodeData | Trials],
    num_samples: int,
    sampler: AbstractSampler,
) -> tuple[Array, np.ndarray, dict]:
    """Draws ``(num_samples, *batch, num_scalars)`` in user units given the trials in
    ``condition``, the query's observed mask ``(*batch, num_scalars)`` and ``info``."""
    layout, standardiser = estimator.layout, estimator.standardiser
    given, trial_mask, spec = trial_queries(layout, estimator.model, condition)
    observed = ~np.isnan(given[0])
    if observed.all(axis=-1).any():
        raise ValueError("`condition` observes every node besides the trials: nothing to sample.")
    check_conditional(estimator.model, layout, observed)
    check_support(layout, standardiser, given, "condition")
    batch = observed.shape[:-1]
    flat_observed = observed.reshape(-1, layout.num_scalars)
    latent = ~flat_observed[0]
    if (flat_observed != flat_observed[0]).any():
        raise ValueError(
            "With gs.Trials every condition of a batch must observe the same entries."
        )
    n = given.shape[0]
    flat_given = given.reshape(n, -1, layout.num_scalars)
    trials = standardiser(jnp.asarray(np.where(flat_observed, flat_given, 0.0)))
    trials = jnp.swapaxes(trials, 0, 1)  # (batch, n, num_scalars)
    key_prior, key_single, key_draws = jr.split(key, 3)
    prior = gaussian_prior(key_prior, spec, standardiser, latent)
    mask = jnp.asarray(flat_observed)
    precisions = start = None
    correction = spec.correction
    if isinstance(correction, GaussCorrection):
        means, precisions = trial_moments(
            key_single, estimator.denoiser, trials, mask, prior, correction.num_draws, sampler
        )
        if correction.handover is not None:
            start = jax.vmap(gaussian_start, in_axes=(0, 0, None, None, None))(
                means, precisions, prior, jnp.asarray(latent), correction.handover
            )
    z = sample_trials(
        key_draws, estimator.denoiser, trials, jnp.asarray(trial_mask), prior, trials[:, 0], mask,
        num_samples, sampler, not isinstance(correction, NoCorrection), precisions, start,
    )
    # Composed scores carry every trial's error; where they add up a draw runs away. Such
    # draws are counted (beyond 10 prior sds in some entry) and reported, never hidden.
    prior_sd = jnp.sqrt(jnp.diag(prior.covariance))
    away = ~jnp.isfinite(z) | (jnp.abs(z - prior.mean) > 10 * prior_sd)
    diverged = np.asarray(jnp.any(away & latent, axis=-1).mean(axis=0)).reshape(batch)
    if diverged.any():
        warnings.warn(
            f"gs.Trials: {diverged.max():.1%} of the draws of some condition ran beyond 10 prior "
            f"sds (samples.info['diverged']). Composing {n} trial(s) adds up the single-trial "
            "model's errors: fewer trials, a better-trained model or more sampler steps help.",
            stacklevel=4,
        )
    samples = jnp.where(flat_observed, flat_given[0], standardiser.inverse(z))
    samples = samples.reshape((num_samples,) + batch + (layout.num_scalars,))
    return samples, observed, {"trials": n, "correction": spec.correction, "diverged": diverged}


def trial_moments(key, denoiser, trials, mask, prior, num_draws, sampler):
    """Each trial's posterior mean ``(batch, n, num_scalars)`` and precision ``(batch, n,
    num_scalars, num_scalars)`` from ``num_draws`` single-trial draws per trial, all trials of
    all conditions in one call."""
    batch, n, num_scalars = trials.shape
    repeated = jnp.repeat(mask, n, axis=0)  # (batch * n, num_scalars): condition b, trial j
    draws = sample_conditionals(
        key, denoiser, trials.reshape(batch * n, num_scalars), repeated, num_draws, sampler
    )
    precisions = jax.vmap(posterior_precisions, in_axes=(1, 0, None))(draws, ~repeated, prior)
    means = jnp.where(repeated, 0.0, draws.mean(axis=0))
    return means.reshape(batch, n, num_scalars), precisions.reshape(batch, n, num_scalars, num_scalars)
