"""i.i.d. trials composed from a single-trial denoiser (`TrialsDenoiser`), against the closed-form
posterior of a Gaussian linear model given n trials, with the exact Gaussian denoiser."""

import warnings

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from gaussian_oracle import GaussianDenoiser, continuous_sampler_law
from untrained import untrained_estimator

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


def trial_moments(xs):
    """Each trial's exact posterior mean ``(n, 4)`` and precision ``(n, 4, 4)`` on theta's
    block (identity elsewhere), as `GaussCorrection` estimates them from draws."""
    single = np.eye(4)
    single[:2, :2] = np.linalg.inv(tall_posterior(xs[:1])[1])
    means = np.zeros((len(xs), 4))
    means[:, :2] = [tall_posterior(x[None])[0] for x in xs]
    precisions = np.broadcast_to(single, (len(xs), 4, 4))
    return jnp.asarray(means, jnp.float32), jnp.asarray(precisions, jnp.float32)


def composed_draws(method, n, correction):
    """Draws given n trials with ``correction`` "gauss" (the exact single-trial posterior
    precision), "handover" (the same, and the Gaussian fit above one posterior sd of noise),
    "jacobian" or "none"."""
    xs = TRUE_THETA @ A.T + np.random.default_rng(n).multivariate_normal(np.zeros(2), R, n)
    trials = jnp.asarray(np.concatenate([np.zeros((n, 2)), xs], 1), jnp.float32)
    prior = GaussianPrior(jnp.zeros(4), jnp.asarray(JOINT, jnp.float32))
    precisions = start = None
    if correction in ("gauss", "handover"):
        means, precisions = trial_moments(xs)
    if correction == "handover":
        start = gs.sampling.gaussian_start(means, precisions, prior, ~OBSERVED, 1.0)
    denoiser = TrialsDenoiser(GaussianDenoiser(np.zeros(4), JOINT, method), trials, OBSERVED,
                              prior, precisions, corrected=correction != "none", start=start)
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
    "method, n, correction",
    # VE's small sigma_min makes the precisions largest: the case where cancellation would show.
    [(gs.VPSDE(), 1, "gauss"), (gs.VPSDE(), 5, "gauss"), (gs.VPSDE(), 20, "handover"),
     (gs.VPSDE(), 100, "gauss"), (gs.VESDE(), 100, "handover"), (gs.VPSDE(), 20, "jacobian"),
     (gs.VESDE(), 100, "jacobian")],
    ids=["vp-1", "vp-5", "handover-vp-20", "vp-100", "handover-ve-100", "jacobian-vp-20",
         "jacobian-ve-100"],
)
def test_corrected_composition_draws_the_posterior_given_n_trials(method, n, correction):
    mean_error, sd_ratio = errors(*composed_draws(method, n, correction))
    assert np.abs(mean_error).max() < MEAN_TOLERANCE, mean_error
    assert np.abs(sd_ratio - 1).max() < SD_TOLERANCE, sd_ratio


def test_the_gaussian_start_is_the_product_of_the_trials_posteriors_over_the_prior():
    """For Gaussian trials the fit is the closed-form posterior given all n trials, and the
    handover noise is ``handover`` times the widest single-trial posterior sd."""
    xs = TRUE_THETA @ A.T + np.random.default_rng(0).multivariate_normal(np.zeros(2), R, 7)
    prior = GaussianPrior(jnp.zeros(4), jnp.asarray(JOINT, jnp.float32))
    start = gs.sampling.gaussian_start(*trial_moments(xs), prior, ~OBSERVED, 2.0)
    mean, covariance = tall_posterior(xs)
    np.testing.assert_allclose(start.fit.mean[:2], mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(start.fit.covariance[:2, :2], covariance, rtol=1e-4, atol=1e-6)
    widest = np.linalg.eigvalsh(tall_posterior(xs[:1])[1]).max()
    np.testing.assert_allclose(start.noise, 2.0 * np.sqrt(widest), rtol=1e-5)


def test_the_naive_sum_of_scores_is_too_narrow():
    """At t > 0 the noised posteriors do not factorise: summing their scores shrinks the
    posterior (about 0.75 of its sd here), which the correction removes."""
    _, sd_ratio = errors(*composed_draws(gs.VPSDE(), 20, "none"))
    assert (sd_ratio < 0.85).all(), sd_ratio


def test_flow_matching_is_refused_by_name():
    with pytest.raises(ValueError, match="FlowMatching"):
        TrialsDenoiser(
            GaussianDenoiser(np.zeros(4), JOINT, gs.FlowMatching()), jnp.zeros((3, 4)), OBSERVED,
            GaussianPrior(jnp.zeros(4), jnp.eye(4)),
        )


TINY = dict(dim_value=4, dim_id=4, dim_condition=2, num_heads=2, head_dim=4, depth=1, widening=2,
            dim_time=8)


def _untrained(make_model):
    """An estimator of the untrained ``make_model(data)`` on the Gaussian linear task, built
    without `gs.fit` (whose train step would only add compile time)."""
    theta, x = gs.tasks.GaussianLinear(dim=2).simulate(jr.key(0), 64)
    data = {"theta": theta, "x": x}
    return untrained_estimator(make_model(data), data)


@pytest.fixture(scope="module")
def estimator():
    return _untrained(lambda data: gs.Simformer(4, key=jr.key(1), **TINY))


def test_a_query_with_trials_returns_the_shared_nodes_per_trial_set(estimator):
    trials = np.asarray(jr.normal(jr.key(3), (3, 5, 2)))  # 3 sets of 5 trials
    # An untrained model's errors add up over the trials: its draws run away, and say so.
    with pytest.warns(UserWarning, match="ran beyond 10 prior sds"):
        samples = estimator.sample(jr.key(4), {"x": gs.Trials(trials)}, 7, sampler=gs.SDE(steps=5))
    assert dict((k, v.shape) for k, v in samples.items()) == {"theta": (7, 3, 2)}
    assert samples.info["trials"] == 5
    assert samples.info["correction"] == gs.sampling.GaussCorrection()
    assert samples.info["diverged"].shape == (3,) and samples.info["diverged"].max() > 0
    with pytest.warns(UserWarning, match="ran beyond 10 prior sds"):
        one = estimator.sample(jr.key(4), {"x": gs.Trials(trials[0])}, 7, sampler=gs.SDE(steps=5))
    assert one["theta"].shape == (7, 2) and np.isfinite(one["theta"]).all()


def test_the_prior_is_read_in_the_model_units(estimator):
    from gensbi_eqx.api._trials import gaussian_prior

    prior = gs.tasks.Normal(np.array([0.1, -0.2]), np.array([[0.2, 0.05], [0.05, 0.1]]))
    latent = np.array([True, True, False, False])
    gaussian = gaussian_prior(jr.key(0), gs.Trials(np.zeros((2, 2)), prior=prior),
                              estimator.standardiser, latent)
    mean, std = np.asarray(estimator.standardiser.mean[:2]), np.asarray(estimator.standardiser.std[:2])
    expected_cov = np.array([[0.2, 0.05], [0.05, 0.1]]) / np.outer(std, std)
    # 10,000 prior draws: about 1% error on the moments.
    np.testing.assert_allclose(gaussian.mean[:2], (np.array([0.1, -0.2]) - mean) / std, atol=0.05)
    np.testing.assert_allclose(gaussian.covariance[:2, :2], expected_cov, rtol=0.05, atol=0.01)
    default = gaussian_prior(jr.key(0), gs.Trials(np.zeros((2, 2))), estimator.standardiser, latent)
    np.testing.assert_array_equal(default.covariance, np.eye(4))


@pytest.mark.parametrize(
    "condition, options, match",
    [
        ({"x": gs.Trials(np.zeros((4, 3)))}, {}, r"gs.Trials of shape \(\*batch, n, \*\(2,\)\)"),
        ({"x": gs.Trials(np.zeros((4, 2)))}, {"constraints": gs.Box({"theta": (0, 1)})},
         "`constraints` is not available with gs.Trials"),
        ({"x": gs.Trials(np.zeros((4, 2)))}, {"chunk_size": 2}, "`chunk_size` is not available"),
        ({"x": gs.Trials(np.zeros((4, 2)), prior=gs.tasks.GaussianLinear(dim=3).prior)}, {},
         r"must draw the 2 latent scalars .* gave \(10000, 3\)"),
        ({"x": gs.Trials(np.zeros((4, 2))), "theta": np.zeros(2)}, {},
         "observes every node besides the trials"),
    ],
)
def test_bad_trial_queries_raise(estimator, condition, options, match):
    with pytest.raises(ValueError, match=match):
        estimator.sample(jr.key(0), condition, 3, sampler=gs.SDE(steps=2), **options)


def test_trials_must_be_finite_and_priors_and_corrections_must_be_objects():
    with pytest.raises(ValueError, match="must be finite"):
        gs.Trials(np.array([[0.0, np.nan]]))
    with pytest.raises(TypeError, match="prior"):
        gs.Trials(np.zeros((2, 2)), prior="normal")
    with pytest.raises(TypeError, match="correction"):
        gs.Trials(np.zeros((2, 2)), correction="gauss")
    with pytest.raises(ValueError, match="num_draws"):
        gs.sampling.GaussCorrection(num_draws=1)
    with pytest.raises(ValueError, match="`handover` must be a positive number or None, got -1.0"):
        gs.sampling.GaussCorrection(handover=-1.0)


def test_posterior_precisions_invert_the_draws_covariance_below_the_prior():
    rng = np.random.default_rng(0)
    covariance = np.array([[0.3, 0.1], [0.1, 0.2]])
    draws = np.zeros((20_000, 4))
    draws[:, :2] = rng.multivariate_normal(np.zeros(2), covariance, 20_000)
    latent = jnp.array([True, True, False, False])
    precision = gs.sampling.posterior_precisions(
        jnp.asarray(draws, jnp.float32), latent, GaussianPrior(jnp.zeros(4), jnp.eye(4))
    )
    np.testing.assert_allclose(precision[:2, :2], np.linalg.inv(covariance), rtol=0.05)
    np.testing.assert_array_equal(precision[2:, 2:], np.eye(2))
    # Draws wider than the prior are clipped to it: a trial cannot lose information.
    wide = gs.sampling.posterior_precisions(
        jnp.asarray(3 * draws, jnp.float32), latent, GaussianPrior(jnp.zeros(4), jnp.eye(4))
    )
    assert np.linalg.eigvalsh(np.asarray(wide[:2, :2])).min() >= 1 - 1e-4


def test_log_prob_refuses_trials(estimator):
    # The type checker may answer first; either way the message names the Trials.
    with pytest.raises((TypeError, ValueError), match="Trials"):
        estimator.log_prob({"theta": np.zeros(2)}, {"x": gs.Trials(np.zeros((3, 2)))})


def test_a_conditional_model_composes_its_own_conditional():
    est = _untrained(lambda data: gs.Flux1.for_data(
        data, condition_on="x", key=jr.key(1), num_heads=2, axes_dim=(4,), depth=1,
        depth_single_blocks=1, mlp_ratio=2.0,
    ))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # an untrained model's draws run away
        # The naive sum: the same path through Flux1, without compiling the estimate too.
        trials = gs.Trials(np.zeros((2, 4, 2)), correction=gs.sampling.NoCorrection())
        samples = est.sample(jr.key(3), {"x": trials}, 5, sampler=gs.SDE(steps=3))
    assert samples["theta"].shape == (5, 2, 2) and np.isfinite(samples["theta"]).all()
