"""Probability paths, SDE coefficients, targets and the denoising loss, checked against
closed forms (a Gaussian data distribution has an exact denoiser)."""

from typing import Any

import equinox as eqx
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import jax.random as jr
import jax.scipy.stats as jss
import numpy as np
import pytest
from hypothesis import given, settings
from jaxtyping import Array, Bool, Float

from gensbi_eqx.methods import (
    EDM,
    METHODS,
    VESDE,
    VPSDE,
    AbstractMethod,
    FlowMatching,
    network_output,
)
from gensbi_eqx.models import AbstractModel
from gensbi_eqx.training import batch_loss, example_loss


ALL_METHODS = [VESDE(), VPSDE(), FlowMatching(), EDM()]
IDS = [type(m).__name__ for m in ALL_METHODS]
# EDM draws log-normal noise levels instead (tests/test_edm.py).
UNIFORM_TIME = [m for m in ALL_METHODS if not isinstance(m, EDM)]
MID_TIMES = np.linspace(0.05, 0.95, 19)
DATA_MEAN, DATA_STD = 0.5, 0.8  # x0 ~ N(DATA_MEAN, DATA_STD^2), independently per node


def test_registry_covers_every_method():
    """The parametrised registry holds one instance of every method the package exports."""
    assert sorted(IDS) == sorted(METHODS)


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


@pytest.mark.parametrize("method", UNIFORM_TIME, ids=lambda m: type(m).__name__)
def test_sample_time_is_uniform_on_range(method, getkey):
    """sample_time draws lie in [t_min, 1] with the mean of U[t_min, 1]."""
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
_example_losses = eqx.filter_jit(
    jax.vmap(example_loss, in_axes=(None, None, 0, 0, 0))
)


def _expected_oracle_loss(method) -> float:
    """E_t[Var(target | y_t)] over the method's training times, by quadrature of the closed form:
    in t for t ~ U[t_min, 1]; for EDM in z for log sigma = p_mean + p_std z, z ~ N(0, 1), with
    sigma clipped to [sigma_min, sigma_max] as in `sample_time`."""
    if isinstance(method, EDM):
        z = np.linspace(-10.0, 10.0, 40_001)
        sigma = np.clip(np.exp(method.p_mean + method.p_std * z), method.sigma_min, method.sigma_max)
        t = jnp.asarray(method.time_of_sigma(sigma))
        weights = np.exp(-0.5 * z**2) / np.sqrt(2 * np.pi)
        grid = z
    else:
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
    losses = np.asarray(_example_losses(oracle, method, x0, masks, jr.split(key, num)), np.float64)
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
        np.testing.assert_array_equal(
            example_loss(filled, method, x0_single, mask, k), example_loss(oracle, method, x0_single, mask, k)
        )
