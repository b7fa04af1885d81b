"""i.i.d. trials composed from a single-trial denoiser (`TrialsDenoiser`), against the closed-form
posterior of a Gaussian linear model given n trials, with the exact Gaussian denoiser."""

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from gaussian_oracle import GaussianDenoiser, continuous_sampler_law

import gensbi_eqx as gs
from gensbi_eqx.sampling import GaussianPrior, TrialsDenoiser, sample_conditionals

# theta ~ N(0, P), x | theta ~ N(A theta, R): the joint over (theta, x), 2 + 2 scalars.
P = np.array([[1.0, 0.3], [0.3, 0.8]])
A = np.array([[1.0, 0.5], [-0.4, 1.2]])
R = np.array([[0.5, 0.1], [0.1, 0.4]])
JOINT = np.block([[P, P @ A.T], [A @ P, A @ P @ A.T + R]])
TRUE_THETA = np.array([0.7, -0.5])
OBSERVED = jnp.array([False, False, True, True])
NUM_DRAWS = 2000
SAMPLER = gs.SDE(steps=200)


def tall_posterior(xs):
    """Mean and covariance of theta given the rows of ``xs`` (n, 2)."""
    precision = np.linalg.inv(P) + len(xs) * A.T @ np.linalg.inv(R) @ A
    covariance = np.linalg.inv(precision)
    return covariance @ A.T @ np.linalg.inv(R) @ xs.sum(0), covariance


def composed_draws(method, n, corrected):
    xs = TRUE_THETA @ A.T + np.random.default_rng(n).multivariate_normal(np.zeros(2), R, n)
    trials = jnp.asarray(np.concatenate([np.zeros((n, 2)), xs], 1), jnp.float32)
    prior = GaussianPrior(jnp.zeros(4), jnp.asarray(JOINT, jnp.float32))
    denoiser = TrialsDenoiser(GaussianDenoiser(np.zeros(4), JOINT, method), trials, OBSERVED,
                              prior, corrected)
    z = sample_conditionals(jr.key(n), denoiser, jnp.zeros((1, 4)), OBSERVED[None], NUM_DRAWS,
                            SAMPLER)
    mean, covariance = continuous_sampler_law(method, SAMPLER, *tall_posterior(xs))
    return np.asarray(z[:, 0, :2]), mean, covariance


def errors(draws, mean, covariance):
    """The mean's error in posterior sds, and the sds' ratio to the exact ones, per entry."""
    sd = np.sqrt(np.diag(covariance))
    return (draws.mean(0) - mean) / sd, draws.std(0, ddof=1) / sd


# Standard errors of NUM_DRAWS independent draws, times 4, plus 0.02 for the 200-step grid.
MEAN_TOLERANCE = 4 / np.sqrt(NUM_DRAWS) + 0.02
SD_TOLERANCE = 4 / np.sqrt(2 * NUM_DRAWS) + 0.02


@pytest.mark.parametrize(
    "method, n",
    # VE's small sigma_min makes the precisions largest: the case where cancellation would show.
    [(gs.VPSDE(), 1), (gs.VPSDE(), 5), (gs.VPSDE(), 20), (gs.VPSDE(), 100), (gs.VESDE(), 100)],
    ids=["vp-1", "vp-5", "vp-20", "vp-100", "ve-100"],
)
def test_corrected_composition_draws_the_posterior_given_n_trials(method, n):
    mean_error, sd_ratio = errors(*composed_draws(method, n, corrected=True))
    assert np.abs(mean_error).max() < MEAN_TOLERANCE, mean_error
    assert np.abs(sd_ratio - 1).max() < SD_TOLERANCE, sd_ratio


def test_the_naive_sum_of_scores_is_too_narrow():
    """At t > 0 the noised posteriors do not factorise: summing their scores shrinks the
    posterior (about 0.75 of its sd here), which the correction removes."""
    _, sd_ratio = errors(*composed_draws(gs.VPSDE(), 20, corrected=False))
    assert (sd_ratio < 0.85).all(), sd_ratio


def test_flow_matching_is_refused_by_name():
    with pytest.raises(ValueError, match="FlowMatching"):
        TrialsDenoiser(
            GaussianDenoiser(np.zeros(4), JOINT, gs.FlowMatching()), jnp.zeros((3, 4)), OBSERVED,
            GaussianPrior(jnp.zeros(4), jnp.eye(4)),
        )
