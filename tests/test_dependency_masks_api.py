"""Declared dependencies through fit, sample and save/load: the attention policies reach the
model."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import gensbi_eqx as gs
from gensbi_eqx.methods._base import network_output
from gensbi_eqx.models import directed_mask, undirected_mask

TINY = dict(dim_value=8, dim_id=8, dim_condition=4, num_heads=2, head_dim=8, depth=1, widening=2, dim_time=16)
# Two independent pairs: x[0] is computed from theta[0] alone and x[1] from theta[1] alone, so
# the scalars split into the components {theta[0], x[0]} and {theta[1], x[1]}.
DEPENDENCIES = gs.Dependencies({("x", 0): [("theta", 0)], ("x", 1): [("theta", 1)]})
STEPS = 8
SAMPLER = gs.ODE(diffrax.Heun(), steps=3)


@pytest.fixture(scope="module")
def data():
    theta, x = gs.tasks.GaussianLinear(dim=2).simulate(jr.key(0), 512)
    return {"theta": theta, "x": x}


@pytest.fixture(scope="module")
def layout(data):
    return gs.data.NodeLayout.from_data(data)


def _fit(data, **kwargs):
    model = gs.Simformer.for_data(data, key=jr.key(1), **TINY)
    training = gs.Training(max_steps=STEPS, batch_size=32, validation_fraction=0.0)
    return gs.fit(
        jr.key(2), model, data, method=gs.VESDE(), training=training, progress=False, **kwargs
    )


@pytest.mark.parametrize("policy", [gs.UndirectedAttention, gs.DirectedAttention])
def test_policy_trains_samples_and_round_trips(data, layout, policy, tmp_path):
    """fit binds the policy to the data's layout; the estimator keeps it through save/load."""
    est = _fit(data, attention=policy(DEPENDENCIES))
    assert type(est.attention) is policy and est.attention.dependencies == DEPENDENCIES
    np.testing.assert_array_equal(est.attention.base, DEPENDENCIES.adjacency(layout))
    assert np.isfinite(est.history.train_loss).all()
    query = {"x": jnp.array([[0.1, -0.2], [0.4, 0.0]])}
    samples = est.sample(jr.key(3), query, 16, sampler=SAMPLER)
    assert samples["theta"].shape == (16, 2, 2) and jnp.isfinite(samples["theta"]).all()
    path = tmp_path / "est.gsbi"
    gs.save(path, est)
    loaded = gs.load(path)
    assert type(loaded.attention) is policy and loaded.attention.dependencies == DEPENDENCIES
    np.testing.assert_array_equal(loaded.attention.base, est.attention.base)
    again = loaded.sample(jr.key(3), query, 16, sampler=SAMPLER)
    np.testing.assert_array_equal(again["theta"], samples["theta"])


@pytest.fixture(scope="module")
def model(data):
    return gs.Simformer.for_data(data, key=jr.key(4), **TINY)


@eqx.filter_jit
def _outputs(model, attention, y, condition_masks):
    """Network outputs for a batch of examples, each with its own condition mask."""
    one = lambda y_i, m_i: network_output(model, gs.VESDE(), 0.5, y_i, m_i, attention)
    return jax.vmap(one)(y, condition_masks)


CONDITION_MASKS = jnp.array(
    [[False, False, False, False], [False, False, True, True], [True, False, False, True],
     [False, True, True, False]]
)


def test_directed_mask_is_recomputed_per_example(model, layout):
    """Inside one jitted, vmapped call, each example gets the directed mask of its own
    condition mask."""
    policy = gs.DirectedAttention(DEPENDENCIES).bind(layout)
    y = jr.normal(jr.key(5), (4, 4))
    got = _outputs(model, policy, y, CONDITION_MASKS)
    for i, m in enumerate(CONDITION_MASKS):
        fixed = gs.FixedAttention(directed_mask(policy.base, m))
        want = network_output(model, gs.VESDE(), 0.5, y[i], m, fixed)
        np.testing.assert_allclose(got[i], want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("policy", [gs.UndirectedAttention, gs.DirectedAttention])
def test_masked_model_ignores_the_other_component(model, layout, policy):
    """Tokens of one component never see the other: changing theta[1] and x[1] leaves the
    outputs for theta[0] and x[0] unchanged, for every condition mask. Dense attention does
    not have this property (checked, so the test can fail)."""
    y = jr.normal(jr.key(6), (4, 4))
    moved = y.at[:, jnp.array([1, 3])].add(1.5)
    mask = policy(DEPENDENCIES).bind(layout)
    first = jnp.array([0, 2])
    np.testing.assert_allclose(
        _outputs(model, mask, y, CONDITION_MASKS)[:, first],
        _outputs(model, mask, moved, CONDITION_MASKS)[:, first],
        rtol=1e-5, atol=1e-6,
    )
    dense = _outputs(model, None, y, CONDITION_MASKS)[:, first]
    assert not np.allclose(dense, _outputs(model, None, moved, CONDITION_MASKS)[:, first])


def test_dense_policy_changes_nothing(model, layout):
    """The dense policy hands the model no mask: outputs are bit-identical to no dependencies."""
    mask = gs.DenseAttention().bind(layout)
    y = jr.normal(jr.key(7), (4, 4))
    np.testing.assert_array_equal(
        _outputs(model, mask, y, CONDITION_MASKS), _outputs(model, None, y, CONDITION_MASKS)
    )


def test_undirected_policy_ignores_the_condition(layout):
    mask = gs.UndirectedAttention(DEPENDENCIES).bind(layout)
    for m in CONDITION_MASKS:
        np.testing.assert_array_equal(mask(m), undirected_mask(mask.base))
    assert gs.DenseAttention().bind(layout)(CONDITION_MASKS[0]) is None


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(attention=DEPENDENCIES), "attention"),  # declared, but no policy chosen
        (dict(attention="directed"), "attention"),
        (dict(attention=np.ones((4, 4), bool)), "attention"),
        (dict(attention=gs.UndirectedAttention(gs.Dependencies({"y": ["theta"]}))), "y"),
        (dict(attention=gs.FixedAttention(np.ones((3, 3), bool))), r"`edge_mask`.*\(4, 4\)"),
    ],
)
def test_fit_refuses_bad_dependencies(data, kwargs, match):
    model = gs.Simformer.for_data(data, key=jr.key(1), **TINY)
    with pytest.raises((ValueError, TypeError), match=match):
        gs.fit(jr.key(0), model, data, method=gs.VESDE(), training=gs.Training(max_steps=1),
               progress=False, **kwargs)


def test_conditional_model_refuses_dependencies(data):
    model = gs.Flux1.for_data(data, condition_on=("x",), key=jr.key(0), num_heads=2, axes_dim=(4,), depth=1, depth_single_blocks=0, mlp_ratio=2.0)
    with pytest.raises(ValueError, match="`attention`.*Flux1"):
        gs.fit(jr.key(0), model, data, method=gs.VESDE(), training=gs.Training(max_steps=1),
               progress=False, attention=gs.UndirectedAttention(DEPENDENCIES))
