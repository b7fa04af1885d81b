"""Log-densities by the probability-flow ODE, checked with the exact denoiser of a Gaussian.

With an exact denoiser, ``log_prob`` is exactly (up to solver error) the log-density of the law
that the probability-flow sampler returns: the start ``N(0, prior_std^2 I)`` pushed from
``t = 1`` to ``t_min``. For a Gaussian that law is known in closed form
(``continuous_sampler_law``), and it differs from the true conditional by two approximations,
both computed in closed form here rather than absorbed into a tolerance:

- terminal density: ``N(0, prior_std^2)`` instead of the noised conditional at ``t = 1``.
  Exact for flow matching; with the default schedules it moves the log-density at the points
  below by up to 0.17 (VE, sigma_max = 15), 0.21 (VP, alpha(1) = 0.08) and 0.03 (EDM,
  sigma_max = 80);
- lower limit: the density is of ``y_{t_min} = alpha(t_min) x0 + sigma(t_min) eps``, blurred by
  ``sigma(t_min)`` = 0 (FM), 1e-4 (VE), 3e-4 (VP), 2e-3 (EDM); at most 2e-5 here (EDM).

Solver tolerance ``ODE_TOL``: the default solve (Tsit5, rtol = atol = 1e-5) takes at most 15
accepted steps on these problems, each with a local error of at most ``atol + rtol |state|``
<= 1e-5 (1 + 14) on the accumulated divergence (|log-density terms| <= 14; the error of ``y_1``
enters the prior term damped by ``|y_1| / prior_std^2 <= 0.07``), so the global error is at
most ~15 * 1.5e-4 = 2.3e-3. Measured: at most 2e-4 (EDM and VE), 4e-5 (FM, VP). The integrand
itself is exact: in float64 at rtol = atol = 1e-9 ``log_prob`` agrees with the closed-form law
to 5e-9 for all four methods.
"""

import itertools

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from scipy.stats import multivariate_normal

import gensbi_eqx as gs
from gensbi_eqx.methods import EDM
from gensbi_eqx.sampling import ExactTrace, Hutchinson, log_prob

from gaussian_oracle import continuous_sampler_law, gaussian_conditional, GaussianDenoiser


ODE_TOL = 2e-3

# ---------------------------------------------------------------- a correlated 3-node Gaussian

MEAN = np.array([0.3, -0.5, 0.8])
_L = np.array([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [-0.5, 0.4, 0.7]])
COV = _L @ _L.T  # correlations 0.6 (0, 1), -0.53 (0, 2), 0.02 (1, 2)
# Joint (nothing observed), 1-D conditional (two observed), 2-D conditional (one observed).
MASKS = np.array([[False, False, False], [True, False, True], [True, False, False]])
POINTS = np.array([[0.3, -0.5, 0.8], [1.5, 0.2, -0.4], [-1.2, -2.0, 1.9]])
# Every point under every mask: rows (point, mask).
YS = np.repeat(POINTS, len(MASKS), axis=0).astype(np.float32)
ROW_MASKS = np.tile(MASKS, (len(POINTS), 1))

METHODS = {
    "VESDE": gs.VESDE(),
    "VPSDE": gs.VPSDE(),
    "FlowMatching": gs.FlowMatching(),
    "EDM": EDM(),
}


@eqx.filter_jit
def _batched(denoiser, ys, masks):
    """Exact-trace ``log_prob`` over rows; compiled once per method and batch size."""
    return jax.vmap(lambda y, m: log_prob(denoiser, y, m, trace=ExactTrace()))(ys, masks)


@eqx.filter_jit
def _hutchinson_over_keys(denoiser, y, mask, keys):
    """One-probe Hutchinson ``log_prob`` of one point for each key."""
    return jax.vmap(lambda k: log_prob(denoiser, y, mask, trace=Hutchinson(), key=k))(keys)


@pytest.fixture(scope="module")
def evaluated():
    """``evaluated(name)``: ``_batched`` on all rows for method ``name``, computed once."""
    cache = {}

    def _get(name):
        if name not in cache:
            denoiser = GaussianDenoiser(MEAN, COV, METHODS[name])
            cache[name] = np.asarray(_batched(denoiser, jnp.asarray(YS), jnp.asarray(ROW_MASKS)))
        return cache[name]

    return _get


def _references(method, y, mask):
    """``(log N(y_lat; conditional), log N(y_lat; law of the ODE sampler))`` in float64."""
    y = np.asarray(y, dtype=np.float64)
    cond_mean, cond_cov = gaussian_conditional(MEAN, COV, mask, y)
    law_mean, law_cov = continuous_sampler_law(method, gs.ODE(), cond_mean, cond_cov)
    latent = y[~mask]
    return (
        multivariate_normal.logpdf(latent, cond_mean, cond_cov),
        multivariate_normal.logpdf(latent, law_mean, law_cov),
    )


# ---------------------------------------------------------------- accuracy


@pytest.mark.parametrize("name", METHODS)
def test_matches_law_of_the_ode_sampler(name, evaluated):
    """Joint and conditionals: the log-density of the pushed-forward prior, to ODE_TOL."""
    out = evaluated(name)
    assert out.shape == (len(YS),)
    for y, mask, value in zip(YS, ROW_MASKS, out):
        _, law = _references(METHODS[name], y, mask)
        assert abs(value - law) <= ODE_TOL, f"{name}, mask {mask}, y {y}: {value} vs {law}"


@pytest.mark.parametrize("name", METHODS)
def test_matches_analytic_conditional(name, evaluated):
    """Joint and conditionals: the analytic log-density within ODE_TOL plus the closed-form
    terminal-prior and t_min gap, which is exactly zero for flow matching."""
    out = evaluated(name)
    for y, mask, value in zip(YS, ROW_MASKS, out):
        analytic, law = _references(METHODS[name], y, mask)
        gap = abs(law - analytic)
        if name == "FlowMatching":
            assert gap < 1e-12
        else:
            assert gap < 0.25  # the sizes quoted in the module docstring
        assert abs(value - analytic) <= ODE_TOL + gap, (
            f"{name}, mask {mask}, y {y}: {value} vs analytic {analytic} (gap {gap})"
        )


# ---------------------------------------------------------------- Hutchinson


NUM_KEYS = 512
# Rows of `evaluated("VPSDE")` reused here: POINTS[1] under the joint and under MASKS[1].
JOINT_ROW, ONE_LATENT_ROW = 3, 4


def _integrated_jacobian(method):
    """``B``, the latent field's Jacobian integrated over the solve, for the joint of MEAN, COV.

    For the Gaussian the field is linear, and with ``S = U diag(s) U^T`` its Jacobian is
    ``U diag(d/dt log(lam_t) / 2) U^T``, ``lam_t = alpha_t^2 s + sigma_t^2``, so a fixed probe
    integrates ``z^T B z`` with ``B = U diag(log(lam_1 / lam_0) / 2) U^T``, whatever the path of
    ``y``. The exact trace integrates ``tr B``; for symmetric ``B`` and Rademacher ``z``,
    ``Var(z^T B z) = 2 sum_{i != j} B_ij^2``.
    """
    alpha_0, sigma_0 = (float(v) for v in method.alpha_sigma(method.t_min))
    alpha_1, sigma_1 = (float(v) for v in method.alpha_sigma(1.0))
    eigvals, eigvecs = np.linalg.eigh(COV)
    ratio = (alpha_1**2 * eigvals + sigma_1**2) / (alpha_0**2 * eigvals + sigma_0**2)
    return (eigvecs * 0.5 * np.log(ratio)) @ eigvecs.T


def test_hutchinson_is_unbiased(evaluated):
    """The mean of one-probe estimates over many keys matches the exact trace within five
    standard errors of the analytic probe variance plus the tolerance of both solves. Sharper:
    each estimate is the exact value plus ``z^T B z - tr B`` for one of the 8 sign patterns."""
    method = METHODS["VPSDE"]
    denoiser = GaussianDenoiser(MEAN, COV, method)
    exact = evaluated("VPSDE")[JOINT_ROW]
    y, mask = jnp.asarray(YS[JOINT_ROW]), jnp.asarray(ROW_MASKS[JOINT_ROW])
    assert not mask.any()
    estimates = np.asarray(_hutchinson_over_keys(denoiser, y, mask, jr.split(jr.key(0), NUM_KEYS)))

    b = _integrated_jacobian(method)
    signs = np.array(list(itertools.product([-1.0, 1.0], repeat=3)))
    possible = exact + np.einsum("ki,ij,kj->k", signs, b, signs) - np.trace(b)
    distance = np.abs(estimates[:, None] - possible[None, :]).min(axis=1)
    assert distance.max() <= 2 * ODE_TOL, distance.max()

    spread = np.sqrt(2 * np.sum((b - np.diag(np.diag(b))) ** 2))  # 1.15: not vacuous
    assert abs(estimates.std(ddof=1) / spread - 1) < 0.2, (estimates.std(ddof=1), spread)
    error = abs(estimates.mean() - exact)  # measured: 2.2 standard errors
    assert error <= 5 * spread / np.sqrt(NUM_KEYS) + 2 * ODE_TOL, (error, spread)


def test_hutchinson_exact_for_one_latent_entry(evaluated):
    """With one latent entry a Rademacher probe gives z^2 = 1: every estimate is the exact
    trace (reuses the compiled functions of the other tests)."""
    denoiser = GaussianDenoiser(MEAN, COV, METHODS["VPSDE"])
    exact = evaluated("VPSDE")[ONE_LATENT_ROW]
    y, mask = jnp.asarray(YS[ONE_LATENT_ROW]), jnp.asarray(ROW_MASKS[ONE_LATENT_ROW])
    assert int((~mask).sum()) == 1
    estimates = np.asarray(_hutchinson_over_keys(denoiser, y, mask, jr.split(jr.key(1), NUM_KEYS)))
    np.testing.assert_allclose(estimates, exact, atol=2 * ODE_TOL)


# ---------------------------------------------------------------- normalisation

# 2 nodes; VE has the largest terminal mismatch, yet the pushed-forward density is normalised.
NORM_METHOD = gs.VESDE()
NORM_MEAN = np.array([0.4, -0.3])
NORM_COV = np.array([[1.0, 0.7], [0.7, 1.5]])
CHUNK = 512  # one batch size for every grid, so one compilation


def _log_density_on(points, mask):
    denoiser = GaussianDenoiser(NORM_MEAN, NORM_COV, NORM_METHOD)
    points = np.asarray(points, dtype=np.float32)
    n = len(points)
    padded = np.concatenate([points, np.zeros((-n % CHUNK, 2), np.float32)])
    masks = jnp.asarray(np.broadcast_to(mask, padded.shape))
    out = [
        _batched(denoiser, jnp.asarray(padded[i : i + CHUNK]), masks[i : i + CHUNK])
        for i in range(0, len(padded), CHUNK)
    ]
    return np.concatenate([np.asarray(o) for o in out])[:n].astype(np.float64)


# Quadrature: the trapezoid rule on a Gaussian with spacing h is off by ~2 exp(-2 pi^2 s^2/h^2)
# per axis (s: the smallest conditional sd along the axis) plus the mass beyond the grid
# (< 1e-14 at +-8 sd): < 1e-10 for both grids below. What is left is the solver error, whose
# mean under the density is at most ODE_TOL.


def test_one_dimensional_conditional_integrates_to_one():
    """x_0 | x_1 on +-8 conditional sd, 161 points (h = 0.1 sd)."""
    mask = np.array([False, True])
    observed = 1.1
    cond_mean, cond_cov = gaussian_conditional(NORM_MEAN, NORM_COV, mask, np.array([0.0, observed]))
    sd = np.sqrt(cond_cov[0, 0])
    grid = cond_mean[0] + sd * np.linspace(-8.0, 8.0, 161)
    points = np.stack([grid, np.full_like(grid, observed)], axis=1)
    total = np.trapezoid(np.exp(_log_density_on(points, mask)), grid)
    assert abs(total - 1.0) <= ODE_TOL, total


def test_two_dimensional_joint_integrates_to_one():
    """The joint on +-7 marginal sd per axis, 41 x 41 points (h = 0.35 sd, 0.5 of the
    smallest conditional sd)."""
    mask = np.array([False, False])
    sd = np.sqrt(np.diag(NORM_COV))
    axes = [NORM_MEAN[i] + sd[i] * np.linspace(-7.0, 7.0, 41) for i in range(2)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 2)
    density = np.exp(_log_density_on(grid, mask)).reshape(41, 41)
    total = np.trapezoid(np.trapezoid(density, axes[1], axis=1), axes[0])
    assert abs(total - 1.0) <= ODE_TOL, total


# ---------------------------------------------------------------- bad input

_DENOISER = GaussianDenoiser(MEAN, COV, gs.FlowMatching())
_Y = jnp.asarray(YS[0])
_MASK = jnp.asarray(MASKS[1])


def test_hutchinson_needs_a_key():
    with pytest.raises(ValueError, match="`key` is required"):
        log_prob(_DENOISER, _Y, _MASK, trace=Hutchinson())


# Settings are checked where they live: when the trace or the ODE is built. Some are answered
# by the suite's runtime type checking (a TypeCheckError, also a TypeError) first.
@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: Hutchinson(num_probes=0), "num_probes"),
        (lambda: Hutchinson(num_probes=True), "num_probes"),
        (lambda: gs.ODE(rtol=0.0), "rtol"),
        (lambda: gs.ODE(atol=-1e-5), "atol"),
        (lambda: gs.ODE(max_steps=0), "max_steps"),
    ],
    ids=["num_probes", "num_probes bool", "rtol", "atol", "max_steps"],
)
def test_bad_settings_raise(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


# The function raises ValueError or TypeError itself; under the suite's runtime type checking
# the annotations (`AbstractTrace`, `ODE`, " num_scalars" shapes, Bool) reject these first,
# naming the argument, with a TypeCheckError.
@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        ((_Y, _MASK), {"trace": "hutchinson"}, "trace"),
        ((_Y, _MASK), {"ode": gs.SDE(steps=10)}, "ode"),
        ((jnp.stack([_Y, _Y]), jnp.stack([_MASK, _MASK])), {}, "y"),
        ((_Y, _MASK[:2]), {}, "condition_mask"),
        ((_Y, _MASK.astype(float)), {}, "condition_mask"),
    ],
    ids=["trace", "ode", "batched y", "mask shape", "mask dtype"],
)
def test_bad_inputs_raise(args, kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        log_prob(_DENOISER, *args, **kwargs)


def test_not_a_denoiser_raises():
    with pytest.raises(TypeError, match="denoiser"):
        log_prob(lambda t, y, m: (y, y), _Y, _MASK)
