"""Benchmark tasks and their distributions, checked against analytic answers.

Statistical checks use fixed keys and tolerances of 5 standard errors computed from the
sample size and the analytic variance, not tuned until green.
"""

import math

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from hypothesis import given, settings

from gensbi_eqx.tasks import GaussianLinear, Normal, TwoMoons, Uniform


# Few distinct dims, so hypothesis does not trigger a compile per example.
DIMS = st.sampled_from([1, 2, 3, 10])
SETTINGS = settings(deadline=None, max_examples=8, database=None)


def _num_se(estimate, truth, se):
    return np.max(np.abs(np.asarray(estimate) - np.asarray(truth)) / se)


# ---------------------------------------------------------------- distributions


def test_uniform_properties_and_log_prob():
    low, high = jnp.array([-1.0, 0.0, 2.0]), jnp.array([1.0, 0.5, 5.0])
    dist = Uniform(low, high)
    assert dist.dim == 3
    np.testing.assert_allclose(dist.mean, [0.0, 0.25, 3.5])
    inside = jnp.array([[0.0, 0.1, 3.0], [-1.0, 0.5, 5.0]])  # second row: on the boundary
    outside = jnp.array([[1.5, 0.1, 3.0], [0.0, -0.1, 3.0], [0.0, 0.1, 5.1]])
    expected = -math.log(2.0 * 0.5 * 3.0)
    np.testing.assert_allclose(dist.log_prob(inside), [expected, expected], rtol=1e-6)
    assert np.all(np.isneginf(dist.log_prob(outside)))
    assert dist.log_prob(inside[0]).shape == ()


def test_uniform_sample_in_box_with_right_moments(getkey):
    low, high = jnp.array([-1.0, 2.0]), jnp.array([1.0, 6.0])
    n = 20_000
    x = Uniform(low, high).sample(getkey(), n)
    assert x.shape == (n, 2) and x.dtype == jnp.float32
    assert np.all((x >= low) & (x <= high))
    width = np.asarray(high - low)
    se = width / math.sqrt(12 * n)
    assert _num_se(x.mean(0), (low + high) / 2, se) < 5


def test_normal_log_prob_matches_closed_form():
    loc = jnp.array([1.0, -2.0])
    cov = jnp.array([[2.0, 0.6], [0.6, 0.5]])
    dist = Normal(loc, cov)
    assert dist.dim == 2
    np.testing.assert_allclose(dist.mean, loc)
    np.testing.assert_allclose(dist.covariance, cov)
    np.testing.assert_allclose(dist.cholesky @ dist.cholesky.T, cov, rtol=1e-6)
    values = np.array([[1.0, -2.0], [0.3, 0.7], [-3.0, 1.5]])
    # Explicit 2x2 inverse and determinant, independent of the Cholesky route.
    a, b, d = 2.0, 0.6, 0.5
    det = a * d - b * b
    inv = np.array([[d, -b], [-b, a]]) / det
    diff = values - np.asarray(loc)
    expected = -0.5 * np.einsum("ni,ij,nj->n", diff, inv, diff) - math.log(2 * math.pi) - 0.5 * (
        math.log(det)
    )
    np.testing.assert_allclose(dist.log_prob(jnp.asarray(values)), expected, rtol=1e-5)
    batched = dist.log_prob(jnp.zeros((4, 3, 2)))
    assert batched.shape == (4, 3)


def test_normal_sample_moments(getkey):
    loc = np.array([1.0, -2.0])
    cov = np.array([[2.0, 0.6], [0.6, 0.5]])
    n = 40_000
    x = np.asarray(Normal(jnp.asarray(loc), jnp.asarray(cov)).sample(getkey(), n), dtype=float)
    assert x.shape == (n, 2)
    assert _num_se(x.mean(0), loc, np.sqrt(np.diag(cov) / n)) < 5
    centred = x - loc
    sample_cov = centred.T @ centred / n
    # Var of a product of centred jointly Gaussian entries: S_ii S_jj + S_ij^2.
    se_cov = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / n)
    assert _num_se(sample_cov, cov, se_cov) < 5


def _distributions(dim):
    ones, eye = np.ones(dim, np.float32), np.eye(dim, dtype=np.float32)
    return [Uniform(-ones, ones), Normal(0 * ones, 0.5 * eye)]


@SETTINGS
@given(dim=DIMS)
def test_distribution_shapes(dim):
    for dist in _distributions(dim):
        assert dist.dim == dim
        assert dist.mean.shape == (dim,)
        x = dist.sample(jr.key(0), 7)
        assert x.shape == (7, dim) and x.dtype == jnp.float32
        log_p = dist.log_prob(x)
        assert log_p.shape == (7,) and log_p.dtype == jnp.float32
        assert np.all(np.isfinite(log_p))


@pytest.mark.parametrize("batch", [(), (5,), (2, 3)])
def test_log_prob_batch_shapes(batch):
    for dist in _distributions(2):
        assert dist.log_prob(jnp.zeros(batch + (2,))).shape == batch


def test_distributions_work_under_jit(getkey):
    @jax.jit
    def build_and_score(low, loc):
        return Uniform(low, low + 1.0).log_prob(loc), Normal(loc, jnp.eye(2)).log_prob(loc)

    u, n = build_and_score(jnp.zeros(2), jnp.full(2, 0.5))
    np.testing.assert_allclose(u, 0.0, atol=1e-6)
    np.testing.assert_allclose(n, -math.log(2 * math.pi), rtol=1e-6)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: Uniform(jnp.zeros(2), jnp.ones(3)), r"`high`.*\(2,\).*\(3,\)"),
        (lambda: Uniform(jnp.zeros((2, 2)), jnp.ones((2, 2))), r"`low`.*\(dim,\).*\(2, 2\)"),
        (lambda: Uniform(jnp.zeros(0), jnp.ones(0)), "`low`"),
        (lambda: Uniform(jnp.zeros(2), jnp.array([1.0, 0.0])), "`low`.*`high`"),
        (lambda: Normal(jnp.zeros(2), jnp.eye(3)), r"`covariance`.*\(2, 2\).*\(3, 3\)"),
        (lambda: Normal(jnp.zeros((2, 1)), jnp.eye(2)), r"`loc`.*\(2, 1\)"),
        (lambda: Normal(jnp.zeros(2), jnp.ones(2)), r"`covariance`.*\(dim, dim\).*\(2,\)"),
        (lambda: Normal(jnp.zeros(2), -jnp.eye(2)), "`covariance`.*positive definite"),
        (lambda: Normal(jnp.zeros(2), jnp.array([[1.0, 0.5], [0.0, 1.0]])), "`covariance`.*symm"),
    ],
)
def test_distribution_bad_construction(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("n", [0, -3, True])
@pytest.mark.parametrize(
    "dist", [Uniform(jnp.zeros(2), jnp.ones(2)), Normal(jnp.zeros(2), jnp.eye(2))]
)
def test_distribution_bad_n(dist, n):
    # Compile for n=1 first: the compile cache cannot tell True from 1, so the check must not
    # live inside the compiled function.
    dist.sample(jr.key(0), 1)
    with pytest.raises(ValueError, match="`n`"):
        dist.sample(jr.key(0), n)


@pytest.mark.parametrize(
    "dist", [Uniform(jnp.zeros(2), jnp.ones(2)), Normal(jnp.zeros(2), jnp.eye(2))]
)
def test_distribution_bad_value(dist):
    with pytest.raises(ValueError, match=r"`value`.*\(\*batch, 2\).*\(4, 3\)"):
        dist.log_prob(jnp.zeros((4, 3)))


# ---------------------------------------------------------------- tasks
# Shapes, dtypes, reproducibility and argument checks of every task: tests/test_task_contract.py.


def test_names_and_dims():
    assert TwoMoons.name == "two_moons" and TwoMoons.dim_theta == 2 and TwoMoons.dim_x == 2
    task = GaussianLinear()
    assert task.name == "gaussian_linear" and task.dim == task.dim_theta == task.dim_x == 10


# -- two moons


def test_two_moons_prior_in_box(getkey):
    n = 20_000
    theta, _ = TwoMoons().simulate(getkey(), n)
    assert np.all(np.abs(theta) <= 1.0)
    # U(-1, 1): mean 0, variance 1/3.
    assert _num_se(theta.mean(0), 0.0, math.sqrt(1 / 3 / n)) < 5


def test_two_moons_radius_and_angle_at_origin(getkey):
    """With theta = 0 the offset vanishes, so x - (0.25, 0) = r (cos a, sin a)."""
    n = 20_000
    x = TwoMoons().simulator(getkey(), jnp.zeros((n, 2)))
    p = np.asarray(x, dtype=float) - np.array([0.25, 0.0])
    radius = np.linalg.norm(p, axis=1)
    angle = np.arctan2(p[:, 1], p[:, 0])
    # r ~ N(0.1, 0.01^2) is positive to 10 sigma, so |r| = r.
    assert _num_se(radius.mean(), 0.1, 0.01 / math.sqrt(n)) < 5
    assert _num_se(radius.std(), 0.01, 0.01 / math.sqrt(2 * n)) < 5
    assert np.all(np.abs(angle) <= math.pi / 2 + 1e-6)
    # a ~ U(-pi/2, pi/2): mean 0, sd pi / sqrt(12).
    assert _num_se(angle.mean(), 0.0, math.pi / math.sqrt(12 * n)) < 5


def test_two_moons_offset(getkey):
    """E[x] = (0.25 + 0.1 * 2/pi - |t1 + t2| / sqrt 2, (t2 - t1) / sqrt 2)."""
    n = 20_000
    t1, t2 = 0.3, -0.7
    x = np.asarray(TwoMoons().simulator(getkey(), jnp.tile(jnp.array([t1, t2]), (n, 1))))
    mean = np.array(
        [0.25 + 0.1 * 2 / math.pi - abs(t1 + t2) / math.sqrt(2), (t2 - t1) / math.sqrt(2)]
    )
    second_moment_r = 0.1**2 + 0.01**2
    # E[cos^2 a] = E[sin^2 a] = 1/2 for a ~ U(-pi/2, pi/2); E[cos a] = 2/pi, E[sin a] = 0.
    var = np.array([second_moment_r / 2 - (0.1 * 2 / math.pi) ** 2, second_moment_r / 2])
    assert _num_se(x.mean(0), mean, np.sqrt(var / n)) < 5


# -- gaussian linear


@pytest.mark.parametrize("dim", [0, -2])
def test_gaussian_linear_bad_dim(dim):
    with pytest.raises(ValueError, match="`dim`"):
        GaussianLinear(dim)


def test_gaussian_linear_moments(getkey):
    n, dim = 20_000, 10
    theta, x = GaussianLinear(dim).simulate(getkey(), n)
    theta, x = np.asarray(theta, dtype=float), np.asarray(x, dtype=float)
    # theta ~ N(0, 0.1 I), x ~ N(0, 0.2 I), Cov(theta, x) = 0.1 I.
    assert _num_se(theta.mean(0), 0.0, math.sqrt(0.1 / n)) < 5
    assert _num_se(x.mean(0), 0.0, math.sqrt(0.2 / n)) < 5
    assert _num_se((theta**2).mean(0), 0.1, 0.1 * math.sqrt(2 / n)) < 5
    assert _num_se((x**2).mean(0), 0.2, 0.2 * math.sqrt(2 / n)) < 5
    # Var(theta_i x_i) = Var(theta) Var(x) + Cov(theta, x)^2 = 0.02 + 0.01 for Gaussians.
    assert _num_se((theta * x).mean(0), 0.1, math.sqrt(0.03 / n)) < 5
    # Off-diagonal cross-covariance is zero; Var(theta_i x_j) = 0.1 * 0.2 for i != j.
    cross = theta.T @ x / n
    off = cross[~np.eye(dim, dtype=bool)]
    assert _num_se(off, 0.0, math.sqrt(0.02 / n)) < 5


def _log_gaussian_isotropic(value, mean, var):
    value, mean = np.asarray(value, dtype=float), np.asarray(mean, dtype=float)
    d = value.shape[-1]
    return -0.5 * np.sum((value - mean) ** 2, -1) / var - 0.5 * d * math.log(2 * math.pi * var)


@SETTINGS
@given(dim=DIMS)
def test_gaussian_linear_true_posterior(dim):
    """log p(theta) + log p(x_o | theta) - log p(theta | x_o) = log p(x_o) for every theta."""
    task = GaussianLinear(dim)
    # NumPy draws: these inputs only need to be spread out, and JAX's RNG would compile per dim.
    rng = np.random.default_rng(0)
    x_o = jnp.asarray(rng.normal(0.0, math.sqrt(0.2), dim), dtype=jnp.float32)
    posterior = task.true_posterior(x_o)
    assert posterior.dim == dim
    np.testing.assert_allclose(posterior.mean, 0.5 * x_o, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(posterior.covariance, 0.05 * np.eye(dim), rtol=1e-5, atol=1e-7)
    theta = rng.normal(0.0, math.sqrt(0.1), (200, dim)).astype(np.float32).astype(float)
    log_joint = _log_gaussian_isotropic(theta, 0.0, 0.1) + _log_gaussian_isotropic(x_o, theta, 0.1)
    log_post = np.asarray(posterior.log_prob(jnp.asarray(theta, dtype=jnp.float32)), dtype=float)
    log_evidence = log_joint - log_post
    # The evidence is itself Gaussian: x_o ~ N(0, 0.2 I).
    np.testing.assert_allclose(log_evidence, _log_gaussian_isotropic(x_o, 0.0, 0.2), atol=1e-3)
    assert np.ptp(log_evidence) < 1e-3
    # The task's own prior agrees with the independent closed form.
    np.testing.assert_allclose(
        task.prior.log_prob(jnp.asarray(theta, dtype=jnp.float32)),
        _log_gaussian_isotropic(theta, 0.0, 0.1),
        atol=1e-3,
    )


def test_gaussian_linear_bad_x_o():
    with pytest.raises(ValueError, match=r"`x_o`.*\(3,\).*\(4,\)"):
        GaussianLinear(3).true_posterior(jnp.zeros(4))
