"""Diagnostics against analytic answers.

C2ST: in 1-D, the best classifier of N(0, 1) against N(1, 1) thresholds at 0.5 and is right with
probability Phi(0.5) = 0.6915; of two equal distributions, 0.5. The held-out accuracy over
2n points has standard error sqrt(p (1 - p) / 2n), about 0.011 for n = 1000; tolerances are 4
standard errors (0.045).

SBC, TARP and HPD coverage run on Gaussian linear (dim 2), whose posterior N(0.5 x, 0.05 I) is
exact, through duck-typed fake estimators: a calibrated one and an overconfident one (posterior
standard deviation halved).
"""

import math
import sys

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
import scipy.stats

from gensbi_eqx import diagnostics as dg
from gensbi_eqx.tasks import GaussianLinear


TASK = GaussianLinear(dim=2)
NUM_SIMULATIONS = 300  # N truths
NUM_SAMPLES = 300  # S samples per truth
BATCH_SIZE = 128  # does not divide N: the last chunk is padded


@jax.jit
def _posterior_draws(key, x, scale):
    """``(NUM_SAMPLES, B, 2)`` draws of ``N(mean(x), scale^2 cov)``, the exact posterior scaled."""
    posterior = jax.vmap(TASK.true_posterior)(x)
    eps = jr.normal(key, (NUM_SAMPLES,) + x.shape)
    return posterior.loc + scale * jnp.einsum("bij,sbj->sbi", posterior.cholesky, eps)


class FakePosterior:
    """Answers ``p(theta | x)`` exactly (``scale=1``) or with its spread scaled."""

    def __init__(self, scale: float = 1.0):
        self.scale = scale
        self.batch_sizes = []

    def sample(self, key, condition, num_samples):
        assert set(condition) == {"x"} and num_samples == NUM_SAMPLES
        x = jnp.asarray(condition["x"])
        if x.ndim == 1:  # one observation, no batch
            return {"theta": _posterior_draws(key, x[None], self.scale)[:, 0]}
        self.batch_sizes.append(x.shape[0])
        return {"theta": _posterior_draws(key, x, self.scale)}


class FakeLikelihood:
    """Answers ``p(x | theta)`` exactly, with the task's own simulator."""

    def sample(self, key, condition, num_samples):
        assert set(condition) == {"theta"}
        theta = jnp.asarray(condition["theta"])
        repeated = jnp.broadcast_to(theta, (num_samples,) + theta.shape).reshape(-1, 2)
        return {"x": TASK.simulator(key, repeated).reshape((num_samples,) + theta.shape)}


@pytest.fixture(scope="module")
def truths():
    theta, x = TASK.simulate(jr.key(0), NUM_SIMULATIONS)
    return {"theta": np.asarray(theta), "x": np.asarray(x)}


@pytest.fixture(scope="module")
def draws(truths):
    """Posterior draws for every truth: calibrated and overconfident."""
    return {
        name: dg.conditional_samples(
            jr.key(1), FakePosterior(scale), truths, num_samples=NUM_SAMPLES, batch_size=BATCH_SIZE
        )
        for name, scale in (("calibrated", 1.0), ("overconfident", 0.5))
    }


# ---------------------------------------------------------------- C2ST

N_C2ST = 1000
C2ST_TOLERANCE = 4 * math.sqrt(0.25 / (2 * N_C2ST))
BAYES_1D = float(scipy.stats.norm.cdf(0.5))


@pytest.fixture(scope="module")
def gaussian_pairs():
    rng = np.random.default_rng(0)
    p = rng.normal(size=(N_C2ST, 1))
    same, shifted = rng.normal(size=(N_C2ST, 1)), rng.normal(size=(N_C2ST, 1)) + 1
    return {"same": (p, same), "shifted": (p, shifted)}


def test_c2st_sklearn_matches_analytic_accuracy(gaussian_pairs):
    pytest.importorskip("sklearn")
    assert abs(dg.c2st(*gaussian_pairs["same"]) - 0.5) < C2ST_TOLERANCE
    assert abs(dg.c2st(*gaussian_pairs["shifted"]) - BAYES_1D) < C2ST_TOLERANCE


def test_c2st_jax_matches_analytic_accuracy(gaussian_pairs):
    same = dg.c2st_jax(*gaussian_pairs["same"])
    shifted = dg.c2st_jax(*gaussian_pairs["shifted"])
    full_batch = dg.c2st_jax(*gaussian_pairs["shifted"], batch_size=None, key=jr.key(3))
    assert abs(same - 0.5) < C2ST_TOLERANCE
    assert abs(shifted - BAYES_1D) < C2ST_TOLERANCE
    assert abs(full_batch - BAYES_1D) < C2ST_TOLERANCE
    # Same key, same answer.
    assert dg.c2st_jax(*gaussian_pairs["shifted"]) == shifted


def test_c2st_jax_agrees_with_sklearn(gaussian_pairs):
    # Checked where there is something to learn: on equal distributions both are 0.5 plus the
    # noise of two different fold splits (standard error 0.011 each), not a shared value.
    pytest.importorskip("sklearn")
    rng = np.random.default_rng(1)
    # 2-D, shift 1 in both coordinates: Bayes accuracy Phi(sqrt(2) / 2) = 0.760.
    pair_2d = (rng.normal(size=(N_C2ST, 2)), rng.normal(size=(N_C2ST, 2)) + 1)
    for p, q in (gaussian_pairs["shifted"], pair_2d):
        assert abs(dg.c2st_jax(p, q) - dg.c2st(p, q)) < 0.02


def test_c2st_without_sklearn_points_to_the_extra(monkeypatch, gaussian_pairs):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.model_selection", None)
    with pytest.raises(ImportError, match=r"gensbi_eqx\[c2st\].*c2st_jax"):
        dg.c2st(*gaussian_pairs["same"])


_GOOD = np.random.default_rng(0).normal(size=(200, 2))


@pytest.mark.parametrize("function", [dg.c2st, dg.c2st_jax])
@pytest.mark.parametrize(
    "p, q, match",
    [
        (_GOOD[:99], _GOOD, r"`samples_p`.*100.*\(99, 2\)"),
        (_GOOD, _GOOD[:99], r"`samples_q`.*100"),
        (_GOOD, np.ones((200, 3)), r"`samples_q`.*\(n, 2\).*\(200, 3\)"),
        (_GOOD, _GOOD[:150], r"`samples_q` must hold as many samples as `samples_p` \(200\).*150"),
        (_GOOD[:, 0], _GOOD[:, 1], r"`samples_p`.*\(n, d\).*\(200,\)"),
        (_GOOD, np.full((200, 2), np.nan), r"`samples_q`.*finite"),
        (np.ones((200, 2)), _GOOD, r"`samples_p`.*zero standard deviation"),
    ],
)
def test_c2st_refuses_bad_input(function, p, q, match):
    with pytest.raises(ValueError, match=match):
        function(p, q)


# ---------------------------------------------------------------- SBC

# Calibrated: each p-value is uniform, so below 1e-3 with probability 1e-3 (fixed keys make it
# deterministic). Overconfident: about 40% of ranks fall in the outer tenth instead of 10%, a
# chi-square of hundreds on 19 degrees of freedom.
P_CALIBRATED = 1e-3
P_OVERCONFIDENT = 1e-10


def test_sbc_ranks_count_samples_below():
    samples = np.array([[[0.0, 5.0]], [[1.0, 6.0]], [[2.0, 7.0]]])  # (S=3, N=1, d=2)
    result = dg.sbc_from_samples(samples, np.array([[1.5, 4.0]]), labels=["a", "b"])
    np.testing.assert_array_equal(result.ranks, [[2, 0]])
    assert result.num_samples == 3 and result.labels == ("a", "b")


def test_sbc_posterior_calibrated_and_overconfident(truths):
    calibrated = FakePosterior()
    result = dg.sbc(
        jr.key(1), calibrated, truths, num_samples=NUM_SAMPLES, batch_size=BATCH_SIZE
    )
    assert result.ranks.shape == (NUM_SIMULATIONS, 2) and result.num_samples == NUM_SAMPLES
    assert result.ranks.min() >= 0 and result.ranks.max() <= NUM_SAMPLES
    assert result.labels == ("theta[0]", "theta[1]") and result.p_values.shape == (2,)
    assert np.all(result.p_values > P_CALIBRATED), result.summary()
    assert "theta[1]" in result.summary()
    # Three chunks of one shape; the last one padded.
    assert calibrated.batch_sizes == [BATCH_SIZE] * 3
    overconfident = dg.sbc(
        jr.key(1),
        FakePosterior(0.5),
        truths,
        infer="theta",
        num_samples=NUM_SAMPLES,
        batch_size=BATCH_SIZE,
    )
    assert np.all(overconfident.p_values < P_OVERCONFIDENT), overconfident.summary()


def test_sbc_likelihood_conditional(truths):
    result = dg.sbc(jr.key(2), FakeLikelihood(), truths, infer=("x",), num_samples=NUM_SAMPLES)
    assert result.labels == ("x[0]", "x[1]")
    assert np.all(result.p_values > P_CALIBRATED), result.summary()


def test_conditional_samples_line_up_with_truths(truths):
    class Echo:
        """Returns the condition as every sample: the draws must land on their own rows."""

        def sample(self, key, condition, num_samples):
            x = np.asarray(condition["x"])
            return {"theta": np.broadcast_to(x, (num_samples,) + x.shape)}

    draws = dg.conditional_samples(jr.key(0), Echo(), truths, num_samples=3, batch_size=BATCH_SIZE)
    assert draws.samples.shape == (3, NUM_SIMULATIONS, 2)
    np.testing.assert_array_equal(draws.samples[2], truths["x"])
    np.testing.assert_array_equal(draws.truths, truths["theta"])


def test_sbc_result_from_ranks_checks_its_input():
    ranks = np.random.default_rng(0).integers(0, 51, size=(100, 2))
    result = dg.SBCResult.from_ranks(ranks, 50, labels=["a", "b"], bins=5)
    assert result.bins == 5 and result.labels == ("a", "b")
    np.testing.assert_allclose(result.normalised_ranks, ranks / 50)
    with pytest.raises(ValueError, match=r"`ranks`.*\[0, 40\]"):
        dg.SBCResult.from_ranks(ranks, 40)
    with pytest.raises(ValueError, match="`labels`.*2 names"):
        dg.SBCResult.from_ranks(ranks, 50, labels=["a"])


# ---------------------------------------------------------------- TARP and HPD coverage

# Calibrated: the coverage curve is the empirical CDF of N uniform credibilities (steps of
# 1 / S), so its distance to the diagonal stays below the 1% Kolmogorov-Smirnov bound
# 1.63 / sqrt(N) = 0.094, plus 1 / S. Overconfident regions hold the truth far less often.
KS_BOUND = 1.63 / math.sqrt(NUM_SIMULATIONS) + 1 / NUM_SAMPLES


def _log_prob(x):
    """Exact posterior log-density: values (m, N, 2) -> (m, N), under observation n for [:, n]."""

    def one(x_o, values):
        return TASK.true_posterior(x_o).log_prob(values)

    batched = jax.jit(jax.vmap(one, in_axes=(0, 1), out_axes=1))
    return lambda values: batched(x, values)


def _check_calibrated(result):
    assert result.levels.shape == result.coverage.shape == (101,)
    assert result.credibility.shape == (NUM_SIMULATIONS,)
    assert result.max_deviation < KS_BOUND, result.summary()
    assert result.p_value > 0.01, result.summary()


def _scaled_gaussian_hpd_coverage(levels, scale):
    """Expected HPD coverage curve of N(m, scale^2 sigma^2 I) in 2-D for truths from
    N(m, sigma^2 I), with NUM_SAMPLES samples.

    With R = |theta - m|^2 / sigma^2 ~ chi2_2, i.e. R / 2 = -log U for U uniform, the share of
    samples denser than the truth is c = P(chi2_2 < R / scale^2) = 1 - U^(1 / scale^2); the
    estimated credibility is Binomial(S, c) / S, below alpha when the count is below alpha S.
    (For S -> infinity this is 1 - (1 - alpha)^(scale^2).)
    """
    u = (np.arange(4000) + 0.5) / 4000  # midpoint rule over U
    share = 1 - u ** (1 / scale**2)
    below = np.ceil(levels * NUM_SAMPLES) - 1
    return np.array([scipy.stats.binom.cdf(k, NUM_SAMPLES, share).mean() for k in below])


def test_tarp_calibrated_and_overconfident(draws):
    calibrated = dg.tarp_from_samples(
        jr.key(5), draws["calibrated"].samples, draws["calibrated"].truths
    )
    assert calibrated.method == "tarp"
    _check_calibrated(calibrated)
    over = draws["overconfident"]
    result = dg.tarp_from_samples(jr.key(5), over.samples, over.truths)
    # Balls around random references: too-narrow posteriors miss the truth at high levels far
    # beyond what sampling noise allows.
    assert result.coverage[90] < 0.9 - KS_BOUND and result.p_value < 1e-6, result.summary()
    # One fixed reference (the centre of the prior) for every simulation works as well.
    samples, targets = draws["calibrated"].samples, draws["calibrated"].truths
    _check_calibrated(dg.tarp_from_samples(jr.key(5), samples, targets, references=np.zeros(2)))


def test_hpd_coverage_kde_and_log_prob(draws, truths):
    log_prob = _log_prob(jnp.asarray(truths["x"]))
    for name, scale in (("calibrated", 1.0), ("overconfident", 0.5)):
        samples, targets = draws[name].samples, draws[name].truths
        kde = dg.hpd_coverage_from_samples(samples, targets)
        exact = dg.hpd_coverage_from_samples(samples, targets, log_prob=log_prob)
        assert (kde.method, exact.method) == ("hpd (kde)", "hpd (log_prob)")
        for result in (kde, exact):
            if scale == 1.0:
                _check_calibrated(result)
                continue
            expected = _scaled_gaussian_hpd_coverage(result.levels, scale)
            assert np.max(np.abs(result.coverage - expected)) < KS_BOUND, result.summary()
            assert result.p_value < 1e-6


def test_estimator_level_matches_array_level(draws, truths):
    # The short name on an estimator is its _from_samples twin on the same draws (key 1, as the
    # `draws` fixture).
    calibrated = draws["calibrated"]
    by_estimator = dg.hpd_coverage(
        jr.key(1), FakePosterior(), truths, num_samples=NUM_SAMPLES, batch_size=BATCH_SIZE
    )
    by_arrays = dg.hpd_coverage_from_samples(calibrated.samples, calibrated.truths)
    np.testing.assert_array_equal(by_estimator.credibility, by_arrays.credibility)
    sbc_by_estimator = dg.sbc(
        jr.key(1), FakePosterior(), truths, num_samples=NUM_SAMPLES, batch_size=BATCH_SIZE
    )
    sbc_by_arrays = dg.sbc_from_samples(
        calibrated.samples, calibrated.truths, labels=calibrated.labels
    )
    np.testing.assert_array_equal(sbc_by_estimator.ranks, sbc_by_arrays.ranks)
    np.testing.assert_array_equal(sbc_by_estimator.p_values, sbc_by_arrays.p_values)
    assert sbc_by_estimator.labels == sbc_by_arrays.labels
    tarp_result = dg.tarp(
        jr.key(7), FakePosterior(), truths, num_samples=NUM_SAMPLES, batch_size=BATCH_SIZE
    )
    _check_calibrated(tarp_result)
    assert "tarp" in tarp_result.summary()


# ---------------------------------------------------------------- posterior predictive


def test_posterior_predictive_matches_analytic(truths):
    # Posterior predictive of x given x_o: N(0.5 x_o, (0.05 + 0.1) I).
    x_o = truths["x"][0]
    result = dg.posterior_predictive(
        jr.key(8), FakePosterior(), TASK.simulator, {"x": x_o}, num_samples=NUM_SAMPLES
    )
    assert result.samples.shape == (NUM_SAMPLES, 2) and result.parameters.shape == (NUM_SAMPLES, 2)
    assert result.labels == ("x[0]", "x[1]") and result.num_dropped == 0
    sd = math.sqrt(0.15)
    se = sd / math.sqrt(NUM_SAMPLES)
    assert np.all(np.abs(result.samples.mean(0) - 0.5 * x_o) < 5 * se)
    expected_z = 0.5 * x_o / sd
    # z = (x_o - mean) / sd estimated: standard error sqrt((1 + z^2 / 2) / S) (mean and sd).
    z_se = np.sqrt((1 + expected_z**2 / 2) / NUM_SAMPLES)
    assert np.all(np.abs(result.z_score - expected_z) < 5 * z_se)
    # The quantile of x_o is a mean of S indicators: standard error at most 0.5 / sqrt(S).
    quantile_se = 0.5 / math.sqrt(NUM_SAMPLES)
    assert np.all(np.abs(result.quantile - scipy.stats.norm.cdf(expected_z)) < 5 * quantile_se)
    assert "x[1]" in result.summary()


def test_posterior_predictive_refuses_a_mismatched_simulator(truths):
    with pytest.raises(ValueError, match=r"`simulator`.*\(300, 2\).*\(300, 3\)"):
        dg.posterior_predictive(
            jr.key(8),
            FakePosterior(),
            lambda key, theta: jnp.zeros((theta.shape[0], 3)),
            {"x": truths["x"][0]},
            num_samples=NUM_SAMPLES,
        )


# ---------------------------------------------------------------- bad input


def test_array_diagnostics_refuse_bad_input(getkey):
    samples, truths = np.zeros((10, 4, 2)), np.zeros((4, 2))
    functions = (
        dg.sbc_from_samples,
        lambda s, t: dg.tarp_from_samples(getkey(), s, t),
        dg.hpd_coverage_from_samples,
    )
    for function in functions:
        with pytest.raises(ValueError, match=r"`truths`.*\(4, 2\).*\(4, 3\)"):
            function(samples, np.zeros((4, 3)))
        with pytest.raises(ValueError, match=r"`samples`.*\(num_samples, N, d\).*\(10, 2\)"):
            function(np.zeros((10, 2)), truths)
        bad = samples.copy()
        bad[3, 1, 0] = np.inf
        with pytest.raises(ValueError, match=r"`samples`.*\(10, 4, 2\).*finite.*1 NaN or inf"):
            function(bad, truths)
        with pytest.raises(ValueError, match="`truths`.*finite"):
            function(samples, np.full((4, 2), np.nan))
    rng = np.random.default_rng(0)
    samples, truths = rng.normal(size=(10, 4, 2)), rng.normal(size=(4, 2))
    with pytest.raises(ValueError, match=r"`references`.*\(4, 2\).*\(3, 2\)"):
        dg.tarp_from_samples(getkey(), samples, truths, references=np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"`truths`.*vary"):
        dg.tarp_from_samples(getkey(), samples, np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"`log_prob`.*\(11, 4\).*\(11,\)"):
        dg.hpd_coverage_from_samples(samples, truths, log_prob=lambda v: jnp.zeros(v.shape[0]))
    with pytest.raises(ValueError, match=r"`num_levels`"):
        dg.hpd_coverage_from_samples(samples, truths, num_levels=1)


def test_estimator_diagnostics_refuse_bad_input(truths):
    estimator = FakePosterior()
    cases = [
        ({"infer": "phi"}, truths, r"`infer`.*'phi'.*\['theta', 'x'\]"),
        ({"infer": ("theta", "x")}, truths, r"`infer`.*every node"),
        ({}, {**truths, "x": truths["x"][:10]}, r"same N.*'theta': 300, 'x': 10"),
        ({}, {**truths, "x": np.full((300, 2), np.nan)}, r"`truths\['x'\]`.*finite"),
        ({"num_samples": 0}, truths, r"`num_samples`.*>= 1.*0"),
    ]
    for kwargs, given, match in cases:
        with pytest.raises(ValueError, match=match):
            dg.sbc(jr.key(0), estimator, given, **kwargs)

    class Wrong:
        def sample(self, key, condition, num_samples):
            return {"theta": np.zeros((num_samples, 2))}

    with pytest.raises(ValueError, match=r"`estimator.sample` returned 'theta' of shape \(5, 2\)"):
        dg.tarp(jr.key(0), Wrong(), truths, num_samples=5)
