"""Nodes with times (`gs.Series`): layout, queries, the Simformer's metadata embedding, and
posterior plus posterior predictive from one trained model."""

import diffrax
import equinox as eqx
import hypothesis.strategies as st
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from hypothesis import given, settings

import gensbi_eqx as gs
from gensbi_eqx.data import NodeLayout, query_vectors


NOISE = 0.2  # x(t) = theta * t + NOISE * eps, theta ~ N(0, 1), four points at times in [0, 1]


def _line_data(n: int, num_points: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    theta = rng.normal(size=(n, 1)).astype(np.float32)
    times = rng.uniform(0.0, 1.0, size=(n, num_points)).astype(np.float32)
    x = (theta * times + NOISE * rng.normal(size=(n, num_points))).astype(np.float32)
    return {"theta": theta, "x": gs.Series(x, times)}


def _line_posterior(x, t):
    """Closed-form ``theta | x(t_i) = x_i``: mean and sd."""
    x, t = np.asarray(x, np.float64), np.asarray(t, np.float64)
    precision = 1.0 + np.sum(t**2) / NOISE**2
    return np.sum(t * x) / NOISE**2 / precision, precision**-0.5


@pytest.fixture(scope="module")
def estimator():
    data = _line_data(4000)
    model = gs.Simformer.for_data(
        data, key=jr.key(0), dim_value=16, dim_id=16, dim_condition=8, depth=2, num_heads=2,
        head_dim=8, dim_time=32,
    )
    return gs.fit(
        jr.key(1), model, data, method=gs.FlowMatching(),
        training=gs.Training(max_steps=2000, batch_size=128, validation_fraction=0.0),
        progress=False,
    )


# --- layout and queries -------------------------------------------------------------------


def test_layout_shares_ids_per_channel_and_flattens_times():
    times = np.arange(6, dtype=np.float32).reshape(2, 3)
    data = {"a": np.zeros((2, 2)), "x": gs.Series(np.zeros((2, 3, 2)), times)}
    layout = NodeLayout.from_data(data)
    assert layout.metadata_nodes == ("x",)
    # Each channel's points share the ID of the node's first point of that channel.
    assert layout.token_ids() == (0, 1, 2, 3, 2, 3, 2, 3)
    assert layout.metadata_mask() == (False,) * 2 + (True,) * 6
    flat = layout.flatten_times(data)
    np.testing.assert_array_equal(flat[1], [0, 0, 3, 3, 4, 4, 5, 5])
    assert NodeLayout.from_config(layout.config) == layout


@settings(deadline=None, max_examples=25, database=None)
@given(
    capacity=st.integers(1, 6),
    channels=st.sampled_from([(), (2,)]),
    data=st.data(),
)
def test_query_places_observed_then_predicted_then_free_points(capacity, channels, data):
    num_observed = data.draw(st.integers(0, capacity))
    num_predicted = data.draw(st.integers(0, capacity - num_observed))
    layout = NodeLayout(("theta", "x"), ((1,), (capacity,) + channels), metadata_nodes=("x",))
    rng = np.random.default_rng(num_observed * 7 + num_predicted)
    values = rng.normal(size=(num_observed,) + channels).astype(np.float32)
    times = rng.uniform(0, 5, size=num_observed).astype(np.float32)
    query_times = rng.uniform(0, 5, size=num_predicted).astype(np.float32)
    given_, times_, predicted = query_vectors(
        layout, {"x": gs.Series(values, times)}, {"x": query_times}, free_ranges={"x": (0.0, 5.0)}
    )
    c = int(np.prod(channels))
    x_given = given_[1:].reshape((capacity,) + channels)
    x_times = times_[1:].reshape((capacity,) + channels)
    np.testing.assert_array_equal(x_given[:num_observed], values)
    assert np.isnan(x_given[num_observed:]).all() and np.isnan(given_[0])
    expected = np.concatenate(
        [times, query_times, (np.arange(capacity - num_observed - num_predicted) + 0.5)
         / max(capacity - num_observed - num_predicted, 1) * 5]
    )
    np.testing.assert_allclose(x_times, np.broadcast_to(expected.reshape((-1,) + (1,) * len(channels)), x_times.shape), rtol=1e-6)
    # The predicted indices read the query times back, in the order given.
    np.testing.assert_array_equal(
        times_[predicted["x"]], np.broadcast_to(query_times.reshape((-1,) + (1,) * len(channels)), (num_predicted,) + channels)
    )
    assert predicted["x"].size == num_predicted * c


def test_query_without_predict_on_a_node_with_channels():
    layout = NodeLayout(("theta", "x"), ((1,), (3, 2)), metadata_nodes=("x",))
    given_, times_, predicted = query_vectors(
        layout, {"x": gs.Series(np.ones((2, 2)), np.zeros(2))}, free_ranges={"x": (0.0, 3.0)}
    )
    np.testing.assert_array_equal(given_[1:5], 1.0)
    np.testing.assert_array_equal(times_[5:], 1.5)  # the one free point, mid-range
    assert predicted == {}


def test_query_refuses_malformed_times():
    layout = NodeLayout(("theta", "x"), ((1,), (3,)), metadata_nodes=("x",))
    with pytest.raises(ValueError, match="at most 3 points"):
        query_vectors(layout, {"x": gs.Series([1.0, 2.0], [0.0, 1.0])}, {"x": [2.0, 3.0]})
    with pytest.raises(ValueError, match="must be gs.Series"):
        query_vectors(layout, {"x": [1.0, 2.0, 3.0]})
    with pytest.raises(ValueError, match="trained without times"):
        query_vectors(layout, {"theta": gs.Series([1.0], [0.0])})
    with pytest.raises(ValueError, match="have no times"):
        query_vectors(layout, {}, {"theta": [1.0]})
    with pytest.raises(ValueError, match=r"times` must have shape"):
        query_vectors(layout, {"x": gs.Series([1.0, 2.0], [0.0, 1.0, 2.0])})
    with pytest.raises(ValueError, match="finite"):
        query_vectors(layout, {"x": gs.Series([1.0], [np.nan])})


def test_fit_refuses_mismatched_models_and_times():
    data = _line_data(64)
    plain = gs.Simformer(5, depth=1, key=jr.key(0))
    one_step = gs.Training(max_steps=1)
    with pytest.raises(ValueError, match="not built to read them"):
        gs.fit(jr.key(0), plain, data, method=gs.VESDE(), training=one_step, progress=False)
    timed = gs.Simformer.for_data(data, depth=1, key=jr.key(0))
    untimed = {"theta": data["theta"], "x": np.asarray(data["x"].values)}
    with pytest.raises(ValueError, match="no gs.Series node"):
        gs.fit(jr.key(0), timed, untimed, method=gs.VESDE(), training=one_step, progress=False)
    bad = {"theta": data["theta"], "x": gs.Series(data["x"].values, np.zeros((64, 3)))}
    with pytest.raises(ValueError, match=r"data\['x'\].times"):
        gs.fit(jr.key(0), timed, bad, method=gs.VESDE(), training=one_step, progress=False)


# --- the Simformer's metadata embedding ------------------------------------------------------


@pytest.fixture(scope="module")
def simformer():
    data = {"theta": np.zeros((2, 2)), "x": gs.Series(np.zeros((2, 5, 2)), np.zeros(5))}
    return gs.Simformer.for_data(data, key=jr.key(3), depth=2, dim_value=8, dim_id=8, head_dim=4)


_forward = eqx.filter_jit(
    lambda model, x, mask, metadata: model(jnp.asarray(0.3), x, mask, metadata=metadata)
)


@settings(deadline=None, max_examples=15, database=None)
@given(permutation=st.permutations(range(5)), seed=st.integers(0, 2**16))
def test_simformer_is_equivariant_to_reordering_points_with_their_times(simformer, permutation, seed):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(size=12), jnp.float32)
    mask = jnp.asarray(rng.uniform(size=12) < 0.5)
    metadata = jnp.asarray(np.r_[0, 0, np.repeat(rng.uniform(size=5), 2)], jnp.float32)
    # Points are the (time, channel) pairs 2..11; permute whole points.
    order = np.r_[0, 1, 2 + (2 * np.asarray(permutation)[:, None] + np.arange(2)).ravel()]
    out = _forward(simformer, x, mask, metadata)
    permuted = _forward(simformer, x[order], mask[order], metadata[order])
    np.testing.assert_allclose(permuted, out[order], atol=2e-5)


def test_constant_times_act_like_no_times(simformer):
    """With every time equal, the metadata embedding is one vector added to the shared IDs: the
    model is then exactly a Simformer without metadata whose ID rows carry that vector."""
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=12), jnp.float32)
    mask = jnp.asarray(rng.uniform(size=12) < 0.5)
    where = np.asarray(simformer.has_metadata)
    constant = jnp.where(where, 0.37, 0.0)
    shift = simformer.metadata_embedding(jnp.asarray([0.37]))[0]
    rows = np.unique(np.asarray(simformer.token_ids)[where])
    # The same key gives the same weights everywhere else.
    config = {k: v for k, v in simformer.config.items() if k not in ("has_metadata", "metadata_scale")}
    plain = gs.Simformer(**config, key=jr.key(3))
    plain = eqx.tree_at(
        lambda m: m.id_embedding.weight, plain, simformer.id_embedding.weight.at[rows].add(shift)
    )
    np.testing.assert_allclose(
        _forward(simformer, x, mask, constant), _forward(plain, x, mask, None), atol=1e-5
    )
    # And the times do matter when they differ.
    varied = jnp.where(where, jnp.linspace(0, 1, 12), 0.0)
    assert not np.allclose(_forward(simformer, x, mask, varied), _forward(plain, x, mask, None), atol=1e-3)


def test_simformer_refuses_missing_or_unexpected_metadata(simformer):
    x, mask = jnp.zeros(12), jnp.zeros(12, bool)
    with pytest.raises(ValueError, match="pass `metadata`"):
        simformer(jnp.asarray(0.3), x, mask)
    with pytest.raises(ValueError, match="no tokens with metadata"):
        gs.Simformer(12, depth=1, key=jr.key(0))(jnp.asarray(0.3), x, mask, metadata=jnp.zeros(12))
    rebuilt = gs.Simformer(**simformer.config, key=jr.key(0))
    assert (rebuilt.token_ids, rebuilt.has_metadata) == (simformer.token_ids, simformer.has_metadata)


# --- a trained model: posterior and posterior predictive --------------------------------------

SAMPLE = dict(sampler=gs.ODE(diffrax.Heun(), steps=16))


def test_the_posterior_follows_the_observation_times(estimator):
    """Observing x = 0.25 early (t = 0.25) or late (t = 1) gives different closed-form
    posteriors; the model must know which."""
    for t in (0.25, 1.0):
        draws = estimator.sample(jr.key(4), {"x": gs.Series([0.25], [t])}, 2000, **SAMPLE)
        mean, sd = _line_posterior([0.25], [t])
        assert "x" not in draws  # a node with times comes back only when predicted
        theta = np.asarray(draws["theta"][:, 0])
        # The two means differ by 0.37; Monte Carlo error is below 0.015.
        assert abs(theta.mean() - mean) < 0.15, (t, theta.mean(), mean)
        assert 0.6 * sd < theta.std() < 1.5 * sd, (t, theta.std(), sd)


def test_posterior_predictive_at_new_times(estimator):
    """theta and x at times never simulated, from one reverse process."""
    observed = gs.Series([0.25, 0.5], [0.5, 1.0])
    draws = estimator.sample(jr.key(5), {"x": observed}, 2000, predict={"x": [0.0, 0.75]}, **SAMPLE)
    assert draws["x"].shape == (2000, 2) and draws["theta"].shape == (2000, 1)
    mean, sd = _line_posterior([0.25, 0.5], [0.5, 1.0])
    for k, t in enumerate((0.0, 0.75)):
        predicted = np.asarray(draws["x"][:, k])
        exact_sd = np.sqrt((t * sd) ** 2 + NOISE**2)
        assert abs(predicted.mean() - t * mean) < 0.1, (t, predicted.mean(), t * mean)
        assert 0.6 * exact_sd < predicted.std() < 1.6 * exact_sd, (t, predicted.std(), exact_sd)


def test_reordering_observed_points_leaves_the_draws_unchanged(estimator):
    values, times = np.asarray([0.1, 0.4, 0.3]), np.asarray([0.2, 0.9, 0.6])
    a = estimator.sample(jr.key(6), {"x": gs.Series(values, times)}, 50, **SAMPLE)
    b = estimator.sample(jr.key(6), {"x": gs.Series(values[::-1], times[::-1])}, 50, **SAMPLE)
    np.testing.assert_allclose(a["theta"], b["theta"], atol=1e-4)


def test_batched_and_chunked_queries_with_times(estimator, tmp_path):
    values = np.asarray([[0.1, 0.2], [0.5, 0.9]])
    times = np.asarray([[0.3, 0.6], [0.5, 1.0]])
    query = {"x": gs.Series(values, times)}
    whole = estimator.sample(jr.key(7), query, 6, predict={"x": [0.1]}, **SAMPLE)
    assert whole["theta"].shape == (6, 2, 1) and whole["x"].shape == (6, 2, 1)
    chunked = estimator.sample(jr.key(7), query, 6, predict={"x": [0.1]}, chunk_size=5, **SAMPLE)
    np.testing.assert_allclose(chunked["x"], whole["x"], atol=1e-5)
    path = tmp_path / "timed.eqx"
    gs.save(path, estimator)
    loaded = gs.load(path)
    again = loaded.sample(jr.key(7), query, 6, predict={"x": [0.1]}, **SAMPLE)
    np.testing.assert_array_equal(again["x"], whole["x"])
    with pytest.raises(ValueError, match="not available"):
        estimator.sample(jr.key(0), query, 2, constraints=gs.Box({"x": (0, 1)}), **SAMPLE)


def test_rejection_with_times(estimator):
    """A box on theta given points at times: the times reach rejection's proposals (per
    condition), every draw is inside, the acceptance takes the query's batch shape. (This
    model is flow matching, which SMC cannot drive: no fallback.)"""
    values = np.asarray([[0.1, 0.2], [0.5, 0.9]])
    times = np.asarray([[0.3, 0.6], [0.5, 1.0]])
    query = {"x": gs.Series(values, times)}
    strategy = gs.Rejection(SAMPLE["sampler"], fallback=None)
    draws = estimator.sample(jr.key(8), query, 50, constraints=gs.Box({"theta": (0.0, 1.0)}),
                             sampler=strategy)
    theta = np.asarray(draws["theta"])
    assert theta.shape == (50, 2, 1) and ((theta >= 0.0) & (theta <= 1.0)).all()
    assert draws.info["strategy"] == "rejection" and draws.info["acceptance"].shape == (2,)


def test_log_prob_with_times_is_a_density_of_theta(estimator):
    """Over a grid of theta, the density given four observed points integrates to one."""
    data = _line_data(1, seed=9)
    observed = {"x": gs.Series(data["x"].values[0], data["x"].times[0])}
    grid = np.linspace(-3, 3, 121, dtype=np.float32)[:, None]
    log_density = estimator.log_prob({"theta": grid}, observed, ode=gs.ODE(rtol=1e-4, atol=1e-4))
    mass = np.trapezoid(np.exp(np.asarray(log_density)), grid[:, 0])
    assert abs(mass - 1.0) < 0.05, mass
    with pytest.raises(ValueError, match="in neither"):
        estimator.log_prob({"theta": grid}, {"x": gs.Series([0.1], [0.5])})
