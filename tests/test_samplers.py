"""Samplers driven by the exact denoiser of a Gaussian joint, checked against closed forms.

The joint is 4-dimensional: ``theta ~ N(mu, I_2)`` and ``x = M theta + 0.5 noise``, so every
conditional is Gaussian with known mean and covariance (``gaussian_oracle``). With an exact
denoiser the only errors left are the sampler's: Monte Carlo error (bounded by 5 standard
errors computed from the sample size), time discretisation (a stated allowance), and the known
mismatch between the sampler's starting distribution ``N(0, prior_std^2)`` and the noised
conditional at ``t = 1``, which is computed in closed form and built into the expected answer
(``continuous_sampler_law``) rather than absorbed into a tolerance.
"""

import contextlib

import jax
import jax.numpy as jnp
import jax.random as jr
import jaxtyping
import numpy as np
import pytest

import gensbi_eqx as gs
from gensbi_eqx.methods import EDM
from gensbi_eqx.sampling import sample_conditionals

# tests/ has no __init__.py, so pytest (rootdir import mode "prepend") puts it on sys.path.
from gaussian_oracle import (
    assert_gaussian_moments,
    continuous_sampler_law,
    gaussian_conditional,
    GaussianDenoiser,
)


# ---------------------------------------------------------------- the Gaussian joint

_MU_THETA = np.array([0.5, -0.5])
_M = np.array([[1.0, 0.5], [-0.4, 0.8]])
MEAN = np.concatenate([_MU_THETA, _M @ _MU_THETA])
COV = np.block([[np.eye(2), _M.T], [_M, _M @ _M.T + 0.25 * np.eye(2)]])

# Nodes are (theta_0, theta_1, x_0, x_1). One batch, one row per conditioning pattern; latent
# entries of y_cond are NaN, so any leak of them into the samples shows up.
ROWS = ("posterior", "likelihood", "theta0 and x1 observed", "only theta0 observed")
MASKS = np.array(
    [
        [False, False, True, True],
        [True, True, False, False],
        [True, False, False, True],
        [True, False, False, False],
    ]
)
Y_COND = np.where(
    MASKS,
    np.array([[0.0, 0.0, 1.2, -0.4], [0.8, -1.0, 0.0, 0.0], [-0.6, 0.0, 0.0, 0.9], [1.1, 0, 0, 0]]),
    np.nan,
).astype(np.float32)


# ---------------------------------------------------------------- sampler configurations

# Discretisation allowances, added to the 5-standard-error Monte Carlo bound:
# - "sde" (Euler-Maruyama, 500 steps): weak order 1. For this Gaussian the EM recursion is
#   linear and its law can be iterated exactly; it is off the continuous-time law by at most
#   1.1e-3 in the mean and 0.2% in the variances. Allowance: mean 5e-3, (co)variance 1e-2.
# - "ode" (Tsit5 at rtol = atol = 1e-5, Heun with 50-100 steps): every draw is within
#   delta <= 2e-3 of a tightly solved ODE (rtol = atol = 1e-7) from the same start, which moves
#   the mean by at most delta and each standard deviation (>= 0.42 here) by at most delta, so
#   the variance by at most 2 delta / 0.42 < 1e-2 relative. Allowance: mean 2e-3,
#   (co)variance 1e-2. For EDM the Tsit5 draws are within 4e-5 of the tight solve.
# - "edm" (Karras' Heun sampler, 64 steps, no churn): also a linear recursion for a Gaussian,
#   iterated exactly by `edm_sampler_law`; it is off the ODE's continuous-time law by at most
#   3e-5 in the mean and 0.8% in the (co)variances (0.3% at 100 steps, ~12% at the default 18;
#   see tests/test_edm.py). Allowance: mean 1e-3, (co)variance 1e-2.
# - EDM with "sde" (500 Euler-Maruyama steps, uniform in EDM's t): by the same exact iteration,
#   within 2e-4 of the continuous law in mean and variance; the "sde" allowance covers it.
_ALLOWANCE = {"sde": (5e-3, 1e-2), "ode": (2e-3, 1e-2), "edm": (1e-3, 1e-2)}

# (method, sampler, steps, num_samples). SDE draws cost ~25 times more than ODE draws.
CONFIGS = {
    "VESDE-sde": (gs.VESDE(), "sde", None, 10_000),
    "VESDE-ode-tsit5": (gs.VESDE(), "ode", None, 20_000),
    "VPSDE-sde": (gs.VPSDE(), "sde", None, 10_000),
    "VPSDE-ode-heun100": (gs.VPSDE(), "ode", 100, 20_000),
    "FlowMatching-ode-tsit5": (gs.FlowMatching(), "ode", None, 20_000),
    "FlowMatching-ode-heun50": (gs.FlowMatching(), "ode", 50, 20_000),
    "EDM-sde": (EDM(), "sde", None, 10_000),
    "EDM-ode-tsit5": (EDM(), "ode", None, 20_000),
    "EDM-edm-heun64": (EDM(), "edm", 64, 20_000),
}
KEY = jr.key(0)


def _draw(name, key=KEY):
    method, sampler, steps, num_samples = CONFIGS[name]
    return sample_conditionals(
        key,
        GaussianDenoiser(MEAN, COV, method),
        jnp.asarray(Y_COND),
        jnp.asarray(MASKS),
        num_samples,
        sampler=sampler,
        steps=steps,
    )


@pytest.fixture(scope="module")
def draws():
    """``draws(name)``: the samples of configuration ``name`` with ``KEY``, computed once."""
    cache = {}

    def _get(name):
        if name not in cache:
            cache[name] = _draw(name)
        return cache[name]

    return _get


# ---------------------------------------------------------------- the oracle itself


@pytest.mark.parametrize(
    "method", [gs.VESDE(), gs.VPSDE(), gs.FlowMatching(), EDM()], ids=lambda m: type(m).__name__
)
@pytest.mark.parametrize("t", [0.3, 1.0])
def test_gaussian_denoiser_is_consistent(method, t, getkey):
    """The oracle reproduces y from its estimates and its score is grad log N(a mean, C)."""
    mask = jnp.asarray(MASKS[2])
    y = jr.normal(getkey(), (4,))
    t = jnp.asarray(t)
    denoiser = GaussianDenoiser(MEAN, COV, method)
    x0, eps = denoiser(t, y, mask)
    alpha, sigma = method.alpha_sigma(t)
    a = jnp.where(mask, 1.0, alpha)
    s = jnp.where(mask, 0.0, sigma)
    np.testing.assert_allclose(a * x0 + s * eps, y, atol=1e-5)
    np.testing.assert_allclose(jnp.where(mask, x0, 0.0), jnp.where(mask, y, 0.0), atol=1e-5)
    c = np.diag(np.asarray(a)) @ COV @ np.diag(np.asarray(a)) + np.diag(np.asarray(s) ** 2)
    score = -np.linalg.solve(c, np.asarray(y) - np.asarray(a) * MEAN)
    latent = ~MASKS[2]
    np.testing.assert_allclose(
        np.asarray(denoiser.score(t, y, mask))[latent], score[latent], rtol=1e-4, atol=1e-5
    )


# ---------------------------------------------------------------- accuracy


@pytest.mark.parametrize("name", CONFIGS)
def test_samples_match_exact_conditionals(name, draws):
    """Every row's latent samples have the exact conditional's mean and covariance."""
    method, sampler, _, num_samples = CONFIGS[name]
    samples = np.asarray(draws(name))
    assert samples.shape == (num_samples, len(ROWS), 4)
    mean_allowance, cov_allowance = _ALLOWANCE[sampler]
    for b, row in enumerate(ROWS):
        latent = ~MASKS[b]
        cond_mean, cond_cov = gaussian_conditional(MEAN, COV, MASKS[b], Y_COND[b])
        # The exact law of the exactly integrated sampler: the conditional itself for flow
        # matching; for VE/VP shifted by the closed-form prior mismatch (up to ~0.05 in the
        # mean for the ODE with these defaults, see `continuous_sampler_law`; ~0.01 for EDM,
        # whose start N(0, 80^2) is off by the conditional mean in units of sigma_max = 80).
        law_mean, law_cov = continuous_sampler_law(method, sampler, cond_mean, cond_cov)
        if isinstance(method, gs.FlowMatching):
            np.testing.assert_allclose(law_mean, cond_mean, atol=1e-12)
            np.testing.assert_allclose(law_cov, cond_cov, atol=1e-12)
        assert_gaussian_moments(
            samples[:, b][:, latent],
            law_mean,
            law_cov,
            mean_allowance,
            cov_allowance,
            f"{name}, {row}",
        )


@pytest.mark.parametrize("name", CONFIGS)
def test_observed_entries_returned_exactly(name, draws):
    """Observed entries come back bit-identical to y_cond in every draw."""
    samples = draws(name)
    expected = jnp.broadcast_to(jnp.asarray(Y_COND), samples.shape)
    mask = jnp.broadcast_to(jnp.asarray(MASKS), samples.shape)
    assert jnp.array_equal(jnp.where(mask, samples, 0.0), jnp.where(mask, expected, 0.0))


# ---------------------------------------------------------------- determinism and errors


def test_same_key_same_samples_other_key_other_samples(draws):
    """The same key reproduces the samples exactly; another key changes every latent draw."""
    name = "FlowMatching-ode-heun50"  # reuses the compiled sampler of the accuracy test
    first = draws(name)
    assert jnp.array_equal(_draw(name, KEY), first)
    other = np.asarray(_draw(name, jr.key(1)))
    assert np.all(other[:, ~MASKS] != np.asarray(first)[:, ~MASKS])


def test_flow_matching_refuses_sde():
    """FlowMatching with sampler='sde' raises ValueError."""
    denoiser = GaussianDenoiser(MEAN, COV, gs.FlowMatching())
    with pytest.raises(ValueError, match="no reverse SDE"):
        sample_conditionals(KEY, denoiser, jnp.asarray(Y_COND), jnp.asarray(MASKS), 4, "sde")


def test_unknown_sampler_raises():
    """An unknown sampler string is refused before anything is sampled."""
    denoiser = GaussianDenoiser(MEAN, COV, gs.VESDE())
    # The function raises ValueError itself; under the suite's runtime type checking the
    # `Literal["sde", "ode", "edm"]` annotation rejects the string first, with a TypeCheckError.
    with pytest.raises((ValueError, jaxtyping.TypeCheckError), match="sampler"):
        sample_conditionals(KEY, denoiser, jnp.asarray(Y_COND), jnp.asarray(MASKS), 4, "euler")


# ---------------------------------------------------------------- recompilation

_TRACE_EVENT = "/jax/core/compile/jaxpr_trace_duration"


@contextlib.contextmanager
def _count_traces():
    """Yields a list that collects the name of every function jit traces inside the block."""
    # Independent of the library's own counter (`eqx.debug.get_num_traces`, used in
    # test_contract.py): counting traces of the denoiser does not work, as diffrax's inner jit
    # caches its trace. JAX records an event for every top-level trace through its public
    # monitoring hooks; a cache hit records none.
    events = []

    def listener(event, duration_secs, **kwargs):
        if event == _TRACE_EVENT:
            events.append(kwargs.get("fun_name"))

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield events
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


def test_new_conditions_of_same_shape_do_not_retrace():
    """New observations, masks and denoiser arrays of the same shapes reuse the compiled sampler."""
    # A cheap configuration of its own keeps this fast.
    method = gs.FlowMatching()
    denoiser = GaussianDenoiser(MEAN, COV, method)
    other_denoiser = GaussianDenoiser(MEAN + 1.0, 2.0 * COV, method)
    y_cond, mask = jnp.asarray(Y_COND), jnp.asarray(MASKS)
    other_mask = jnp.asarray(MASKS[::-1])
    # Strongly typed float32 like Y_COND: a weakly typed array (e.g. `jnp.where(m, 2.5, -1.0)`)
    # is a different abstract value and does retrace.
    other_y = jnp.asarray(np.where(MASKS[::-1], np.float32(2.5), np.float32(-1.0)))

    def run(denoiser, y_cond, mask, num_samples=8):
        out = sample_conditionals(KEY, denoiser, y_cond, mask, num_samples, "ode", steps=10)
        return out.block_until_ready()

    with _count_traces() as first:
        run(denoiser, y_cond, mask)
    assert len(first) > 0  # the counter sees the first compilation
    with _count_traces() as repeated:
        run(denoiser, other_y, other_mask)
        run(other_denoiser, other_y, other_mask)
    assert repeated == []
    with _count_traces() as new_count:
        run(denoiser, y_cond, mask, num_samples=9)  # a compile-time constant: must retrace
    assert len(new_count) > 0
