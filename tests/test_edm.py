"""EDM (Karras et al. 2022): schedule, preconditioning, loss weighting, training noise levels
and the stochastic Heun sampler, checked against hand values, closed forms and the exact
denoiser of a Gaussian.

For a Gaussian the denoiser is affine, so Karras' sampler is a linear recursion whose law
(`edm_sampler_law`) is known exactly: the sampler's draws are compared with that law within 5
standard errors, and with the true conditional within 5 standard errors plus the measured
discretisation budget below.
"""

import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import gensbi_eqx as gs
from gensbi_eqx.methods import EDM, VESDE, AbstractDenoiser, AbstractMethod, LogNormalNoise
from gensbi_eqx.methods._base import network_output
from gensbi_eqx.models import AbstractModel
from gensbi_eqx.samplers import EDMSampler
from gensbi_eqx.sampling import sample_conditionals

from gaussian_oracle import (
    assert_gaussian_moments,
    continuous_sampler_law,
    edm_sampler_law,
    gaussian_conditional,
    GaussianDenoiser,
)

METHOD = EDM()
INF = math.inf


# ---------------------------------------------------------------- schedule


@pytest.mark.parametrize(
    "method", [EDM(), EDM(sigma_min=0.01, sigma_max=10.0, rho=3.0)], ids=["default", "custom"]
)
def test_schedule_endpoints_inverse_and_karras_grid(method):
    """sigma(0) = sigma_min, sigma(1) = sigma_max, time_of_sigma inverts sigma, and a uniform
    grid in t is Karras' rho schedule."""
    np.testing.assert_allclose(method.sigma(0.0), method.sigma_min, rtol=1e-6)
    np.testing.assert_allclose(method.sigma(1.0), method.sigma_max, rtol=1e-6)
    sigmas = np.geomspace(method.sigma_min, method.sigma_max, 25).astype(np.float32)
    np.testing.assert_allclose(method.sigma(method.time_of_sigma(sigmas)), sigmas, rtol=1e-5)
    t = np.linspace(0.0, 1.0, 25, dtype=np.float32)
    np.testing.assert_allclose(method.time_of_sigma(method.sigma(t)), t, atol=1e-6)

    n = 18
    i = np.arange(n)
    inv_rho = 1 / method.rho
    karras = (
        method.sigma_max**inv_rho
        + i / (n - 1) * (method.sigma_min**inv_rho - method.sigma_max**inv_rho)
    ) ** method.rho
    np.testing.assert_allclose(method.sigma(jnp.linspace(1.0, 0.0, n)), karras, rtol=1e-5)


def test_path_and_prior():
    """alpha = 1, sigma as scheduled, and sampling starts at sqrt(sigma_data^2 + sigma_max^2)."""
    method = EDM(sigma_data=0.5)
    t = jnp.linspace(0.0, 1.0, 11)
    alpha, sigma = jax.vmap(method.alpha_sigma)(t)
    np.testing.assert_array_equal(alpha, 1.0)
    np.testing.assert_array_equal(sigma, method.sigma(t))
    np.testing.assert_allclose(method.prior_std(), math.sqrt(0.25 + 80.0**2), rtol=1e-6)


# ---------------------------------------------------------------- preconditioning


# (sigma_data, sigma, c_skip, c_out, c_in, c_noise), worked out by hand.
HAND_VALUES = [
    (1.0, 1.0, 0.5, 1 / math.sqrt(2), 1 / math.sqrt(2), 0.0),
    (1.0, 2.0, 0.2, 2 / math.sqrt(5), 1 / math.sqrt(5), math.log(2) / 4),
    (0.5, 0.5, 0.5, 0.25 / math.sqrt(0.5), 1 / math.sqrt(0.5), math.log(0.5) / 4),
    (0.5, 1.5, 0.1, 0.75 / math.sqrt(2.5), 1 / math.sqrt(2.5), math.log(1.5) / 4),
]


@pytest.mark.parametrize("sigma_data, sigma, c_skip, c_out, c_in, c_noise", HAND_VALUES)
def test_preconditioning_matches_hand_values(sigma_data, sigma, c_skip, c_out, c_in, c_noise):
    """c_skip, c_out, c_in, c_noise at a given sigma; input_scale is c_in, noise_input c_noise."""
    method = EDM(sigma_data=sigma_data)
    t = method.time_of_sigma(sigma)
    got = method.preconditioning(t)
    np.testing.assert_allclose(got, (c_skip, c_out, c_in, c_noise), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(method.input_scale(t), got[2])
    np.testing.assert_array_equal(method.noise_input(t), got[3])


class _Probe(AbstractModel):
    """Returns what it is given: the noised tokens, or the noise level on every token."""

    num_scalars: int = eqx.field(static=True)
    show_noise_level: bool = eqx.field(static=True)

    def __call__(self, t, x, condition_mask, *, edge_mask=None):
        return jnp.full_like(x, t) if self.show_noise_level else x

    @property
    def config(self) -> dict[str, Any]:
        return {"num_scalars": self.num_scalars}


@pytest.mark.parametrize("method", [EDM(sigma_data=0.5), VESDE()], ids=["EDM", "VESDE"])
def test_network_sees_scaled_tokens_and_encoded_noise_level(method, getkey):
    """network_output hands the model c_in y on latent tokens, clean observed tokens and
    noise_input(t): c_noise for EDM, t itself for the other methods."""
    t = jnp.asarray(0.6)
    y = jr.normal(getkey(), (4,))
    mask = jnp.array([True, False, False, True])
    tokens = network_output(_Probe(4, False), method, t, y, mask)
    np.testing.assert_allclose(tokens, jnp.where(mask, y, method.input_scale(t) * y), rtol=1e-6)
    level = network_output(_Probe(4, True), method, t, y, mask)
    expected = jnp.log(method.sigma(t)) / 4 if isinstance(method, EDM) else t
    np.testing.assert_allclose(level, jnp.full(4, expected), rtol=1e-6)


@pytest.mark.parametrize("sigma_data", [1.0, 0.5])
def test_denoise_inverts_target_at_every_noise_level(sigma_data, getkey):
    """denoise(target(x0, eps, t), t, x0 + sigma eps) = (x0, eps), from sigma_min to sigma_max."""
    method = EDM(sigma_data=sigma_data)
    x0, eps = 2 * jr.normal(getkey(), (6,)), jr.normal(getkey(), (6,))
    for t in np.linspace(0.0, 1.0, 11, dtype=np.float32):
        y = x0 + method.sigma(t) * eps
        x0_hat, eps_hat = method.denoise(method.target(x0, eps, t), t, y)
        np.testing.assert_allclose(x0_hat, x0, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(eps_hat, eps, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("sigma_data", [1.0, 0.5])
def test_unit_loss_on_output_is_edm_weighted_denoiser_loss(sigma_data, getkey):
    """(F - target)^2 = lambda(sigma) (D - x0)^2 with D the denoiser read from F and
    lambda = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2: the shared unit-weight loss is
    EDM's weighted loss."""
    method = EDM(sigma_data=sigma_data)
    x0, eps, output = (jr.normal(getkey(), (6,)) for _ in range(3))
    for sigma in (0.01, 0.2, 1.0, 5.0, 80.0):
        t = method.time_of_sigma(sigma)
        sigma = method.sigma(t)
        y = x0 + sigma * eps
        unit = (output - method.target(x0, eps, t)) ** 2
        x0_hat, _ = method.denoise(output, t, y)
        weight = (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2
        # float32: D - x0 = c_out (F - target) is a difference of O(1) numbers, so its relative
        # error is ~1e-7 / (c_out |F - target|); squared, up to ~5e-4 at sigma = 0.01.
        np.testing.assert_allclose(unit, weight * (x0_hat - x0) ** 2, rtol=1e-3)


def test_default_times_are_karras_log_normal():
    """EDM trains on log sigma ~ N(-1.2, 1.2^2) unless told otherwise."""
    assert EDM().times == LogNormalNoise(-1.2, 1.2)


def test_sample_time_is_log_normal_in_sigma():
    """log sigma(t) of training times has mean `mean` and std `std`, within 5 standard errors
    (std / sqrt(N) for the mean, std / sqrt(2 N) for the std of a normal sample); clipping
    at sigma_min and sigma_max moves less than 1e-4 of the mass here."""
    times = LogNormalNoise(-0.5, 0.8)
    method = EDM(times=times)
    num = 50_000
    t = method.sample_time(jr.key(0), (num,))
    assert t.shape == (num,)
    assert float(t.min()) >= 0.0 and float(t.max()) <= 1.0
    log_sigma = np.log(np.asarray(method.sigma(t), np.float64))
    assert abs(log_sigma.mean() - times.mean) < 5 * times.std / math.sqrt(num)
    assert abs(log_sigma.std() - times.std) < 5 * times.std / math.sqrt(2 * num)
    # Extreme draws are clipped to the schedule's range.
    extreme = EDM(times=LogNormalNoise(0.0, 20.0)).sample_time(jr.key(1), (1000,))
    assert float(extreme.min()) == 0.0 and float(extreme.max()) == 1.0


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(sigma_min=0.0), "sigma_min"),
        (dict(sigma_min=100.0), "sigma_max"),
        (dict(sigma_data=0.0), "sigma_data"),
        (dict(rho=-1.0), "rho"),
    ],
)
def test_invalid_parameters_raise(kwargs, name):
    with pytest.raises(ValueError, match=name):
        EDM(**kwargs)
    with pytest.raises(ValueError, match="std"):
        EDM(times=LogNormalNoise(-1.2, 0.0))


def test_config_rebuilds_the_method():
    method = EDM(
        sigma_min=0.01, sigma_max=50.0, sigma_data=0.5, rho=5.0, times=LogNormalNoise(-1.0, 1.5)
    )
    assert AbstractMethod.from_config(method.config) == method


# ---------------------------------------------------------------- sampler: the Gaussian

MEAN = np.array([0.4, -0.3, 0.6])
COV = np.array([[1.0, 0.6, 0.3], [0.6, 1.0, -0.4], [0.3, -0.4, 1.0]])
# One row per conditioning pattern; latent entries of y_cond are NaN so a leak would show.
MASKS = np.array([[False, False, True], [True, False, False], [False, False, False]])
Y_COND = np.where(MASKS, np.array([[0.0, 0.0, 1.5], [-1.0, 0.0, 0.0], [0.0] * 3]), np.nan).astype(
    np.float32
)
NUM_SAMPLES = 50_000
STEPS = 18

# Measured discretisation of 18-step Heun on these conditionals (`edm_sampler_law` against the
# exact conditional; conditional variances 0.64-1, smallest eigenvalue 0.12):
# - no churn: mean off by <= 0.0115, almost all of it the start N(0, 80^2) missing the
#   conditional mean (the continuous-time ODE law is off by 0.0110 already); (co)variances
#   too large by <= 9.3% of sqrt(S_ii S_jj).
# - s_churn = 10 (gamma = sqrt(2) - 1 at every level): churn forgets the start, mean off by
#   <= 3e-4, but each step covers a wider range of noise: (co)variances too large by <= 22.6%.
# Budgets (mean, relative covariance), checked against the exact law in the test:
CHURNS = {
    "no-churn": ((0.0, 0.0, INF, 1.0), (0.015, 0.10)),
    "churn10": ((10.0, 0.0, INF, 1.0), (1e-3, 0.25)),
}
KEY = jr.key(0)


def _conditionals():
    for b in range(len(MASKS)):
        yield b, *gaussian_conditional(MEAN, COV, MASKS[b], Y_COND[b])


@pytest.fixture(scope="module")
def draws():
    """``draws(name)``: ``NUM_SAMPLES`` draws of every row with churn setting ``name``."""
    cache = {}

    def _get(name):
        if name not in cache:
            cache[name] = sample_conditionals(
                KEY,
                GaussianDenoiser(MEAN, COV, METHOD),
                jnp.asarray(Y_COND),
                jnp.asarray(MASKS),
                NUM_SAMPLES,
                EDMSampler(STEPS, *CHURNS[name][0]),
            )
        return cache[name]

    return _get


@pytest.mark.parametrize("name", CHURNS)
def test_edm_sampler_matches_gaussian_conditionals(name, draws):
    """Latent draws have the exact law of the 18-step sampler (5 standard errors), and the
    conditional's mean and covariance within 5 standard errors plus the stated budget."""
    (s_churn, s_min, s_max, s_noise), (mean_budget, cov_budget) = CHURNS[name]
    samples = np.asarray(draws(name))
    assert samples.shape == (NUM_SAMPLES, len(MASKS), 3)
    for b, cond_mean, cond_cov in _conditionals():
        latent = samples[:, b][:, ~MASKS[b]]
        law_mean, law_cov = edm_sampler_law(
            METHOD, cond_mean, cond_cov, STEPS, s_churn, s_min, s_max, s_noise
        )
        sd = np.sqrt(np.diag(cond_cov))
        assert np.abs(law_mean - cond_mean).max() <= mean_budget
        assert (np.abs(law_cov - cond_cov) / np.outer(sd, sd)).max() <= cov_budget
        assert_gaussian_moments(latent, law_mean, law_cov, 0.0, 0.0, f"{name} row {b}, exact law")
        assert_gaussian_moments(
            latent, cond_mean, cond_cov, mean_budget, cov_budget, f"{name} row {b}, conditional"
        )


def test_exact_sampler_law_converges():
    """A check of the reference itself: with many steps the no-churn law tends to the
    probability-flow ODE's closed-form law, and with churn to the conditional (churn forgets
    the mismatched start)."""
    for _, cond_mean, cond_cov in _conditionals():
        ode_mean, ode_cov = continuous_sampler_law(METHOD, gs.ODE(), cond_mean, cond_cov)
        law_mean, law_cov = edm_sampler_law(METHOD, cond_mean, cond_cov, 2000)
        np.testing.assert_allclose(law_mean, ode_mean, atol=1e-5)
        np.testing.assert_allclose(law_cov, ode_cov, atol=1e-4)
        law_mean, law_cov = edm_sampler_law(METHOD, cond_mean, cond_cov, 2000, s_churn=10.0)
        np.testing.assert_allclose(law_mean, cond_mean, atol=1e-4)
        np.testing.assert_allclose(law_cov, cond_cov, atol=1e-4)


@pytest.mark.parametrize("name", CHURNS)
def test_observed_entries_returned_exactly(name, draws):
    samples = draws(name)
    expected = jnp.broadcast_to(jnp.asarray(Y_COND), samples.shape)
    mask = jnp.broadcast_to(jnp.asarray(MASKS), samples.shape)
    assert jnp.array_equal(jnp.where(mask, samples, 0.0), jnp.where(mask, expected, 0.0))


class _Recording(AbstractDenoiser):
    """A denoiser that reports the noise level of every evaluation to ``record``."""

    inner: GaussianDenoiser
    record: list = eqx.field(static=True)

    @property
    def method(self):
        return self.inner.method

    def __call__(self, t, y, condition_mask):
        jax.debug.callback(lambda s: self.record.append(float(s)), self.method.sigma(t), ordered=True)
        return self.inner(t, y, condition_mask)


@pytest.mark.parametrize("steps", [1, 2, 5])
def test_heun_evaluates_at_karras_levels(steps):
    """Without churn the denoiser runs 2 steps - 1 times, at sigma_0, then (sigma_{i+1},
    sigma_{i+1}) for the Heun correction and the next step, ending with one Euler step at
    sigma_{N-1}."""
    record = []
    denoiser = _Recording(GaussianDenoiser(MEAN, COV, METHOD), record)
    EDMSampler(steps=steps)(KEY, denoiser, jnp.asarray(Y_COND[0]), jnp.asarray(MASKS[0]))
    jax.effects_barrier()
    sigmas = np.asarray(METHOD.sigma(jnp.linspace(1.0, 0.0, steps)))
    expected = [sigmas[0]] + [s for s in sigmas[1:] for _ in range(2)]
    assert len(record) == 2 * steps - 1
    np.testing.assert_allclose(record, expected, rtol=1e-5)


def test_churn_raises_the_noise_level_inside_its_window():
    """Churn evaluates at sigma_i (1 + gamma) only where s_min <= sigma_i <= s_max."""
    record = []
    denoiser = _Recording(GaussianDenoiser(MEAN, COV, METHOD), record)
    steps, s_churn, s_min, s_max = 5, 1.0, 0.05, 50.0
    sampler = EDMSampler(steps=steps, s_churn=s_churn, s_min=s_min, s_max=s_max)
    sampler(KEY, denoiser, jnp.asarray(Y_COND[0]), jnp.asarray(MASKS[0]))
    jax.effects_barrier()
    sigmas = np.asarray(METHOD.sigma(jnp.linspace(1.0, 0.0, steps)), np.float64)
    hat = np.where((s_min <= sigmas) & (sigmas <= s_max), sigmas * (1 + s_churn / steps), sigmas)
    # Each step evaluates at its raised level first, then (Heun) at the next level.
    np.testing.assert_allclose(record[0::2], hat, rtol=1e-5)
    np.testing.assert_allclose(record[1::2], sigmas[1:], rtol=1e-5)


def test_batched_sampling_does_not_retrace_on_new_conditions():
    """EDMSampler batched over conditions; new observations and masks of the same shapes
    reuse the compiled sampler."""
    denoiser = GaussianDenoiser(MEAN, COV, METHOD)
    sampler = EDMSampler()
    first = sample_conditionals(KEY, denoiser, jnp.asarray(Y_COND), jnp.asarray(MASKS), 8, sampler)
    assert first.shape == (8, len(MASKS), 3) and np.isfinite(np.asarray(first)).all()
    traces = eqx.debug.get_num_traces(sample_conditionals)
    other_mask = MASKS[::-1].copy()
    other_y = np.where(other_mask, np.float32(0.7), np.float32(np.nan))
    again = sample_conditionals(
        KEY, denoiser, jnp.asarray(other_y), jnp.asarray(other_mask), 8, EDMSampler()
    )
    assert eqx.debug.get_num_traces(sample_conditionals) == traces
    assert np.isfinite(np.asarray(again)).all()


# ---------------------------------------------------------------- refusals


def test_edm_sampler_refuses_other_methods():
    denoiser = GaussianDenoiser(MEAN, COV, VESDE())
    with pytest.raises(ValueError, match="EDM"):
        EDMSampler()(KEY, denoiser, jnp.asarray(Y_COND[0]), jnp.asarray(MASKS[0]))


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(steps=0), "steps"),
        (dict(s_churn=-1.0), "s_churn"),
        (dict(s_churn=INF), "s_churn"),
        (dict(s_min=2.0, s_max=1.0), "s_min"),
        (dict(s_min=-1.0), "s_min"),
        (dict(s_noise=-0.5), "s_noise"),
    ],
)
def test_bad_settings_raise(settings, message):
    """Settings are checked when the sampler is built."""
    with pytest.raises(ValueError, match=message):
        EDMSampler(**settings)


def test_churn_belongs_to_the_edm_sampler():
    """Churn is a setting of EDMSampler only: the probability-flow ODE has no such option."""
    with pytest.raises(TypeError, match="s_churn"):
        gs.ODE(s_churn=1.0)
