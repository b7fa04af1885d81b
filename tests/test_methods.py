"""Probability paths, SDE coefficients, targets, training-time distributions and the
denoising loss, checked against closed forms (a Gaussian data distribution has an exact
denoiser)."""

import json
import math
from typing import Any

import equinox as eqx
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import jax.random as jr
import jax.scipy.stats as jss
import numpy as np
import scipy.stats
import pytest
from hypothesis import given, settings
from jaxtyping import Array, Bool, Float

import gensbi_eqx as gs
from gensbi_eqx.methods import (
    EDM,
    VESDE,
    VPSDE,
    AbstractMethod,
    AbstractTimes,
    FlowMatching,
    LogitNormalTimes,
    LogNormalNoise,
    UniformTimes,
)
from gensbi_eqx.methods._base import network_output
from gensbi_eqx.methods._times import bisect_time
from gensbi_eqx.models import AbstractModel
from gensbi_eqx.training import batch_loss
from gensbi_eqx.training._loss import example_loss


ALL_METHODS = [VESDE(), VPSDE(), FlowMatching(), EDM()]
IDS = [type(m).__name__ for m in ALL_METHODS]
MID_TIMES = np.linspace(0.05, 0.95, 19)
DATA_MEAN, DATA_STD = 0.5, 0.8  # x0 ~ N(DATA_MEAN, DATA_STD^2), independently per node


def _exported(base):
    """Names of the concrete subclasses of ``base`` that gensbi_eqx.methods exports."""
    classes = (getattr(gs.methods, name) for name in gs.methods.__all__)
    return sorted(
        c.__name__
        for c in classes
        if isinstance(c, type) and issubclass(c, base) and not c.__name__.startswith("Abstract")
    )


def test_registry_covers_every_method():
    """The parametrised registry holds one instance of every method the package exports."""
    assert sorted(IDS) == _exported(AbstractMethod)


def _sigma_squared_rate(method):
    return jax.vmap(jax.grad(lambda t: method.alpha_sigma(t)[1] ** 2))


def test_vesde_diffusion_is_variance_growth():
    """VE: f = 0 and g^2 = d sigma^2/dt at every t."""
    method = VESDE()
    t = jnp.linspace(method.t_min, 1.0, 101)
    f, g2 = jax.vmap(method.drift_diffusion)(t)
    np.testing.assert_array_equal(f, 0.0)
    np.testing.assert_allclose(g2, _sigma_squared_rate(method)(t), rtol=1e-4)


def test_vpsde_path_and_coefficients():
    """VP: sigma^2 = 1 - alpha^2, f = alpha'/alpha and g^2 = d sigma^2/dt - 2 f sigma^2."""
    method = VPSDE()
    t = jnp.linspace(1e-3, 1.0, 101)
    alpha, sigma = jax.vmap(method.alpha_sigma)(t)
    np.testing.assert_allclose(sigma**2, 1 - alpha**2, atol=1e-6)
    f, g2 = jax.vmap(method.drift_diffusion)(t)
    d_alpha = jax.vmap(jax.grad(lambda t: method.alpha_sigma(t)[0]))(t)
    np.testing.assert_allclose(f, d_alpha / alpha, rtol=1e-5)
    np.testing.assert_allclose(g2, _sigma_squared_rate(method)(t) - 2 * f * sigma**2, rtol=1e-4)


@pytest.mark.parametrize("method", ALL_METHODS, ids=IDS)
def test_generic_drift_diffusion_matches_override(method):
    """The path-derived (f, g^2) of AbstractMethod agrees with each method's own SDE."""
    t = jnp.asarray(MID_TIMES)
    generic = jax.vmap(lambda t: AbstractMethod.drift_diffusion(method, t))(t)
    own = jax.vmap(method.drift_diffusion)(t)
    for a, b in zip(generic, own):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("method", ALL_METHODS, ids=IDS)
def test_alpha_sigma_derivatives_match_grad(method):
    """alpha_sigma_derivatives (forward mode) equals reverse-mode grad of the path."""
    t = jnp.asarray(MID_TIMES)
    d_alpha, d_sigma = jax.vmap(method.alpha_sigma_derivatives)(t)
    for i, d in enumerate((d_alpha, d_sigma)):
        np.testing.assert_allclose(d, jax.vmap(jax.grad(lambda t: method.alpha_sigma(t)[i]))(t), rtol=1e-5)


@eqx.filter_jit
def _round_trip(method, x0, eps, t):
    alpha, sigma = method.alpha_sigma(t)
    return method.denoise(method.target(x0, eps, t), t, alpha * x0 + sigma * eps)


@settings(deadline=None, max_examples=25, database=None)
@given(t=st.floats(0.05, 0.95), seed=st.integers(0, 2**31 - 1))
@pytest.mark.parametrize("method", ALL_METHODS, ids=IDS)
def test_denoise_inverts_target(method, t, seed):
    """denoise(target(x0, eps, t), t, alpha x0 + sigma eps) recovers (x0, eps)."""
    k1, k2 = jr.split(jr.key(seed))
    x0, eps = 2 * jr.normal(k1, (5,)), jr.normal(k2, (5,))
    x0_hat, eps_hat = _round_trip(method, x0, eps, jnp.asarray(t, dtype=jnp.float32))
    np.testing.assert_allclose(x0_hat, x0, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(eps_hat, eps, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("method", ALL_METHODS, ids=IDS)
def test_prior_std_and_input_scale(method):
    """prior_std = sqrt(alpha(1)^2 + sigma(1)^2) and input_scale gives y_t unit variance for unit data."""
    alpha, sigma = method.alpha_sigma(1.0)
    np.testing.assert_allclose(method.prior_std(), np.sqrt(alpha**2 + sigma**2), rtol=1e-6)
    t = jnp.asarray(MID_TIMES)
    alpha, sigma = jax.vmap(method.alpha_sigma)(t)
    np.testing.assert_allclose(jax.vmap(method.input_scale)(t) ** 2 * (alpha**2 + sigma**2), 1.0, rtol=1e-5)


@pytest.mark.parametrize("method", ALL_METHODS, ids=IDS)
def test_sample_time_is_uniform_on_range(method, getkey):
    """With UniformTimes (every method's default but EDM's), sample_time draws lie in
    [t_min, 1] with the mean of U[t_min, 1]."""
    method = eqx.tree_at(lambda m: m.times, method, UniformTimes())
    num = 20_000
    t = np.asarray(method.sample_time(getkey(), (num,)))
    assert t.shape == (num,)
    assert t.min() >= method.t_min and t.max() <= 1.0
    width = 1.0 - method.t_min
    se = width / np.sqrt(12 * num)
    assert abs(t.mean() - (method.t_min + 1.0) / 2) < 5 * se


def _time_of_noise_input(method, noise_input):
    """The time ``t`` whose ``method.noise_input(t)`` the model was given."""
    if isinstance(method, EDM):  # c_noise = log(sigma) / 4
        return method.time_of_sigma(jnp.exp(4 * noise_input))
    return noise_input


class GaussianOracle(AbstractModel):
    """The exact minimiser of the loss for x0 ~ N(DATA_MEAN, DATA_STD^2) per node: E[target | y]
    on latent tokens, optionally perturbed (``output * scale + shift``); ``observed_fill`` on
    observed tokens."""

    method: AbstractMethod
    num_scalars: int = eqx.field(static=True)
    shift: Float[Array, ""] = eqx.field(default_factory=lambda: jnp.asarray(0.0), converter=jnp.asarray)
    scale: Float[Array, ""] = eqx.field(default_factory=lambda: jnp.asarray(1.0), converter=jnp.asarray)
    observed_fill: Float[Array, ""] = eqx.field(
        default_factory=lambda: jnp.asarray(0.0), converter=jnp.asarray
    )

    def __call__(self, noise_input, x, condition_mask, *, node_ids=None, edge_mask=None):
        t = _time_of_noise_input(self.method, noise_input)
        # network_output scaled the latent tokens by input_scale(t); undo it.
        y = x / self.method.input_scale(t)
        alpha, sigma = self.method.alpha_sigma(t)
        residual = (y - alpha * DATA_MEAN) / (alpha**2 * DATA_STD**2 + sigma**2)
        x0_mean = DATA_MEAN + alpha * DATA_STD**2 * residual
        eps_mean = sigma * residual
        out = self.method.target(x0_mean, eps_mean, t) * self.scale + self.shift
        return jnp.where(condition_mask, self.observed_fill, out)

    @property
    def config(self) -> dict[str, Any]:
        return {"num_scalars": self.num_scalars}


def _posterior_moments(method, t, y):
    """E[x0 | y], E[eps | y] and the score d/dy log p_t(y) in float64, for y = alpha x0 + sigma eps."""
    alpha, sigma = (np.float64(v) for v in method.alpha_sigma(t))
    y = np.asarray(y, np.float64)
    var = alpha**2 * DATA_STD**2 + sigma**2
    x0_mean = DATA_MEAN + alpha * DATA_STD**2 * (y - alpha * DATA_MEAN) / var
    eps_mean = sigma * (y - alpha * DATA_MEAN) / var
    return x0_mean, eps_mean, -(y - alpha * DATA_MEAN) / var


@pytest.mark.parametrize("method", ALL_METHODS, ids=IDS)
def test_oracle_output_gives_exact_posterior_mean_and_score(method, getkey):
    """The Gaussian oracle's output denoises to E[x0|y], E[eps|y]; -eps_hat/sigma is the true score."""
    n = 6
    cm = jnp.zeros(n, bool)
    oracle = GaussianOracle(method, n)
    for t in MID_TIMES:
        t = jnp.asarray(t, jnp.float32)
        alpha, sigma = method.alpha_sigma(t)
        y = alpha * (DATA_MEAN + DATA_STD * jr.normal(getkey(), (n,))) + sigma * jr.normal(getkey(), (n,))
        out = network_output(oracle, method, t, y, cm)
        x0_hat, eps_hat = method.denoise(out, t, y)
        x0_mean, eps_mean, score = _posterior_moments(method, t, y)
        if method.prediction == "noise":
            np.testing.assert_allclose(out, eps_mean, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(x0_hat, x0_mean, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(eps_hat, eps_mean, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(-eps_hat / sigma, score, rtol=1e-3, atol=1e-5)
        # ... and that score is the gradient of the log density of y_t ~ N(alpha m, alpha^2 s^2 + sigma^2).
        std_t = jnp.sqrt(alpha**2 * DATA_STD**2 + sigma**2)
        true_score = jax.vmap(jax.grad(lambda y: jss.norm.logpdf(y, alpha * DATA_MEAN, std_t)))(y)
        np.testing.assert_allclose(score, true_score, rtol=1e-4, atol=1e-5)


_batch_loss = eqx.filter_jit(batch_loss)


@eqx.filter_jit
def _example_losses(model, method, x0, masks, key):
    """Each example's loss, with the times and noise `batch_loss` draws from ``key``."""
    k_t, k_eps = jr.split(key)
    t = method.sample_time(k_t, (x0.shape[0],))
    eps = jr.normal(k_eps, x0.shape)
    return jax.vmap(example_loss, in_axes=(None, None, 0, 0, 0, 0))(model, method, x0, masks, t, eps)


def _expected_oracle_loss(method) -> float:
    """E_t[Var(target | y_t)] over the method's training times, by quadrature of the closed form:
    in t for t ~ U[t_min, 1]; for log-normal noise (EDM's default) in z for
    log(sigma / alpha) = mean + std z, z ~ N(0, 1), clipped to the path's range as in
    `sample_time`."""
    if isinstance(method.times, LogNormalNoise):
        z = np.linspace(-10.0, 10.0, 40_001)
        t = method.time_of_log_ratio(jnp.asarray(method.times.mean + method.times.std * z))
        weights = np.exp(-0.5 * z**2) / np.sqrt(2 * np.pi)
        grid = z
    else:
        assert isinstance(method.times, UniformTimes)
        t = jnp.linspace(method.t_min, 1.0, 20_001)
        weights = np.full(t.shape, 1.0 / (1.0 - method.t_min))
        grid = np.asarray(t, np.float64)
    alpha, sigma = (np.asarray(v, np.float64) for v in jax.vmap(method.alpha_sigma)(t))
    # Every target is linear, target = a x0 + e eps; read a and e off the method itself.
    coefficient = lambda x0, eps: np.asarray(
        jax.vmap(lambda t: method.target(jnp.asarray([x0]), jnp.asarray([eps]), t)[0])(t), np.float64
    )
    a, e = coefficient(1.0, 0.0), coefficient(0.0, 1.0)
    # Given y = alpha x0 + sigma eps (jointly Gaussian) the target's variance is
    # Var(target) - Cov(target, y)^2 / Var(y).
    var_y = alpha**2 * DATA_STD**2 + sigma**2
    var = a**2 * DATA_STD**2 + e**2 - (a * alpha * DATA_STD**2 + e * sigma) ** 2 / var_y
    return float(np.trapezoid(var * weights, grid))


@pytest.mark.parametrize("method", ALL_METHODS, ids=IDS)
def test_oracle_minimises_loss(method, getkey):
    """The exact E[target|y] beats perturbed outputs and its loss equals E_t[Var(target|y)]."""
    num, n = 20_000, 2
    x0 = DATA_MEAN + DATA_STD * jr.normal(getkey(), (num, n))
    masks = jnp.zeros((num, n), bool)
    key = getkey()
    oracle = GaussianOracle(method, n)
    best = _batch_loss(oracle, method, x0, masks, key)
    for perturbed in (GaussianOracle(method, n, shift=0.1), GaussianOracle(method, n, scale=1.1)):
        assert best < _batch_loss(perturbed, method, x0, masks, key)
    losses = np.asarray(_example_losses(oracle, method, x0, masks, key), np.float64)
    expected = _expected_oracle_loss(method)
    tolerance = 5 * losses.std() / np.sqrt(num)
    assert abs(losses.mean() - expected) < tolerance, (losses.mean(), expected, tolerance)
    np.testing.assert_allclose(best, losses.mean(), rtol=1e-3)


class CleanInputProbe(AbstractModel):
    """Outputs ``weight * sum((x - x0)^2)`` over the observed (or, if ``watch_latent``, the
    latent) tokens, on every token: zero exactly when those inputs are the clean ``x0``."""

    x0: Float[Array, " num_scalars"]
    weight: Float[Array, ""]
    num_scalars: int = eqx.field(static=True)
    watch_latent: bool = eqx.field(static=True, default=False)

    def __call__(self, t, x, condition_mask, *, node_ids=None, edge_mask=None):
        watched = ~condition_mask if self.watch_latent else condition_mask
        penalty = self.weight * jnp.sum(jnp.where(watched, (x - self.x0) ** 2, 0.0))
        return jnp.full_like(x, penalty)

    @property
    def config(self) -> dict[str, Any]:
        return {"num_scalars": self.num_scalars}


def _one_latent_masks(key, num: int, n: int) -> Bool[Array, "num n"]:
    latent = jr.randint(key, (num,), 0, n)
    return jnp.arange(n)[None, :] != latent[:, None]


@pytest.mark.parametrize("method", ALL_METHODS, ids=IDS)
def test_observed_tokens_are_clean_and_ignored(method, getkey):
    """Observed tokens reach the model as clean x0, and the model's output there never enters the loss."""
    num, n = 64, 4
    x0_single = jr.normal(getkey(), (n,))
    x0 = jnp.broadcast_to(x0_single, (num, n))
    masks = _one_latent_masks(getkey(), num, n)
    key = getkey()

    silent = CleanInputProbe(x0_single, jnp.asarray(0.0), n)
    loud = CleanInputProbe(x0_single, jnp.asarray(1e3), n)
    np.testing.assert_array_equal(
        _batch_loss(loud, method, x0, masks, key), _batch_loss(silent, method, x0, masks, key)
    )
    # The probe can see noise: on the latent token it does, so the losses differ.
    loud_latent = CleanInputProbe(x0_single, jnp.asarray(1e3), n, watch_latent=True)
    assert _batch_loss(loud_latent, method, x0, masks, key) > _batch_loss(silent, method, x0, masks, key)

    oracle = GaussianOracle(method, n)
    filled = GaussianOracle(method, n, observed_fill=1e3)
    for mask, k in zip(masks[:8], jr.split(key, 8)):
        t, eps = method.sample_time(k), jr.normal(jr.fold_in(k, 1), x0_single.shape)
        np.testing.assert_array_equal(
            example_loss(filled, method, x0_single, mask, t, eps),
            example_loss(oracle, method, x0_single, mask, t, eps),
        )


# ---------------------------------------------------------------- training-time distributions

TIMES = [UniformTimes(), LogitNormalTimes(0.3, 1.4), LogNormalNoise(-1.2, 0.7)]
TIMES_IDS = [type(t).__name__ for t in TIMES]
NUM_TIMES = 50_000


def test_times_registry_covers_every_distribution():
    assert sorted(TIMES_IDS) == _exported(AbstractTimes)


def _log_ratio(method, t) -> np.ndarray:
    """``log(sigma(t) / alpha(t))`` in float64 from the method's (float32) path."""
    alpha, sigma = (np.asarray(v, np.float64) for v in jax.vmap(method.alpha_sigma)(jnp.asarray(t)))
    with np.errstate(divide="ignore"):  # flow matching's ends: -inf at t = 0, inf at t = 1
        return np.log(sigma) - np.log(alpha)


@pytest.fixture(scope="module")
def drawn_times():
    """``drawn_times(method, times)``: NUM_TIMES draws of ``method`` with training times
    ``times``, each compiled and drawn once."""
    cache = {}
    draw = eqx.filter_jit(lambda method, key: method.sample_time(key, (NUM_TIMES,)))

    def _get(method, times):
        name = (type(method).__name__, repr(times))
        if name not in cache:
            method = eqx.tree_at(lambda m: m.times, method, times)
            cache[name] = method, np.asarray(draw(method, jr.key(0)), np.float64)
        return cache[name]

    return _get


@pytest.mark.parametrize("times", TIMES, ids=TIMES_IDS)
@pytest.mark.parametrize("method", ALL_METHODS, ids=IDS)
def test_training_times_lie_in_the_methods_range(method, times, drawn_times):
    """Every distribution, on every method, draws finite times inside [t_min, 1]."""
    method, t = drawn_times(method, times)
    assert t.shape == (NUM_TIMES,)
    assert np.all(np.isfinite(t))
    assert t.min() >= method.t_min and t.max() <= 1.0
    # Also for a single draw and a 2-D shape.
    assert method.sample_time(jr.key(1)).shape == ()
    assert method.sample_time(jr.key(1), (3, 2)).shape == (3, 2)


@pytest.mark.parametrize("method", ALL_METHODS, ids=IDS)
def test_logit_normal_times_have_the_requested_logit(method, drawn_times):
    """logit((t - t_min) / (1 - t_min)) of LogitNormalTimes(mean, std) draws has that mean
    and std: within 5 standard errors, std / sqrt(N) for the mean and std / sqrt(2 N) for the
    std of a normal sample."""
    times = TIMES[1]
    method, t = drawn_times(method, times)
    u = (t - method.t_min) / (1.0 - method.t_min)
    logit = np.log(u) - np.log1p(-u)
    assert abs(logit.mean() - times.mean) < 5 * times.std / math.sqrt(NUM_TIMES)
    assert abs(logit.std() - times.std) < 5 * times.std / math.sqrt(2 * NUM_TIMES)


# The path's range of log(sigma / alpha) at t_min and at 1: LogNormalNoise(-1.2, 0.7) stays
# inside every one of them to beyond 5 sd ([-4.7, 2.3]; VP ends at 2.5, VE at 2.7, EDM at 4.4),
# so clipping moves less than 1e-6 of the draws: the sample is the unclipped normal's.
@pytest.mark.parametrize("method", ALL_METHODS, ids=IDS)
def test_log_normal_noise_has_the_requested_log_ratio(method, drawn_times):
    """log(sigma / alpha) at the times drawn by LogNormalNoise(mean, std) has that mean and
    std, within 5 standard errors (as above)."""
    times = TIMES[2]
    method, t = drawn_times(method, times)
    low, high = _log_ratio(method, np.array([method.t_min, 1.0], np.float32))
    assert low < times.mean - 5 * times.std and times.mean + 5 * times.std < high
    log_ratio = _log_ratio(method, t.astype(np.float32))
    assert abs(log_ratio.mean() - times.mean) < 5 * times.std / math.sqrt(NUM_TIMES)
    assert abs(log_ratio.std() - times.std) < 5 * times.std / math.sqrt(2 * NUM_TIMES)


@pytest.mark.parametrize("method", ALL_METHODS, ids=IDS)
def test_log_normal_noise_clips_to_the_ends_of_the_path(method):
    """Where clipping binds (std 20: most draws beyond the path's range), draws land on t_min
    or 1 and never outside."""
    method = eqx.tree_at(lambda m: m.times, method, LogNormalNoise(0.0, 20.0))
    t = np.asarray(method.sample_time(jr.key(1), (1000,)))
    if isinstance(method, FlowMatching):
        # Every log ratio is some t in (0, 1); float32 rounds the far tails to the ends.
        assert t.min() >= 0.0 and t.max() <= 1.0
    else:
        np.testing.assert_allclose([t.min(), t.max()], [method.t_min, 1.0], rtol=1e-6, atol=1e-7)
        assert t.min() >= method.t_min and t.max() <= 1.0


@pytest.mark.parametrize("times", TIMES, ids=TIMES_IDS)
def test_stratified_times_put_one_draw_in_each_stratum(times):
    """``stratified(key, method, n)`` puts exactly one draw between consecutive quantiles
    ``quantile(k / n)``, in order, so the batch covers the distribution evenly; and the
    stratified draws have the law of ``sample`` (two-sample KS test over many batches)."""
    method = EDM(times=times)
    n = 64
    t = np.asarray(times.stratified(jr.key(3), method, n), np.float64)
    edges = np.asarray(times.quantile(jnp.arange(n + 1) / n, method), np.float64)
    assert t.shape == (n,) and np.all(np.isfinite(t))
    assert np.all(edges[:-1] <= t) and np.all(t <= edges[1:])
    pooled = np.concatenate(
        [np.asarray(times.stratified(k, method, n)) for k in jr.split(jr.key(4), 200)]
    )
    iid = np.asarray(times.sample(jr.key(5), method, (pooled.size,)))
    assert scipy.stats.ks_2samp(pooled, iid).pvalue > 1e-3


# Times at which to invert the ratio: near t_min, the middle and near 1.
INVERSION_TIMES = np.concatenate([[1e-3, 1e-2], np.linspace(0.05, 0.95, 19), [0.99]])


@pytest.mark.parametrize("method", ALL_METHODS, ids=IDS)
def test_time_of_log_ratio_inverts_the_log_ratio(method):
    """time_of_log_ratio(log(sigma(t) / alpha(t))) = t, and beyond the path's range it gives
    the ends. VE, FM and EDM have closed forms, VP bisects; each closed form agrees with the
    bisection."""
    overrides = type(method).time_of_log_ratio is not AbstractMethod.time_of_log_ratio
    assert overrides == (not isinstance(method, VPSDE))
    t = INVERSION_TIMES.astype(np.float32)
    log_ratio = jnp.asarray(_log_ratio(method, t), jnp.float32)
    back = np.asarray(method.time_of_log_ratio(log_ratio))
    # float32: |log_ratio| <= 9.3 here carries an absolute error of ~1e-6, and
    # |d t / d log_ratio| <= 0.25 on every path (FM's maximum), so t moves by < 3e-7.
    np.testing.assert_allclose(back, t, rtol=1e-5, atol=2e-6)
    # The generic bisection, one time at a time (as training draws them), agrees.
    bisected = jax.vmap(lambda r: bisect_time(method, r))(log_ratio)
    np.testing.assert_allclose(np.asarray(bisected), t, rtol=1e-5, atol=2e-6)
    # Beyond the ends (FM's range is every real number, so its ends are never passed).
    if not isinstance(method, FlowMatching):
        ends = np.asarray(method.time_of_log_ratio(jnp.asarray([-30.0, 30.0])))
        np.testing.assert_allclose(ends, [method.t_min, 1.0], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "method",
    [
        VESDE(sigma_max=20.0, times=LogitNormalTimes(0.5, 1.5)),
        VPSDE(beta_max=15.0, times=LogNormalNoise(-0.5, 1.0)),
        FlowMatching(times=LogitNormalTimes(-0.2, 0.8)),
        EDM(sigma_data=0.5, times=UniformTimes()),
        EDM(times=LogNormalNoise(-1.0, 1.5)),
    ],
    ids=["VESDE", "VPSDE", "FlowMatching", "EDM-uniform", "EDM-lognormal"],
)
def test_config_with_times_rebuilds_the_method(method):
    """method.config (also through JSON, as saved) rebuilds the same method, its training-time
    distribution included."""
    config = method.config
    assert config["class"] == type(method).__name__
    assert config["times"]["class"] == type(method.times).__name__
    assert AbstractMethod.from_config(config) == method
    assert AbstractMethod.from_config(json.loads(json.dumps(config))) == method
    assert AbstractMethod.from_config(config) != eqx.tree_at(
        lambda m: m.times, method, LogitNormalTimes(3.0, 2.0)
    )


@pytest.mark.parametrize("cls", [LogitNormalTimes, LogNormalNoise])
@pytest.mark.parametrize("std", [0.0, -1.0])
def test_times_refuse_a_non_positive_std(cls, std):
    with pytest.raises(ValueError, match="std"):
        cls(0.0, std)


def test_from_config_refuses_an_unknown_class():
    with pytest.raises(ValueError, match="Unknown class"):
        AbstractMethod.from_config({"class": "DDPM"})
