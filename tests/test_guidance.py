"""Guided sampling (interval and linear-inequality constraints) and RePaint resampling, checked
against the exact truncated conditionals of a Gaussian joint.

Nodes are ``(a, b, c)``: ``a`` and ``b`` correlated (0.9), ``c`` independent of both. Two
conditions: nothing observed (the conditional of ``a`` is ``N(0.3, 1)``) and ``b = 1`` observed
(``a | b ~ N(1.38, 0.436^2)``, a posterior narrower than the prior). Constraints bound ``a`` (or
``a - b`` and ``c``), so the exact constrained law of each constrained direction is a truncated
normal with closed-form moments (`truncated_moments`, itself checked against rejection sampling).

With the exact denoiser and Tweedie's variance, the guidance is exact in continuous time for
one constraint direction (or independent ones) on a Gaussian (see ``_guidance``), so the
tolerances below have no allowance for the guidance itself. They are 5 standard errors of the
guided sample mean (``5 sd / sqrt(N)`` with the exact truncated ``sd``) plus the sampler's own
error:

- reverse SDE, Euler-Maruyama with 100 steps: weak order 1; test_samplers.py iterates the EM
  law exactly and finds it within 1.1e-3 of the continuous law in the mean at 500 steps, so
  <= 5.5e-3 at 100. Add the prior mismatch of the VE start (`continuous_sampler_law`, <= 3e-3
  here). Allowance 1e-2 in the mean. Measured with interval guidance at N = 8000: |error| <=
  7e-3 and <= 2.4 standard errors at 100 steps, <= 3.4e-3 at 400 steps; for the linear
  constraint's ``a - b`` at N = 16000: -4.5e-3 at 100 steps, within 2e-3 of 0 at 400 steps --
  the 100-step EM bias, inside the 5.5e-3 bound.
- probability-flow ODE (Tsit5, rtol = atol = 1e-5), flow matching: no prior mismatch; the
  solver allowance of test_samplers.py, 2e-3.

Compile time dominates, so every sampler configuration is compiled once (bounds, scale and
observations are traced: new values reuse the compiled sampler) and draws are cached.
"""

import math

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import gensbi_eqx as gs
from gensbi_eqx.guidance import (
    interval,
    IntervalGuidance,
    linear,
    TweedieVariance,
    UnitVariance,
)
from gensbi_eqx.guidance._guidance import _log_prob_between
from gensbi_eqx.sampling import sample_conditionals

from gaussian_oracle import (
    assert_gaussian_moments,
    continuous_sampler_law,
    gaussian_conditional,
    GaussianDenoiser,
)

INF = math.inf
MEAN = np.array([0.3, -0.2, 0.5])
COV = np.array([[1.0, 0.9, 0.0], [0.9, 1.0, 0.0], [0.0, 0.0, 1.0]])
ROWS = ("nothing observed", "b observed")
MASKS = np.array([[False, False, False], [False, True, False]])
# Latent entries of y_cond are NaN, so any leak of them into the samples shows up.
Y_COND = np.where(MASKS, np.float32(1.0), np.float32(np.nan)).astype(np.float32)
KEY = jr.key(0)
STEPS = 100  # Euler-Maruyama steps of the reverse SDE
SDE = gs.SDE(steps=STEPS)
ODE = gs.ODE()  # adaptive Tsit5, rtol = atol = 1e-5
ALLOWANCE = {"sde": 1e-2, "ode": 2e-3}  # sampler error in the mean, derived above

# Bounds on a: two-sided, and upper-only (3.2 posterior sds below the mean when b is observed).
INTERVALS = {"two-sided": (0.5, 1.5), "upper only": (-INF, 0.0)}


def _bounds(lo, up):
    return np.array([lo, -INF, -INF]), np.array([up, INF, INF])


# ---------------------------------------------------------------- exact references


def _phi(u):
    return math.exp(-0.5 * u * u) / math.sqrt(2 * math.pi) if math.isfinite(u) else 0.0


def _cdf(u):
    return 0.5 * (1 + math.erf(u / math.sqrt(2)))


def truncated_moments(m, s, lo, up):
    """Mean and standard deviation of ``N(m, s^2)`` restricted to ``[lo, up]``."""
    a, b = (lo - m) / s, (up - m) / s
    z = _cdf(b) - _cdf(a)
    pa, pb = _phi(a), _phi(b)
    apa = a * pa if math.isfinite(a) else 0.0
    bpb = b * pb if math.isfinite(b) else 0.0
    mean = m + s * (pa - pb) / z
    var = s * s * (1 + (apa - bpb) / z - ((pa - pb) / z) ** 2)
    return mean, math.sqrt(var)


def conditional_of(row, direction):
    """Mean and sd of ``direction . x0`` under the exact conditional of row ``row``."""
    cond_mean, cond_cov = gaussian_conditional(MEAN, COV, MASKS[row], Y_COND[row])
    full_mean = np.where(MASKS[row], Y_COND[row], 0.0)
    full_mean[~MASKS[row]] = cond_mean
    latent = np.asarray(direction, dtype=float)[~MASKS[row]]
    return float(np.asarray(direction) @ full_mean), float(np.sqrt(latent @ cond_cov @ latent))


def ve_prior_mismatch(row):
    """Bound on how far the VE SDE sampler's law is from the conditional (its start)."""
    cond_mean, cond_cov = gaussian_conditional(MEAN, COV, MASKS[row], Y_COND[row])
    law_mean, _ = continuous_sampler_law(gs.VESDE(), SDE, cond_mean, cond_cov)
    return float(np.max(np.abs(law_mean - cond_mean)))


def test_truncated_reference_is_rejection_sampling():
    """The closed-form truncated moments are what rejection sampling of the exact
    conditional gives (within 5 standard errors of the rejection sample)."""
    rng = np.random.default_rng(0)
    for row in range(2):
        m, s = conditional_of(row, [1.0, 0.0, 0.0])
        draws = m + s * rng.standard_normal(4_000_000)
        for lo, up in INTERVALS.values():
            kept = draws[(draws >= lo) & (draws <= up)]
            mean, sd = truncated_moments(m, s, lo, up)
            assert kept.size > 1000
            assert abs(kept.mean() - mean) <= 5 * sd / math.sqrt(kept.size)
            assert abs(kept.std() - sd) <= 5 * sd / math.sqrt(2 * kept.size)


# ---------------------------------------------------------------- draws, computed once

_CACHE = {}


def _draw(name, make, num_samples, sampler=SDE, key=KEY):
    if name not in _CACHE:
        _CACHE[name] = np.asarray(
            sample_conditionals(
                key, make(), jnp.asarray(Y_COND), jnp.asarray(MASKS), num_samples, sampler
            )
        )
    return _CACHE[name]


def _resampled(rounds):
    """The reverse SDE with ``rounds`` RePaint rounds per step (none: the plain SDE)."""
    return gs.Resampled(SDE, rounds=rounds) if rounds else SDE


N_GUIDED = 2000


def ve_interval(kind, scale=1.0, rounds=0):
    lower, upper = _bounds(*INTERVALS[kind])
    make = lambda: interval(GaussianDenoiser(MEAN, COV, gs.VESDE()), lower, upper, scale=scale)
    name = f"ve {kind} scale={scale} rounds={rounds}"
    return _draw(name, make, N_GUIDED, sampler=_resampled(rounds))


def fm_interval(kind):
    lower, upper = _bounds(*INTERVALS[kind])
    make = lambda: interval(GaussianDenoiser(MEAN, COV, gs.FlowMatching()), lower, upper)
    return _draw(f"fm {kind}", make, N_GUIDED, sampler=ODE)


LINEAR_A = np.array([[1.0, -1.0, 0.0], [0.0, 0.0, 2.0]])  # a - b <= 0.2, c <= 1 (row scaled)
LINEAR_B = np.array([0.2, 2.0])


def ve_linear():
    make = lambda: linear(GaussianDenoiser(MEAN, COV, gs.VESDE()), LINEAR_A, LINEAR_B)
    return _draw("ve linear", make, N_GUIDED)


def _check_truncated_mean(samples, row, direction, lo, up, allowance, label):
    """Guided mean of ``direction . z`` against the exact truncated mean: 5 standard errors
    plus ``allowance``. Returns (error, tolerance) for the report."""
    m, s = conditional_of(row, direction)
    mean, sd = truncated_moments(m, s, lo, up)
    values = samples @ np.asarray(direction)
    error = abs(values.mean() - mean)
    tol = 5 * sd / math.sqrt(values.size) + allowance
    assert error <= tol, f"{label}: mean {values.mean():.4f} vs exact {mean:.4f}, tol {tol:.4f}"
    return error, tol


def _check_inside(values, lo, up, width_if_unbounded, label):
    """>= 95% inside ``[lo, up]`` and >= 99% inside it widened by 5% of its width (of
    ``width_if_unbounded`` for a one-sided bound)."""
    width = up - lo if math.isfinite(up - lo) else width_if_unbounded
    inside = np.mean((values >= lo) & (values <= up))
    widened = np.mean((values >= lo - 0.05 * width) & (values <= up + 0.05 * width))
    assert inside >= 0.95, f"{label}: {inside:.4f} inside"
    assert widened >= 0.99, f"{label}: {widened:.4f} inside the widened interval"
    return inside


# ---------------------------------------------------------------- interval guidance


@pytest.mark.parametrize("kind", INTERVALS)
@pytest.mark.parametrize("sampler", ["ve-sde", "fm-ode"])
def test_interval_guided_samples_are_the_truncated_conditional(kind, sampler):
    """Guided draws of a lie in the interval and have the exact truncated mean, for both
    conditions, for the reverse SDE (VE) and the probability-flow ODE (flow matching)."""
    samples = ve_interval(kind) if sampler == "ve-sde" else fm_interval(kind)
    lo, up = INTERVALS[kind]
    assert samples.shape == (N_GUIDED, 2, 3)
    for row in range(2):
        label = f"{sampler}, {kind}, {ROWS[row]}"
        _, sd = conditional_of(row, [1.0, 0.0, 0.0])
        _check_inside(samples[:, row, 0], lo, up, sd, label)
        allowance = ALLOWANCE["sde"] if sampler == "ve-sde" else ALLOWANCE["ode"]
        _check_truncated_mean(samples[:, row], row, [1.0, 0.0, 0.0], lo, up, allowance, label)
        assert np.all(samples[:, row, MASKS[row]] == Y_COND[row, MASKS[row]])


def test_interval_guidance_leaves_independent_coordinate_unchanged():
    """c is independent of a: its guided marginal is the unguided law N(0.5, 1) (mean and
    variance within 5 standard errors plus the sampler allowance of test_samplers.py)."""
    for kind in INTERVALS:
        samples = ve_interval(kind)
        for row in range(2):
            cond_mean, cond_cov = gaussian_conditional(MEAN, COV, MASKS[row], Y_COND[row])
            law_mean, law_cov = continuous_sampler_law(gs.VESDE(), SDE, cond_mean, cond_cov)
            assert_gaussian_moments(
                samples[:, row, 2:], law_mean[-1:], law_cov[-1:, -1:], 5e-3, 1e-2, f"c, {kind}"
            )


def _unguided(inner):
    """An interval guidance with the structure of the guided samplers here (node a may be
    bounded) but infinite bounds: exactly zero guidance, through the traced-bounds path."""
    free = np.full(3, INF)
    return IntervalGuidance(inner, jnp.asarray(-free), jnp.asarray(free), (0,), *_SETTINGS)


# As `interval` stores them: strongly typed arrays (a weakly typed scalar would recompile).
_SETTINGS = (jnp.asarray(1.0, dtype=float), TweedieVariance(), jnp.asarray(1e4, dtype=float))
_PROBE_T = jnp.array([0.0, 1e-5, 0.1, 0.5, 0.9, 1.0])
# Inside, far outside and extreme points, including |y| = 1e3.
_PROBE_Y = jnp.array(
    [[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [1e3, -1e3, 1e3], [-50.0, 50.0, -50.0], [3.0, -2.0, 0.5]]
)


@pytest.fixture(
    scope="module", params=[gs.VESDE(), gs.FlowMatching()], ids=["VESDE", "FlowMatching"]
)
def probes(request):
    """Guided, unguided and inner denoiser outputs on a grid of times (including alpha = 0 and
    sigma = 0 for flow matching), points and both masks, in one compiled call. The guided
    denoiser bounds a on both sides and b above; c is unbounded and independent."""
    method = request.param
    inner = GaussianDenoiser(MEAN, COV, method)
    guided = interval(inner, np.array([0.5, -INF, -INF]), np.array([1.5, 2.0, INF]))
    none_bounded = interval(inner, np.full(3, -INF), np.full(3, INF))
    assert guided.nodes == (0, 1) and none_bounded.nodes == ()

    def probe(t, y, mask):
        x0, eps, g = guided.guidance(t, y, mask)
        return {
            "guided": guided(t, y, mask),
            "g": g,
            "inner x0 eps": (x0, eps),
            "inner": inner(t, y, mask),
            "none bounded": none_bounded(t, y, mask),
            "infinite bounds": _unguided(inner)(t, y, mask),
        }

    t, y, m = _grid()
    out = jax.jit(jax.vmap(probe))(_PROBE_T[t], _PROBE_Y[y], jnp.asarray(MASKS)[m])
    return method, _PROBE_T[t], _PROBE_Y[y], np.asarray(MASKS)[m], out


def _grid():
    t, y, m = np.meshgrid(
        np.arange(_PROBE_T.size), np.arange(len(_PROBE_Y)), np.arange(2), indexing="ij"
    )
    return t.ravel(), y.ravel(), m.ravel()


def test_guidance_values_and_gradients_are_finite(probes):
    """Infinite bounds (one- and two-sided), points far outside, alpha = 0 and sigma = 0: every
    output and the guidance gradient g are finite."""
    *_, out = probes
    for name, leaf in jax.tree_util.tree_flatten_with_path(out)[0]:
        assert np.all(np.isfinite(leaf)), name


def test_log_probability_of_bounds_is_finite_with_finite_gradient():
    """``log P(lower <= X <= upper)``, ``X ~ N(m, 1/k^2)``, and its gradient in ``m`` are finite
    for every mix of infinite bounds, far in either tail and at the sharpness cap; the gradient
    is exactly 0 without bounds and is ``k phi / Phi`` far in the lower tail."""
    bounds = [(-INF, INF), (0.0, INF), (-INF, 0.0), (-1.0, 1.0), (0.0, 1e-3)]
    ms = [-1e3, -30.0, -1.0, 0.0, 5e-4, 1.0, 30.0, 1e3]
    ks = [1e-2, 1.0, 1e4]
    rows = [(lo, up, m, k) for lo, up in bounds for m in ms for k in ks]
    lower, upper, m, k = (jnp.asarray(c, dtype=float) for c in zip(*rows))
    # Each row is its own constraint (the sum separates), so one gradient gives all of them.
    value, grads = jax.jit(jax.value_and_grad(_log_prob_between, argnums=2))(lower, upper, m, k)
    grads = np.asarray(grads)
    assert np.isfinite(value) and np.all(np.isfinite(grads))
    unbounded = np.isinf(np.asarray(lower)) & np.isinf(np.asarray(upper))
    assert np.all(grads[unbounded] == 0.0)
    # X >= 0 with m = -1e3, k = 1e4: d/dm log Phi(k m) = k phi(k m) / Phi(k m) ~ k^2 |m| = 1e11.
    tail = (np.asarray(lower) == 0) & np.isinf(np.asarray(upper)) & (np.asarray(m) == -1e3)
    tail &= np.asarray(k) == 1e4
    np.testing.assert_allclose(grads[tail], [1e11], rtol=1e-5)


def test_unbounded_entries_get_exactly_zero_guidance(probes):
    """The independent, unbounded c gets exactly 0 guidance and observed entries none; the
    correlated b feels the bound on a wherever a's estimate is outside it. Without any finite
    bound -- none at all, or infinite traced bounds -- the guided denoiser returns exactly what
    the inner one does."""
    method, t, y, mask, out = probes
    g = np.asarray(out["g"])
    assert np.all(g[:, 2] == 0.0)
    assert np.all(g[mask] == 0.0)
    a_outside = (np.abs(np.asarray(y)[:, 0] - 1.0) > 1.0) & (np.abs(np.asarray(y)[:, 0]) < 100)
    pulled = (t > 0) & (t < 1) & ~mask[:, 1] & a_outside
    assert pulled.sum() >= 4
    assert np.all(g[pulled, 0] != 0.0) and np.all(g[pulled, 1] != 0.0)
    for name in ("none bounded", "infinite bounds"):
        for got, expected in zip(out[name], out["inner"]):
            np.testing.assert_array_equal(got, expected, err_msg=name)


def test_guided_x0_and_eps_stay_on_the_path(probes):
    """The guided estimates satisfy ``y = alpha x0 + sigma eps`` on latent entries, and the
    guided score is the inner score plus g: ``eps = eps_hat - sigma g`` (zero shift at
    ``alpha = 0``)."""
    method, t, y, mask, out = probes
    alpha, sigma = (np.asarray(a)[:, None] for a in jax.vmap(method.alpha_sigma)(jnp.asarray(t)))
    x0, eps = (np.asarray(a, dtype=np.float64) for a in out["guided"])
    _, inner_eps = (np.asarray(a, dtype=np.float64) for a in out["inner x0 eps"])
    g = np.asarray(out["g"], dtype=np.float64)
    moderate = np.all(np.abs(np.asarray(y)) < 100, axis=1)[:, None] & ~mask
    y_again = alpha * x0 + sigma * eps
    np.testing.assert_allclose(y_again[moderate], np.asarray(y)[moderate], rtol=1e-4, atol=1e-4)
    expected_eps = inner_eps - np.where(alpha != 0, sigma, 0.0) * g
    np.testing.assert_allclose(eps[moderate], expected_eps[moderate], rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- linear guidance


def test_unit_variance_guidance_is_exact_for_a_unit_variance_entry():
    """c is independent with variance 1, the unit model's own assumption, so
    ``variance=UnitVariance()`` is exact for it: in the interval, with the truncated mean, for both
    conditions (same tolerances as Tweedie's variance)."""
    lo, up = 0.8, 1.6
    lower, upper = np.array([-INF, -INF, lo]), np.array([INF, INF, up])
    make = lambda: interval(
        GaussianDenoiser(MEAN, COV, gs.VESDE()), lower, upper, variance=UnitVariance()
    )
    samples = _draw("ve unit c", make, N_GUIDED)
    for row in range(2):
        label = f"unit variance, c, {ROWS[row]}"
        _check_inside(samples[:, row, 2], lo, up, 1.0, label)
        _check_truncated_mean(samples[:, row], row, [0.0, 0.0, 1.0], lo, up, ALLOWANCE["sde"], label)


def test_unit_variance_guidance_is_stable_under_a_steep_denoiser():
    """An entry of variance 400 makes ``d x0_hat / d y`` up to 400 times the unit model's,
    as an extrapolating network can. Unit-variance guidance still moves x0 at most onto the
    bound per step: every draw finite and the interval (0.5 sd wide, 2 sd out) reached."""
    cov = np.diag([400.0, 1.0, 1.0])
    lower, upper = np.array([40.0, -INF, -INF]), np.array([50.0, INF, INF])
    make = lambda: interval(GaussianDenoiser(np.zeros(3), cov, gs.VESDE()), lower, upper,
                            variance=UnitVariance())
    samples = _draw("ve unit steep", make, N_GUIDED)
    assert np.all(np.isfinite(samples))
    for row in range(2):
        _check_inside(samples[:, row, 0], 40.0, 50.0, 10.0, f"steep, {ROWS[row]}")


def test_linear_guided_samples_satisfy_the_constraints():
    """>= 95% of draws satisfy A z <= b (both rows at once); each constrained direction has its
    exact truncated mean (a - b and c are independent, so the guidance is exact)."""
    samples = ve_linear()
    for row in range(2):
        satisfied = np.all(samples[:, row] @ LINEAR_A.T <= LINEAR_B, axis=1)
        assert satisfied.mean() >= 0.95, f"{ROWS[row]}: {satisfied.mean():.4f} satisfy A z <= b"
        for direction, bound in zip(LINEAR_A, LINEAR_B):
            unit = direction / np.linalg.norm(direction)
            _check_truncated_mean(
                samples[:, row],
                row,
                unit,
                -INF,
                bound / np.linalg.norm(direction),
                ALLOWANCE["sde"],
                f"linear, {ROWS[row]}, {direction}",
            )


# ---------------------------------------------------------------- RePaint resampling

N_RESAMPLED = N_GUIDED  # same compiled sampler as the guided draws


def test_resampled_sde_matches_exact_conditionals():
    """Without guidance, one resampling round per step: the draws still have the exact
    conditional's mean and covariance. Allowance: twice the 100-step EM bias (each step is
    applied twice: mean 2 x 5.5e-3, (co)variance 2 x 1%) plus the VE prior mismatch, which
    resampling can only reduce."""
    # Exactly unguided (infinite bounds, see test_unbounded_entries_get_exactly_zero_guidance)
    # with the structure of the guided sampler, which is compiled once for both.
    make = lambda: _unguided(GaussianDenoiser(MEAN, COV, gs.VESDE()))
    samples = _draw("ve unguided rounds=1", make, N_RESAMPLED, sampler=_resampled(1))
    for row in range(2):
        cond_mean, cond_cov = gaussian_conditional(MEAN, COV, MASKS[row], Y_COND[row])
        assert_gaussian_moments(
            samples[:, row][:, ~MASKS[row]],
            cond_mean,
            cond_cov,
            1.1e-2 + ve_prior_mismatch(row),
            2e-2,
            f"resampled, {ROWS[row]}",
        )
        assert np.all(samples[:, row, MASKS[row]] == Y_COND[row, MASKS[row]])


def _in_interval(samples, row, lo, up):
    return np.mean((samples[:, row, 0] >= lo) & (samples[:, row, 0] <= up))


def _difference_tolerance(inside_a, inside_b, n):
    """3 standard errors of a difference of two in-interval fractions; one pseudo-draw outside
    each (add-one) keeps the error positive when every draw is inside."""
    p = [(n * (1 - f) + 1) / (n + 2) for f in (inside_a, inside_b)]
    return 3 * math.sqrt(sum(q * (1 - q) for q in p) / n)


@pytest.mark.parametrize("kind", INTERVALS)
def test_resampling_with_guidance(kind):
    """With default guidance, resampling keeps draws in the interval (no fewer than without,
    within 3 standard errors) and keeps the exact truncated mean (allowance doubled, as each
    step is applied twice)."""
    lo, up = INTERVALS[kind]
    plain, resampled = ve_interval(kind), ve_interval(kind, rounds=1)
    for row in range(2):
        label = f"{kind}, {ROWS[row]}"
        before, after = _in_interval(plain, row, lo, up), _in_interval(resampled, row, lo, up)
        assert after >= before - _difference_tolerance(before, after, N_GUIDED), label
        _check_inside(resampled[:, row, 0], lo, up, conditional_of(row, [1.0, 0, 0])[1], label)
        _check_truncated_mean(
            resampled[:, row], row, [1.0, 0.0, 0.0], lo, up, 2 * ALLOWANCE["sde"], label
        )


def test_resampling_helps_weak_guidance():
    """With guidance too weak to get there on its own (scale = 0.25: the constraint's
    log-probability is flattened 16-fold), one resampling round per step puts significantly
    more draws into the interval (measured at N = 8000: 41% -> 49% and 70% -> 76%)."""
    lo, up = INTERVALS["two-sided"]
    weak = ve_interval("two-sided", scale=0.25)
    weak_resampled = ve_interval("two-sided", scale=0.25, rounds=1)
    for row in range(2):
        before, after = _in_interval(weak, row, lo, up), _in_interval(weak_resampled, row, lo, up)
        assert after - before >= _difference_tolerance(before, after, N_GUIDED), (before, after)


# ---------------------------------------------------------------- errors

_INNER = GaussianDenoiser(MEAN, COV, gs.VESDE())
# Our own ValueError or TypeError; runtime type checks (a TypeCheckError, also a TypeError)
# may answer first.
_BAD_TYPE = (ValueError, TypeError)


@pytest.mark.parametrize(
    "lower, upper, match",
    [
        ([0.0, 0.0, 0.0], [1.0, -1.0, 1.0], "lower.*upper.*entries \\[1\\]"),
        ([0.0, 0.0, 0.0], [0.0, 1.0, 1.0], "lower.*upper"),
        ([0.0, 0.0, 0.0], [1.0, 1.0], "upper.*\\(3,\\).*\\(2,\\)"),
        ([[0.0, 0.0, 0.0]], [[1.0, 1.0, 1.0]], "lower.*num_scalars.*\\(1, 3\\)"),
        ([0.0, np.nan, 0.0], [1.0, 1.0, 1.0], "NaN"),
        ([INF, 0.0, 0.0], [INF, 1.0, 1.0], "lower"),
    ],
)
def test_interval_rejects_bad_bounds(lower, upper, match):
    with pytest.raises(ValueError, match=match):
        interval(_INNER, np.array(lower), np.array(upper))


@pytest.mark.parametrize(
    "A, b, match",
    [
        ([1.0, 0.0, 0.0], [1.0], "A.*num_constraints, num_scalars.*\\(3,\\)"),
        ([[1.0, 0.0, 0.0]], [1.0, 2.0], "b.*\\(1,\\).*\\(2,\\)"),
        ([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]], [1.0, 1.0], "zero rows \\[1\\]"),
        ([[1.0, INF, 0.0]], [1.0], "finite"),
    ],
)
def test_linear_rejects_bad_constraints(A, b, match):
    with pytest.raises(ValueError, match=match):
        linear(_INNER, np.array(A), np.array(b))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"scale": 0.0}, "scale"),
        ({"scale": -1.0}, "scale"),
        ({"scale": INF}, "scale"),
        ({"max_sharpness": 0.0}, "max_sharpness"),
        ({"variance": "exact"}, "variance"),
    ],
)
def test_bad_settings_raise(kwargs, match):
    with pytest.raises(_BAD_TYPE, match=match):
        interval(_INNER, *_bounds(0.0, 1.0), **kwargs)
    with pytest.raises(_BAD_TYPE, match=match):
        linear(_INNER, np.array([[1.0, 0.0, 0.0]]), np.ones(1), **kwargs)


def test_constraint_of_other_size_than_y_raises():
    guided = interval(_INNER, np.zeros(2), np.ones(2))
    with pytest.raises(ValueError, match="\\(3,\\).*\\(2,\\)"):
        guided(jnp.asarray(0.5), jnp.zeros(3), jnp.zeros(3, dtype=bool))
    guided = linear(_INNER, np.array([[1.0, 0.0]]), np.ones(1))
    with pytest.raises(ValueError, match="A.*\\(1, 3\\).*\\(1, 2\\)"):
        guided(jnp.asarray(0.5), jnp.zeros(3), jnp.zeros(3, dtype=bool))


@pytest.mark.parametrize("rounds", [-1, True])
def test_bad_rounds_raise(rounds):
    """RePaint rounds are a non-negative integer, checked when the sampler is built."""
    with pytest.raises(_BAD_TYPE, match="rounds"):
        gs.Resampled(SDE, rounds=rounds)


def test_resampling_needs_the_sde_sampler():
    """Resampling re-noises between the SDE's fixed steps: it wraps nothing else, and refuses
    flow matching (whose reverse SDE is singular) before sampling."""
    for inner in (ODE, gs.AdaptiveSDE(), gs.EDMSampler()):
        with pytest.raises(TypeError, match="sampler"):
            gs.Resampled(inner, rounds=1)
    denoiser = GaussianDenoiser(MEAN, COV, gs.FlowMatching())
    with pytest.raises(ValueError, match="no reverse SDE"):
        sample_conditionals(
            KEY, denoiser, jnp.asarray(Y_COND), jnp.asarray(MASKS), 3, gs.Resampled(SDE, rounds=1)
        )


def test_guided_denoiser_is_an_ordinary_pytree():
    """Bounds and scale are traced leaves: new values of the same shapes keep the structure
    (so jitted samplers do not recompile); which entries are bounded is static."""
    one = interval(_INNER, *_bounds(0.0, 1.0))
    other = interval(_INNER, *_bounds(-2.0, INF), scale=3.0)
    assert isinstance(one, IntervalGuidance)
    assert jax.tree_util.tree_structure(one) == jax.tree_util.tree_structure(other)
