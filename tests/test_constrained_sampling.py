"""Constrained draws by rejection and by sequential Monte Carlo, checked against the exact
constrained law of a Gaussian joint, and the choice between them.

The joint is ``theta ~ N(0, 1)``, ``x1 = theta + N(0, 0.5^2)``, ``x2 = theta + N(0, 0.5^2)``.
Boxes bound the data entry ``x1``, with nothing observed or with ``x2`` observed: the case
where guidance alone pushes ``theta`` through the denoiser's cross-Jacobian. Restricting one
entry ``k`` of a Gaussian ``N(m, C)`` to an interval gives, in closed form, ``E = m + C[:, k]
(mu_k - m_k) / C_kk`` and ``Cov = C + C[:, k] C[k, :] (v_k / C_kk - 1) / C_kk`` with ``mu_k,
v_k`` the moments of the truncated normal of ``x_k``.

Tolerances: 5 standard errors of a mean of ``ess * N`` independent draws (SMC's draws are
resampled particles, so ``ess`` of them are worth independent ones) plus the 100-step
Euler-Maruyama allowance derived in test_guidance.py (1e-2 in the mean: SMC corrects the
guided proposal to the *unguided* Euler-Maruyama chain, whose own error remains).
"""

import diffrax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import gensbi_eqx as gs
from gensbi_eqx.api._strategies import rejection_draws, smc_draws
from gensbi_eqx.guidance import SlabGuidance, TweedieVariance, UnitVariance
from gensbi_eqx.sampling import sample_conditionals
from gensbi_eqx.samplers._smc import effective_sample_size, systematic_resample

from gaussian_oracle import GaussianDenoiser, assert_gaussian_moments, gaussian_conditional

MEAN = np.zeros(3)
COV = np.array([[1.0, 1.0, 1.0], [1.0, 1.25, 1.0], [1.0, 1.0, 1.25]])
MASKS = np.array([[False, False, False], [False, False, True]])  # nothing; x2 observed
Y_COND = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.5]], dtype=np.float32)
N = 4_000
STEPS = 100
ALLOWANCE = 1e-2  # Euler-Maruyama at 100 steps plus the VE start (test_guidance.py)
# x1 in [2.4, 2.8]: 2.1-2.5 marginal sds out (probability 0.011) and 1.2-2.0 conditional sds
# out given x2 = 1.5 (probability 0.09); the bulk box [0, 1] holds 0.31 and 0.49.
IMPROBABLE, BULK = (2.4, 2.8), (0.0, 1.0)


def slab(method, bounds, variance=TweedieVariance()):
    """A box on x1 as the rows of a `SlabGuidance` of the exact denoiser."""
    lo, up = bounds
    return SlabGuidance(
        GaussianDenoiser(MEAN, COV, method), jnp.array([[0.0, 1.0, 0.0]]), jnp.array([lo]),
        jnp.array([up]), jnp.asarray(1.0), variance, jnp.asarray(1e4),
    )


def exact(row, bounds):
    """Probability of the box and mean, covariance of the latent entries restricted to it."""
    m, c = gaussian_conditional(MEAN, COV, MASKS[row], Y_COND[row])
    k = 1  # x1 is latent in both rows and comes second among the latent entries
    sd = np.sqrt(c[k, k])
    a, b = ((np.asarray(bounds) - m[k]) / sd)
    truncated = stats.truncnorm(a, b, loc=m[k], scale=sd)
    mean = m + c[:, k] * (truncated.mean() - m[k]) / c[k, k]
    cov = c + np.outer(c[:, k], c[k, :]) * (truncated.var() / c[k, k] - 1) / c[k, k]
    return stats.norm.cdf(b) - stats.norm.cdf(a), mean, cov


def check_law(draws, row, bounds, effective, label):
    latent = ~MASKS[row]
    samples = np.asarray(draws[:, row])
    assert np.all(samples[:, MASKS[row]] == Y_COND[row, MASKS[row]]), label
    x1 = samples[:, 1]
    assert np.all((x1 >= bounds[0]) & (x1 <= bounds[1])), f"{label}: draws outside the box"
    _, mean, cov = exact(row, bounds)
    # Thinned to the effective sample size, so that the standard errors are honest.
    step = max(1, round(samples.shape[0] / effective))
    assert_gaussian_moments(samples[::step][:, latent], mean, cov, ALLOWANCE, 0.05, label)


@pytest.fixture(scope="module")
def smc_run():
    guided = slab(gs.VESDE(), IMPROBABLE, TweedieVariance())
    smc = gs.SMC(steps=STEPS, oversample=1)
    return smc_draws(jr.key(0), smc, guided, jnp.asarray(Y_COND), jnp.asarray(MASKS), N, None)


def test_smc_draws_the_constrained_law_of_an_improbable_box(smc_run):
    """All draws inside, with the exact truncated moments of every latent entry, whether the
    other data entry is observed or not; and the effective sample size is reported."""
    draws, info = smc_run
    assert draws.shape == (N, 2, 3) and info["strategy"] == "smc"
    assert info["ess"].shape == (2,) and np.all(info["ess"] > 0.2), info["ess"]
    for row in range(2):
        check_law(draws, row, IMPROBABLE, info["ess"][row] * N, f"smc, row {row}")


def test_smc_corrects_a_biased_twist():
    """With the unit-variance twist (which ignores how x1 and theta correlate) guided
    diffusion alone is biased; SMC over the same twist still draws the exact law."""
    guided = slab(gs.VESDE(), IMPROBABLE, UnitVariance())
    y_cond, mask = jnp.asarray(Y_COND), jnp.asarray(MASKS)
    draws, info = smc_draws(jr.key(5), gs.SMC(steps=STEPS, oversample=1), guided, y_cond, mask,
                            N, None)
    for row in range(2):
        check_law(draws, row, IMPROBABLE, info["ess"][row] * N, f"smc, unit twist, row {row}")
    alone = np.asarray(sample_conditionals(jr.key(6), guided, y_cond, mask, N, gs.SDE(steps=STEPS)))
    _, mean, _ = exact(0, IMPROBABLE)
    assert abs(alone[:, 0, 0].mean() - mean[0]) > 0.1, "guidance alone was expected to be off"


def test_oversampled_smc_draws_are_distinct():
    """Four particles per draw (the default): the draws are nearly all distinct, still inside
    and with the exact law, and the ESS is reported per draw (so it can exceed 1)."""
    guided = slab(gs.VESDE(), IMPROBABLE, UnitVariance())
    y_cond, mask = jnp.asarray(Y_COND), jnp.asarray(MASKS)
    draws, info = smc_draws(jr.key(7), gs.SMC(steps=STEPS), guided, y_cond, mask, 1_000, None)
    assert draws.shape == (1_000, 2, 3) and np.all(info["ess"] > 1.0), info["ess"]
    for row in range(2):
        distinct = len(np.unique(np.asarray(draws[:, row, 0]))) / 1_000
        assert distinct > 0.9, (row, distinct)
        check_law(draws, row, IMPROBABLE, 1_000, f"smc x4, row {row}")


def test_smc_estimates_the_probability_of_the_box(smc_run):
    """``exp(log_probability)`` is an unbiased estimate of P(box | condition) under the
    sampler's law; the Euler-Maruyama law's tails differ by a few percent from the exact ones
    this far out, so 15% relative."""
    _, info = smc_run
    for row in range(2):
        probability, _, _ = exact(row, IMPROBABLE)
        ratio = np.exp(info["log_probability"][row]) / probability
        assert abs(ratio - 1) < 0.15, (row, ratio)


def test_rejection_is_exact_in_the_bulk_and_reports_its_acceptance():
    """A box holding a third of the mass: rejection runs, every draw is inside with the exact
    moments (N independent draws), and the acceptance is P(box) within 5 standard errors."""
    guided = slab(gs.VESDE(), BULK)
    options = {"chunk_size": None, "parallel": None, "metadata": None}
    draws, info = rejection_draws(
        jr.key(1), gs.Rejection(gs.SDE(steps=STEPS)), guided, jnp.asarray(Y_COND),
        jnp.asarray(MASKS), N, options,
    )
    assert info["strategy"] == "rejection" and info["proposals"] % N == 0
    for row in range(2):
        check_law(np.asarray(draws), row, BULK, N, f"rejection, row {row}")
        probability, _, _ = exact(row, BULK)
        se = np.sqrt(probability * (1 - probability) / info["proposals"])
        assert abs(info["acceptance"][row] - probability) < 5 * se + ALLOWANCE, info


def test_improbable_box_hands_over_to_smc_with_the_pilot_acceptance():
    guided = slab(gs.VESDE(), IMPROBABLE)
    options = {"chunk_size": None, "parallel": None, "metadata": None}
    strategy = gs.Rejection(gs.SDE(steps=STEPS), fallback=gs.SMC(steps=STEPS))
    draws, info = rejection_draws(
        jr.key(2), strategy, guided, jnp.asarray(Y_COND), jnp.asarray(MASKS), 500, options
    )
    assert info["strategy"] == "smc" and info["proposals"] == 500
    assert info["acceptance"][0] < 0.1 and "ess" in info
    assert np.all((np.asarray(draws)[:, :, 1] >= IMPROBABLE[0]))


def test_rejection_without_fallback_says_how_far_it_got():
    guided = slab(gs.VESDE(), (3.5, 3.6))  # 1e-4 of the mass
    options = {"chunk_size": None, "parallel": None, "metadata": None}
    strategy = gs.Rejection(gs.SDE(steps=10), max_rounds=2, fallback=None)
    with pytest.raises(RuntimeError, match="after 2 rounds.*acceptance"):
        rejection_draws(jr.key(3), strategy, guided, jnp.asarray(Y_COND), jnp.asarray(MASKS),
                        100, options)


def test_fallback_that_cannot_drive_the_method_is_a_clear_error():
    """Flow matching has no reverse SDE: an improbable box cannot fall back to SMC."""
    guided = slab(gs.FlowMatching(), (3.5, 3.6))
    options = {"chunk_size": None, "parallel": None, "metadata": None}
    strategy = gs.Rejection(gs.ODE(diffrax.Euler(), steps=4))
    with pytest.raises(ValueError, match="improbable.*gs.SMC cannot run"):
        rejection_draws(jr.key(4), strategy, guided, jnp.asarray(Y_COND), jnp.asarray(MASKS),
                        100, options)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: gs.SMC(steps=0), "`steps`"),
        (lambda: gs.SMC(resample_below=1.5), "`resample_below`"),
        (lambda: gs.SMC(variance="unit"), "variance"),  # the type checker may answer
        (lambda: gs.Rejection(min_acceptance=-0.1), "`min_acceptance`"),
        (lambda: gs.Rejection(max_rounds=0), "`max_rounds`"),
        (lambda: gs.Rejection(sampler=gs.SMC()), "sampler"),  # the type checker may answer
        (lambda: gs.Rejection(fallback=gs.SDE()), "fallback"),
    ],
)
def test_bad_strategy_settings_raise(make, match):
    with pytest.raises((TypeError, ValueError), match=match):
        make()


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(-30.0, 0.0), min_size=1, max_size=40),
    st.integers(0, 2**31 - 1),
)
def test_systematic_resampling_keeps_each_particle_in_proportion(log_weights, seed):
    """Systematic resampling copies particle i floor(N w_i) or ceil(N w_i) times, and the
    effective sample size lies in [1, N]."""
    log_w = jnp.asarray(log_weights, dtype=jnp.float32)
    n = log_w.shape[0]
    counts = np.bincount(np.asarray(systematic_resample(jr.key(seed), log_w)), minlength=n)
    expected = n * np.asarray(jnp.exp(log_w - jnp.max(log_w)) / jnp.sum(jnp.exp(log_w - jnp.max(log_w))))
    assert counts.sum() == n
    assert np.all(counts >= np.floor(expected - 1e-4)) and np.all(counts <= np.ceil(expected + 1e-4))
    ess = float(effective_sample_size(log_w))
    assert 1 - 1e-4 <= ess <= n + 1e-3
