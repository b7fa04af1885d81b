"""The Simformer paper's simulators: Lotka-Volterra, SIRD and Hodgkin-Huxley.

Each diffrax solve compiles for a few seconds per input shape, so the tests share a handful of
shapes (``N`` examples, ``T`` times) and module-scoped simulations. Statistical checks use fixed
keys and tolerances of 5 standard errors computed from the sample size. Shapes, dtypes,
finiteness, reproducibility and the checks of ``theta`` and ``n`` are tested for every task in
tests/test_task_contract.py.
"""

import itertools
import math

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from gensbi_eqx.tasks import SIRD, HodgkinHuxley, LogitNormal, LotkaVolterra, SIRDPrior


N = 6
TIMES = jnp.array([3.0, 0.0, 15.0, 7.5, 0.1, 12.0])  # unsorted on purpose, with t = 0


def _num_se(estimate, truth, se):
    return np.max(np.abs(np.asarray(estimate) - np.asarray(truth)) / se)


def _normal_cdf(x):
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


# ---------------------------------------------------------------- Lotka-Volterra


@pytest.fixture(scope="module")
def lv():
    return LotkaVolterra()


@pytest.fixture(scope="module")
def lv_clean():
    return LotkaVolterra(noise_std=0.0)


@pytest.fixture(scope="module")
def lv_theta(lv):
    return lv.prior.sample(jr.key(11), N)


def test_lotka_volterra_defaults(lv):
    assert lv.name == "lotka_volterra" and lv.dim_theta == lv.prior.dim == 4
    assert lv.x_shape == (150, 2) and lv.num_times == 150
    np.testing.assert_allclose(lv.times, np.linspace(0, 15, 150), rtol=1e-6)


def test_lotka_volterra_noise_free_initial_state_and_invariant(lv_clean, lv_theta):
    """Without noise x(0) = (1, 0.5), and V = d u - g log u + b v - a log v is conserved."""
    x = np.asarray(lv_clean.simulator(jr.key(0), lv_theta, TIMES), dtype=float)
    assert x.shape == (N, 6, 2)
    np.testing.assert_allclose(x[:, 1], np.tile([1.0, 0.5], (N, 1)), atol=1e-6)
    alpha, beta, gamma, delta = np.asarray(lv_theta, dtype=float).T[:, :, None]
    prey, predator = x[..., 0], x[..., 1]
    invariant = delta * prey - gamma * np.log(prey) + beta * predator - alpha * np.log(predator)
    assert np.max(np.ptp(invariant, axis=1)) < 1e-3
    # Over [0, 15] both species move well away from the start, so the check has teeth.
    assert np.max(np.abs(x[:, 2] - x[:, 1])) > 0.1


def test_lotka_volterra_per_example_times(lv_clean, lv_theta):
    offsets = jnp.arange(N, dtype=jnp.float32)[:, None]
    times = TIMES[None, :] * (0.5 + 0.1 * offsets)  # a different set of times per example
    x = lv_clean.simulator(jr.key(0), lv_theta, times)
    assert x.shape == (N, 6, 2)
    for i in range(N):
        alone = lv_clean.simulator(jr.key(0), lv_theta, times[i])[i]
        np.testing.assert_allclose(x[i], alone, rtol=1e-5, atol=1e-6)
    reversed_x = lv_clean.simulator(jr.key(0), lv_theta, times[:, ::-1])
    np.testing.assert_allclose(reversed_x, x[:, ::-1], rtol=1e-5, atol=1e-6)


def test_lotka_volterra_per_species_times(lv_clean, lv_theta):
    times = lv_clean.sample_times(jr.key(5), N, 6)
    assert times.shape == (N, 6, 2) and times.dtype == jnp.float32
    assert np.all(np.diff(times, axis=1) >= 0)
    assert np.all((times >= 0) & (times <= 15))
    assert not np.array_equal(times[..., 0], times[..., 1])
    x = lv_clean.simulator(jr.key(0), lv_theta, times)
    assert x.shape == (N, 6, 2)
    for species in range(2):
        shared = lv_clean.simulator(jr.key(0), lv_theta, times[..., species])
        np.testing.assert_allclose(x[..., species], shared[..., species], rtol=1e-5, atol=1e-6)


def test_lotka_volterra_observation_noise(lv, lv_clean, lv_theta):
    times = jnp.tile(TIMES, (N, 1))
    residual = np.asarray(
        lv.simulator(jr.key(7), lv_theta, times) - lv_clean.simulator(jr.key(0), lv_theta, times)
    ).ravel()
    m = residual.size
    assert _num_se(residual.mean(), 0.0, 0.1 / math.sqrt(m)) < 5
    assert _num_se(residual.std(), 0.1, 0.1 / math.sqrt(2 * m)) < 5


def test_logit_normal_log_prob_and_quantile():
    prior = LotkaVolterra().prior
    value = np.array([[1.5, 2.0, 2.9, 1.01]])
    u = (value - 1) / 2
    z = np.log(u / (1 - u))
    expected = np.sum(-0.5 * z**2 - 0.5 * math.log(2 * math.pi) - np.log(2 * u * (1 - u)))
    got = prior.log_prob(jnp.asarray(value, jnp.float32))
    np.testing.assert_allclose(got, [expected], rtol=1e-5)
    outside = jnp.array([[1.0, 2.0, 2.0, 2.0], [2.0, 3.5, 2.0, 2.0], [2.0, 2.0, 2.0, 0.0]])
    assert np.all(np.isneginf(prior.log_prob(outside)))
    # The density integrates to one (a 1-D marginal, trapezoid rule).
    one_d = LogitNormal(jnp.array([1.0]), jnp.array([3.0]), jnp.array([0.0]), jnp.array([1.0]))
    grid = np.linspace(1, 3, 20_001)[1:-1]
    density = np.exp(np.asarray(one_d.log_prob(jnp.asarray(grid[:, None], jnp.float32)), float))
    assert abs(np.trapezoid(density, grid) - 1) < 1e-3
    # P(theta <= 1 + 2 sigmoid(1)) = Phi(1), the normal quantile mapped through the sigmoid.
    n = 20_000
    theta = np.asarray(prior.sample(jr.key(0), n))
    p = _normal_cdf(1.0)
    fraction = np.mean(theta <= 1 + 2 / (1 + math.exp(-1)), axis=0)
    assert _num_se(fraction, p, math.sqrt(p * (1 - p) / n)) < 5


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: LotkaVolterra(noise_std=-0.1), "`noise_std`"),
        (lambda: LotkaVolterra(times=np.array([1.0, 0.5])), "`times`.*increasing"),
        (lambda: LotkaVolterra(times=np.array([-1.0, 0.5])), "`times`.*non-negative"),
        (lambda: LotkaVolterra(times=np.array([[0.0, 1.0]])), r"`times`.*\(1, 2\)"),
        (lambda: LogitNormal(jnp.ones(2), jnp.ones(2), jnp.zeros(2), jnp.ones(2)), "`low`"),
        (lambda: LogitNormal(jnp.zeros(2), jnp.ones(2), jnp.zeros(2), -jnp.ones(2)), "`scale`"),
        (
            lambda: LogitNormal(jnp.zeros(2), jnp.ones(2), jnp.zeros(3), jnp.ones(2)),
            r"`loc`.*\(3,\)",
        ),
    ],
)
def test_lotka_volterra_bad_construction(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("shape", [(0,), (N + 1, 6), (N, 6, 3), (N, 0), (2, N, 6, 2)])
def test_lotka_volterra_bad_times(lv_clean, lv_theta, shape):
    with pytest.raises(ValueError, match=rf"`times`.*\(T,\), \({N}, T\) or \({N}, T, 2\)"):
        lv_clean.simulator(jr.key(0), lv_theta, jnp.zeros(shape))


def test_lotka_volterra_negative_times(lv_clean, lv_theta):
    with pytest.raises(eqx.EquinoxRuntimeError, match="`times` must be >= 0"):
        lv_clean.simulator(jr.key(0), lv_theta, TIMES - 1.0)


def test_lotka_volterra_bad_arguments(lv):
    with pytest.raises(ValueError, match="`n`"):
        lv.sample_times(jr.key(0), 0, 5)
    with pytest.raises(ValueError, match="`num_times`"):
        lv.sample_times(jr.key(0), 3, 0)


# ---------------------------------------------------------------- SIRD


@pytest.fixture(scope="module")
def sird():
    return SIRD()


@pytest.fixture(scope="module")
def sird_draws(sird):
    return sird.simulate(jr.key(0), N)


def test_sird_simulate(sird, sird_draws):
    theta, x = sird_draws
    assert sird.name == "sird" and sird.dim_theta == sird.prior.dim == 102
    assert sird.x_shape == (100, 3) and sird.num_times == 100
    np.testing.assert_allclose(sird.times, np.linspace(0, 50, 100), rtol=1e-6)
    assert np.all(x > 0)
    assert np.all((theta[:, :2] >= 0) & (theta[:, :2] <= 0.5))
    assert np.all((theta[:, 2:] > 0) & (theta[:, 2:] < 1))


def test_sird_recovered_to_dead_ratio_under_noise(sird_draws):
    """R / D = gamma / delta at every t > 0 (both grow with I), so with log-normal noise
    log x_R - log x_D - log(gamma / delta) ~ N(0, 2 * 0.05^2)."""
    theta, x = (np.asarray(a, dtype=float) for a in sird_draws)
    gamma, delta = theta[:, :1], theta[:, 1:2]
    keep = (np.minimum(gamma, delta) > 0.01)[:, 0]
    later = np.linspace(0, 50, 100) >= 5  # far above the 1e-8 floor of the observation log
    residual = np.log(x[keep][:, later, 1]) - np.log(x[keep][:, later, 2])
    residual = (residual - np.log(gamma[keep] / delta[keep])).ravel()
    m = residual.size
    assert m > 100
    sd = 0.05 * math.sqrt(2)
    assert _num_se(residual.mean(), 0.0, sd / math.sqrt(m)) < 5
    assert _num_se(residual.std(), sd, sd / math.sqrt(2 * m)) < 5


def test_sird_compartments_conserve_and_order(sird, sird_draws):
    theta = sird_draws[0]
    initial = jnp.linspace(0.01, 0.2, N)
    c = np.asarray(sird.compartments(theta, initial), dtype=float)
    assert c.shape == (N, 100, 4)
    s, i, r, d = np.moveaxis(c, -1, 0)
    start = np.stack([np.ones(N), initial, np.zeros(N), np.zeros(N)], axis=1)
    np.testing.assert_allclose(c[:, 0], start, atol=1e-7)
    assert np.all(c >= -1e-7)
    total = np.broadcast_to(1 + np.asarray(initial)[:, None], (N, 100))
    np.testing.assert_allclose(c.sum(-1), total, atol=1e-5)
    assert np.all(np.diff(s, axis=1) <= 1e-7)
    assert np.all(np.diff(r, axis=1) >= -1e-7) and np.all(np.diff(d, axis=1) >= -1e-7)
    gamma, delta = np.asarray(theta[:, :1], float), np.asarray(theta[:, 1:2], float)
    np.testing.assert_allclose(delta * r, gamma * d, atol=1e-6)


def test_sird_without_contacts_matches_closed_form(sird, sird_draws):
    """beta = 0: I = I0 exp(-(gamma + delta) t), R = gamma / (gamma + delta) (I0 - I), S = 1."""
    theta = sird_draws[0].at[:, 2:].set(0.0)
    initial = jnp.linspace(0.01, 0.2, N)
    c = np.asarray(sird.compartments(theta, initial), dtype=float)
    gamma, delta = np.asarray(theta[:, :1], float), np.asarray(theta[:, 1:2], float)
    t = np.linspace(0, 50, 100)[None, :]
    i0 = np.asarray(initial, float)[:, None]
    infected = i0 * np.exp(-(gamma + delta) * t)
    np.testing.assert_allclose(c[..., 0], 1.0, atol=1e-7)
    np.testing.assert_allclose(c[..., 1], infected, rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(c[..., 2], gamma / (gamma + delta) * (i0 - infected), atol=1e-6)


def test_sird_per_compartment_times(sird, sird_draws):
    times = sird.sample_times(jr.key(2), N, 20)
    assert times.shape == (N, 20, 3)
    assert np.all(np.diff(times, axis=1) >= 0) and np.all((times >= 0) & (times <= 50))
    x = sird.simulator(jr.key(3), sird_draws[0], times)
    assert x.shape == (N, 20, 3) and np.all(np.isfinite(x)) and np.all(x > 0)


def test_sird_prior_gaussian_process_moments():
    """logit(beta) has the RBF covariance 2.5^2 exp(-dt^2 / (2 * 7^2)) (+ 1e-5 jitter)."""
    grid = np.array([0.0, 7.0, 14.0])
    prior = SIRDPrior(times=grid)
    assert prior.dim == 5
    n = 4000
    draws = np.asarray(prior.sample(jr.key(0), n), dtype=float)
    rates, beta = draws[:, :2], draws[:, 2:]
    assert _num_se(rates.mean(0), 0.25, 0.5 / math.sqrt(12 * n)) < 5
    f = np.log(beta / (1 - beta))
    cov = 6.25 * np.exp(-0.5 * (grid[:, None] - grid[None, :]) ** 2 / 49) + 1e-5 * np.eye(3)
    sample_cov = f.T @ f / n  # the mean is known to be zero
    se = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / n)
    assert _num_se(sample_cov, cov, se) < 5


def test_sird_prior_log_prob_matches_closed_form():
    grid = np.linspace(0, 50, 5)
    prior = SIRDPrior(times=grid)
    value = np.asarray(prior.sample(jr.key(1), 4), dtype=float)
    cov = 6.25 * np.exp(-0.5 * (grid[:, None] - grid[None, :]) ** 2 / 49) + 1e-5 * np.eye(5)
    beta = value[:, 2:]
    f = np.log(beta / (1 - beta))
    log_gp = -0.5 * np.einsum("ni,ij,nj->n", f, np.linalg.inv(cov), f) - 0.5 * (
        np.linalg.slogdet(2 * math.pi * cov)[1]
    )
    expected = log_gp - np.sum(np.log(beta * (1 - beta)), axis=1) - 2 * math.log(0.5)
    got = prior.log_prob(jnp.asarray(value, jnp.float32))
    np.testing.assert_allclose(got, expected, rtol=1e-4)
    assert prior.log_prob(jnp.asarray(value[0], jnp.float32)).shape == ()
    outside = value[:2].copy()
    outside[0, 2] = 1.0
    outside[1, 0] = 0.6
    assert np.all(np.isneginf(prior.log_prob(jnp.asarray(outside, jnp.float32))))


def test_sird_bad_arguments(sird, sird_draws):
    theta = sird_draws[0]
    with pytest.raises(ValueError, match=rf"`times`.*\({N}, T, 3\).*\({N}, 20, 2\)"):
        sird.simulator(jr.key(0), theta, jnp.zeros((N, 20, 2)))
    with pytest.raises(ValueError, match=rf"`initial_infected`.*\({N},\).*\(3,\)"):
        sird.compartments(theta, jnp.zeros(3))
    with pytest.raises(ValueError, match=r"`times`.*\(T,\)"):
        sird.compartments(theta, jnp.zeros(N), jnp.zeros((N, 20, 3)))
    with pytest.raises(ValueError, match="`noise_std`"):
        SIRD(noise_std=-1.0)
    with pytest.raises(ValueError, match="`times`.*increasing"):
        SIRD(times=np.array([0.0, 2.0, 1.0]))


# ---------------------------------------------------------------- Hodgkin-Huxley


@pytest.fixture(scope="module")
def hh():
    return HodgkinHuxley()


@pytest.fixture(scope="module")
def hh_corners(hh):
    """The 128 corners of the prior box: the most extreme parameters it allows."""
    corners = np.array(list(itertools.product([0.0, 1.0], repeat=7)), np.float32)
    return hh.prior.low + (hh.prior.high - hh.prior.low) * jnp.asarray(corners)


def _check_features(x):
    spikes, rest_mean, rest_std, mean, variance, skewness, kurtosis, charge = np.asarray(x).T
    assert np.all(spikes == np.round(spikes)) and np.all(spikes >= 0)
    assert np.all(rest_std >= 0) and np.all(variance > 0)
    assert np.all((rest_mean > -100) & (rest_mean < 0)) and np.all((mean > -100) & (mean < 60))
    # Pearson's inequality: kurtosis >= skewness^2 + 1.
    assert np.all(kurtosis >= skewness**2 + 1 - 1e-3)
    assert np.all(charge <= 0)


def test_hodgkin_huxley_finite_at_prior_corners(hh, hh_corners):
    """Documented behaviour: every simulation from the prior box is finite, its corners
    included (random draws: tests/test_task_contract.py)."""
    assert hh.name == "hodgkin_huxley" and hh.dim_theta == hh.prior.dim == 7 and hh.dim_x == 8
    x = hh.simulator(jr.key(0), hh_corners)
    assert x.shape == (128, 8)
    assert np.mean(np.all(np.isfinite(x), axis=1)) == 1.0
    _check_features(x)
    assert np.any(x[:, 0] > 0) and np.any(x[:, 0] == 0)  # both regimes occur


def test_hodgkin_huxley_features_of_traces(hh, hh_corners):
    """The features are the documented statistics of the traces from the same key."""
    key = jr.key(0)
    traces = np.asarray(hh.traces(key, hh_corners), dtype=float)
    assert traces.shape == (128, 5000, 2)
    x = np.asarray(hh.simulator(key, hh_corners), dtype=float)
    t = hh.times
    np.testing.assert_allclose(t, np.linspace(0, 200, 5000), rtol=1e-6)
    voltage, charge = traces[..., 0], traces[..., 1]
    np.testing.assert_allclose(voltage[:, 0], -65.0)
    np.testing.assert_allclose(charge[:, 0], 0.0)
    rest, stim = voltage[:, t < 50], voltage[:, (t > 50) & (t < 150)]
    centred = stim - stim.mean(1, keepdims=True)
    std = centred.std(1)
    above = voltage >= -10
    expected = np.stack(
        [
            np.sum(above[:, 1:] & ~above[:, :-1], axis=1),
            rest.mean(1),
            rest.std(1),
            stim.mean(1),
            std**2,
            np.mean(centred**3, axis=1) / std**3,
            np.mean(centred**4, axis=1) / std**4,
            charge[:, -1],
        ],
        axis=1,
    )
    np.testing.assert_allclose(x, expected, rtol=2e-3, atol=2e-3)
    # The sodium current is inward (V stays below E_Na), so the charge only falls.
    assert np.all(np.diff(charge, axis=1) <= 1e-3)


def test_hodgkin_huxley_bad_arguments(hh):
    with pytest.raises(ValueError, match=r"`theta`.*\(n, 7\).*\(5, 8\)"):
        hh.traces(jr.key(0), jnp.ones((5, 8)))
    with pytest.raises(ValueError, match="`noise_std`"):
        HodgkinHuxley(noise_std=-0.05)
