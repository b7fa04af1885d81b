"""Bounded nodes: ``fit(..., nodes={"theta": gs.Node(bounds=(lower, upper))})`` learns the node
through a map of its support onto the real line, so draws lie strictly inside, and densities
in user units carry the map's Jacobian."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import gensbi_eqx as gs
from gensbi_eqx.data import Standardiser, log_abs_det_to_unbounded, to_bounded, to_unbounded

TINY = dict(dim_value=4, dim_id=4, dim_condition=2, num_heads=2, head_dim=4, depth=1, widening=2,
            dim_time=8)
ONE_STEP = gs.Training(max_steps=1, batch_size=8, validation_fraction=0.0)
INF = np.inf

# Kinds of support: (lower, upper) per scalar.
SUPPORTS = st.sampled_from([(-1.0, 2.0), (0.0, INF), (-INF, 3.0), (-INF, INF), (1.0, 1.001)])


def _interior(support, u):
    """A point strictly inside ``support`` from ``u`` in (0, 1)."""
    lower, upper = support
    if np.isfinite(lower) and np.isfinite(upper):
        return lower + (upper - lower) * u
    if np.isfinite(lower):
        return lower + u / (1 - u)
    if np.isfinite(upper):
        return upper - u / (1 - u)
    return np.log(u / (1 - u))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(SUPPORTS, st.floats(0.01, 0.99)), min_size=1, max_size=5))
def test_the_map_round_trips_increases_and_its_jacobian_is_its_derivative(entries):
    lower = jnp.array([s[0] for s, _ in entries], jnp.float32)
    upper = jnp.array([s[1] for s, _ in entries], jnp.float32)
    x = jnp.array([_interior(s, u) for s, u in entries], jnp.float32)
    y = to_unbounded(x, lower, upper)
    np.testing.assert_allclose(to_bounded(y, lower, upper), x, rtol=1e-4, atol=1e-5)
    one = lambda v, lo, hi: to_unbounded(v[None], lo[None], hi[None])[0]  # noqa: E731
    derivative = jax.vmap(jax.grad(one))(x, lower, upper)
    assert (derivative > 0).all()
    np.testing.assert_allclose(
        log_abs_det_to_unbounded(x, lower, upper), jnp.log(derivative), rtol=1e-4, atol=1e-4
    )


@settings(max_examples=40, deadline=None)
@given(SUPPORTS, st.floats(-1e6, 1e6, width=32))
def test_any_real_maps_strictly_inside_with_a_finite_jacobian(support, y):
    """Float32 saturation: the logistic of 17 is 1.0, yet the draw stays one float inside."""
    lower, upper = (jnp.array([b], jnp.float32) for b in support)
    x = to_bounded(jnp.array([y], jnp.float32), lower, upper)
    assert jnp.isfinite(x).all()
    assert (x > lower).all() and (x < upper).all()
    assert jnp.isfinite(log_abs_det_to_unbounded(x, lower, upper)).all()


def test_values_on_a_bound_move_one_float_inside():
    lower, upper = jnp.array([0.0, 0.0]), jnp.array([1.0, INF])
    y = to_unbounded(jnp.array([0.0, 0.0]), lower, upper)
    assert jnp.isfinite(y).all()
    assert (to_bounded(y, lower, upper) > 0).all()


def test_standardiser_maps_bounds_first_then_standardises():
    lower, upper = jnp.array([0.0, -INF]), jnp.array([1.0, INF])
    x = jnp.array([[0.2, 5.0], [0.5, 6.0], [0.9, 10.0]])
    standardiser = Standardiser.fit(x, lower=lower, upper=upper)
    z = standardiser(x)
    np.testing.assert_allclose(z.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(z.std(0), 1.0, atol=1e-5)
    np.testing.assert_allclose(standardiser.inverse(z), x, rtol=1e-5)
    logit = np.log(x[:, 0] / (1 - x[:, 0]))
    np.testing.assert_allclose(standardiser.std[0], logit.std(), rtol=1e-5)
    # A user interval maps through the same increasing map; the support's edge binds nothing.
    low, high = standardiser.interval(np.array([0.25, -INF]), np.array([1.0, 7.0]))
    np.testing.assert_allclose(low[0], standardiser(jnp.array([0.25, 0.0]))[0], rtol=1e-5)
    assert high[0] == INF and low[1] == -INF
    np.testing.assert_allclose(high[1], standardiser(jnp.array([0.5, 7.0]))[1], rtol=1e-5)
    assert standardiser.empty_intervals(np.array([1.0, 0.0]), np.array([2.0, 1.0])).tolist() == [
        True, False
    ]


@pytest.fixture(scope="module")
def data():
    key_theta, key_x = jr.split(jr.key(0))
    theta = np.array(jr.uniform(key_theta, (64, 2)))
    theta[:, 1] *= 5  # entry 1: positive, one-sided
    x = theta[:, :1] + 0.1 * np.asarray(jr.normal(key_x, (64, 1)))
    return {"theta": theta, "x": x}


BOUNDS = {"theta": gs.Node(bounds=([0.0, 0.0], [1.0, None]))}


@pytest.fixture(scope="module")
def estimator(data):
    model = gs.Simformer(3, key=jr.key(1), **TINY)
    return gs.fit(jr.key(2), model, data, nodes=BOUNDS, training=ONE_STEP, progress=False)


def test_draws_lie_strictly_inside_even_from_an_untrained_model(estimator):
    draws = estimator.sample(jr.key(3), {"x": np.array([0.5])}, 2000, sampler=gs.SDE(steps=10))
    theta = np.asarray(draws["theta"])
    assert (theta[:, 0] > 0).all() and (theta[:, 0] < 1).all()
    assert (theta[:, 1] > 0).all() and np.isfinite(theta).all()
    # Unbounded nodes are untouched by the bounds: x can take any value.
    joint = estimator.sample(jr.key(4), {}, 500, sampler=gs.SDE(steps=10))
    assert (np.asarray(joint["theta"])[:, 0] < 1).all()
    assert np.asarray(joint["x"]).min() < 0 or np.asarray(joint["x"]).max() > 1


def test_density_in_user_units_integrates_to_one_and_matches_the_draws(data):
    """Densities of one bounded entry through its map and the standardisation: over its
    support they integrate to 1 (without the Jacobian they do not), and draws of the same ODE
    follow them (Kolmogorov-Smirnov against the integral). Flow matching starts from N(0, I),
    so even a barely trained model keeps its mass where a grid can see it."""
    model = gs.Simformer(3, key=jr.key(1), **TINY)
    training = gs.Training(max_steps=50, batch_size=16, validation_fraction=0.0)
    est = gs.fit(jr.key(2), model, data, nodes=BOUNDS, method=gs.FlowMatching(),
                 training=training, progress=False)
    # theta_0 in (0, 1) given theta_1 and x, on a uniform grid.
    grid = np.linspace(0.0, 1.0, 801)[1:-1]
    # theta_1 in (0, inf) given theta_0 and x, on a grid uniform in log(theta_1).
    log_grid = np.linspace(-12.0, 6.0, 799)
    nan = np.full_like(grid, np.nan)
    values = {"theta": np.stack([np.stack([grid, nan], -1), np.stack([nan, np.exp(log_grid)], -1)])}
    condition = {"theta": np.array([[np.nan, 2.0], [0.6, np.nan]]), "x": np.array([[0.3], [0.3]])}
    log_p = np.asarray(est.log_prob(values, {k: v[:, None] for k, v in condition.items()}))
    assert np.isfinite(log_p).all()
    density = np.exp(log_p)
    np.testing.assert_allclose(np.trapezoid(density[0], grid), 1.0, atol=0.01)
    np.testing.assert_allclose(np.trapezoid(density[1] * np.exp(log_grid), log_grid), 1.0, atol=0.01)
    draws = est.sample(jr.key(5), {k: v[0] for k, v in condition.items()}, 2000, sampler=gs.ODE())
    cdf = np.concatenate([[0.0], np.cumsum((density[0, 1:] + density[0, :-1]) / 2 * np.diff(grid))])
    cdf = cdf / cdf[-1]
    p_value = stats.kstest(np.asarray(draws["theta"])[:, 0], lambda v: np.interp(v, grid, cdf)).pvalue
    assert p_value > 1e-3, p_value


def test_density_is_zero_outside_the_support(estimator):
    condition = {"x": np.array([0.5])}
    log_p = estimator.log_prob({"theta": np.array([[0.5, 1.0], [1.5, 1.0], [0.5, -1.0]])}, condition)
    assert np.isfinite(log_p[0]) and log_p[1] == -INF and log_p[2] == -INF


def test_saved_bounds_come_back_and_sample_identically(estimator, tmp_path):
    gs.save(tmp_path / "bounded.eqx", estimator)
    loaded = gs.load(tmp_path / "bounded.eqx")
    np.testing.assert_array_equal(loaded.standardiser.lower, estimator.standardiser.lower)
    np.testing.assert_array_equal(loaded.standardiser.upper, estimator.standardiser.upper)
    condition = {"x": np.array([0.5])}
    a = estimator.sample(jr.key(6), condition, 50, sampler=gs.SDE(steps=5))["theta"]
    b = loaded.sample(jr.key(6), condition, 50, sampler=gs.SDE(steps=5))["theta"]
    np.testing.assert_array_equal(a, b)


def test_a_box_on_a_bounded_node_maps_through_the_support(estimator):
    box = gs.Box({"theta": ([0.2, -INF], [2.0, 1.0])})  # 2.0 is past the support's edge
    samples = estimator.sample(
        jr.key(7), {"x": np.array([0.5])}, 200, constraints=box, sampler=gs.SMC(steps=10)
    )
    theta = np.asarray(samples["theta"])
    assert (theta[:, 0] >= 0.2).all() and (theta[:, 0] < 1).all()
    assert (theta[:, 1] > 0).all() and (theta[:, 1] <= 1.0).all()


def test_prior_supports_bound_their_draws():
    for task in (gs.tasks.TwoMoons(), gs.tasks.LotkaVolterra(), gs.tasks.SIRD(times=np.arange(5.0))):
        lower, upper = task.prior.support
        assert lower.shape == upper.shape == (task.prior.dim,)
        draws = task.prior.sample(jr.key(0), 200)
        assert ((draws >= lower) & (draws <= upper)).all()
    lower, upper = gs.tasks.GaussianLinear().prior.support
    assert np.isinf(lower).all() and np.isinf(upper).all()


def test_out_of_bounds_data_and_conditions_are_refused_by_name(data, estimator):
    model = gs.Simformer(3, key=jr.key(1), **TINY)
    with pytest.raises(ValueError, match=r"`data` has \d+ value\(s\) outside .*theta\[0\]"):
        gs.fit(jr.key(2), model, data, nodes={"theta": gs.Node(bounds=(0.1, None))},
               training=ONE_STEP, progress=False)
    with pytest.raises(ValueError, match=r"`condition` has 1 value\(s\) outside .*theta\[1\]"):
        estimator.sample(jr.key(0), {"theta": np.array([np.nan, -1.0])}, 5)
    with pytest.raises(ValueError, match="`Box` bounds of \\['theta\\[0\\]'\\] lie outside"):
        estimator.sample(jr.key(0), {"x": np.array([0.5])}, 5,
                         constraints=gs.Box({"theta": ([1.5, -INF], [2.0, INF])}))
    with pytest.raises(ValueError, match=r"`A` weighs \['theta\[1\]'\]"):
        estimator.sample(jr.key(0), {"x": np.array([0.5])}, 5,
                         constraints=gs.LinearInequality(np.array([[0.0, 1.0, 1.0]]), np.ones(1)))


@pytest.mark.parametrize(
    "nodes, error, match",
    [
        ({"phi": gs.Node(bounds=(0, 1))}, ValueError, r"`nodes` names unknown node\(s\) \['phi'\]"),
        # The type checker may answer first; either way the message names `nodes`.
        ({"theta": (0, 1)}, TypeError, "nodes"),
        ([("theta", gs.Node())], TypeError, "nodes"),
        ({"theta": gs.Node(bounds=(1, 0))}, ValueError, "lower must be below upper"),
        ({"theta": gs.Node(bounds=([0, 0, 0], 1))}, ValueError, r"must broadcast to the node's shape \(2,\)"),
    ],
)
def test_bad_node_specifications_raise(data, nodes, error, match):
    model = gs.Simformer(3, key=jr.key(1), **TINY)
    with pytest.raises(error, match=match):
        gs.fit(jr.key(2), model, data, nodes=nodes, training=ONE_STEP, progress=False)


def test_bounds_must_be_a_pair():
    with pytest.raises(ValueError, match=r"`bounds` must be a pair \(lower, upper\)"):
        gs.Node(bounds=(0, 1, 2))
