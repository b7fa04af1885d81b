"""The contract every model and every method keeps, run over the registries: shapes,
finiteness, attention masks, one compile per train step and per sampler, config, save/load."""

import json

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import gensbi_eqx as gs
from gensbi_eqx.data import NodeLayout, Standardiser
from gensbi_eqx.methods import METHODS
from gensbi_eqx.models import MODELS
from gensbi_eqx.sampling import sample_conditionals
from gensbi_eqx.training import PosteriorMasks, StructuredMasks, make_train_step, optimizer_for

from randomise import randomised

TINY = {
    "Simformer": dict(dim_value=8, dim_id=8, dim_condition=4, num_heads=2, head_dim=4, depth=1,
                      widening=2, dim_time=16),
    "Flux1": dict(num_heads=2, axes_dim=(4,), depth=1, depth_single_blocks=1, mlp_ratio=2.0),
    "Flux1Joint": dict(num_heads=2, axes_dim=(4,), depth_single_blocks=2, mlp_ratio=2.0),
}
JOINT = ["Simformer", "Flux1Joint"]
N, D_THETA, D_X = 64, 2, 3
NUM_NODES = D_THETA + D_X


def _data():
    k1, k2 = jr.split(jr.key(0))
    theta = jr.normal(k1, (N, D_THETA))
    x = theta @ jnp.ones((D_THETA, D_X)) + 0.3 * jr.normal(k2, (N, D_X))
    return {"theta": theta, "x": x}


DATA = _data()
# The same values, x a series with a time per scalar: its scalars are metadata tokens.
SERIES = {
    "theta": DATA["theta"],
    "x": gs.Series(DATA["x"], np.random.default_rng(0).uniform(size=(N, D_X)).astype(np.float32)),
}


def build(name: str, key=jr.key(1), *, data=DATA, **extra):
    hyper = {**TINY[name], **extra}
    if name == "Flux1":
        return MODELS[name].for_data(data, condition_on="x", key=key, **hyper)
    return MODELS[name].for_data(data, key=key, **hyper)


@pytest.fixture(scope="module")
def models():
    return {name: randomised(build(name), jr.key(2)) for name in MODELS}


def _mask_for(model, key):
    fixed = model.fixed_condition_mask
    if fixed is not None:
        return jnp.asarray(fixed)
    return jr.bernoulli(key, 0.5, (model.num_scalars,))


def test_registries_are_covered():
    assert sorted(TINY) == sorted(MODELS)
    assert sorted(METHODS) == sorted(["VESDE", "VPSDE", "FlowMatching", "EDM"])


@pytest.mark.parametrize("name", sorted(TINY))
def test_output_shape_dtype_and_finite(models, name):
    """(t, x, mask) -> finite float32 (num_scalars,), also jitted and vmapped over a batch."""
    model = models[name]
    xs = jr.normal(jr.key(3), (4, NUM_NODES))
    masks = jax.vmap(lambda k: _mask_for(model, k))(jr.split(jr.key(4), 4))
    ts = jnp.linspace(0.1, 0.9, 4)
    out = eqx.filter_jit(jax.vmap(lambda t, x, m: model(t, x, m)))(ts, xs, masks)
    assert out.shape == (4, NUM_NODES) and out.dtype == jnp.float32
    assert np.isfinite(np.asarray(out)).all()
    assert float(jnp.std(out)) > 0  # the randomised network is not constant


@pytest.mark.parametrize("name", JOINT)
def test_masked_out_edges_carry_nothing(models, name):
    """When no other token may attend to token j, no output but j's depends on x_j."""
    model = models[name]
    j = 1
    edge_mask = jnp.ones((NUM_NODES, NUM_NODES), bool).at[:, j].set(False)
    mask = jnp.zeros(NUM_NODES, bool).at[3].set(True)
    x = jr.normal(jr.key(5), (NUM_NODES,))
    f = eqx.filter_jit(lambda x, e: model(jnp.asarray(0.4), x, mask, edge_mask=e))
    moved = f(x.at[j].add(2.0), edge_mask) - f(x, edge_mask)
    others = np.delete(np.asarray(moved), j)
    np.testing.assert_allclose(others, 0.0, atol=1e-6)
    assert abs(float(moved[j])) > 1e-4
    dense = f(x.at[j].add(2.0), None) - f(x, None)  # without the mask, j is read by all
    assert np.abs(np.delete(np.asarray(dense), j)).min() > 1e-6


@pytest.mark.parametrize("name", sorted(TINY))
def test_bfloat16_compute_keeps_float32_parameters(models, name):
    """compute_dtype='bfloat16' casts activations only: parameters stay float32 and the
    output is float32 and close to the float32 model's (to bfloat16's ~3 significant digits,
    amplified by depth)."""
    low = build(name, compute_dtype=jnp.bfloat16)
    params = eqx.filter(low, eqx.is_inexact_array)
    assert {x.dtype for x in jax.tree.leaves(params)} == {jnp.dtype(jnp.float32)}
    low = randomised(low, jr.key(2))  # the same weights as models[name]
    model = models[name]
    x = jr.normal(jr.key(6), (NUM_NODES,))
    mask = _mask_for(model, jr.key(7))
    apply = eqx.filter_jit(lambda m: m(jnp.asarray(0.3), x, mask))
    out32, out16 = apply(model), apply(low)
    assert out16.dtype == jnp.float32
    scale = float(jnp.max(jnp.abs(out32)))
    np.testing.assert_allclose(out16, out32, atol=0.1 * scale)
    assert float(jnp.max(jnp.abs(out16 - out32))) > 0  # it did run in lower precision


def _traced(make):
    """``make`` to trace with ``key`` abstract under `eqx.filter_eval_shape`: the model's
    skeleton without drawing (or compiling) its weights."""

    def traced(key):
        with jax.ensure_compile_time_eval():  # for_data reads its data concretely
            return make(key)

    return traced


def _shapes_dtypes(tree) -> list:
    return [(leaf.shape, leaf.dtype) for leaf in jax.tree.leaves(tree)]


@pytest.mark.parametrize("data", [DATA, SERIES], ids=["plain", "series"])
@pytest.mark.parametrize("name", sorted(TINY))
def test_from_config_rebuilds_the_model(name, data):
    """``from_config(config)``, with the config as a saved file holds it (through JSON), gives
    the model's settings back: the same static fields (part of the tree structure), so the same
    key draws the same weights, and the same leaf shapes and dtypes."""
    cls = MODELS[name]
    model = eqx.filter_eval_shape(_traced(lambda key: build(name, key, data=data)), jr.key(1))
    assert any(model.has_metadata) == (data is SERIES)
    config = json.loads(json.dumps(model.config))
    rebuilt = eqx.filter_eval_shape(cls.from_config, config, key=jr.key(1))
    assert isinstance(rebuilt, cls) and rebuilt.config == model.config
    assert jax.tree.structure(rebuilt) == jax.tree.structure(model)
    assert _shapes_dtypes(rebuilt) == _shapes_dtypes(model)


@pytest.mark.parametrize("name", sorted(TINY))
def test_eval_shape_skeleton_matches_the_model(models, name):
    """The skeleton `gs.load` fills, ``eqx.filter_eval_shape(cls.from_config, config, key)``,
    has the real model's tree and, in place of every leaf, a ShapeDtypeStruct of its shape and
    dtype."""
    model = models[name]
    skeleton = eqx.filter_eval_shape(type(model).from_config, model.config, key=jr.key(0))
    assert jax.tree.structure(skeleton) == jax.tree.structure(model)
    assert all(isinstance(leaf, jax.ShapeDtypeStruct) for leaf in jax.tree.leaves(skeleton))
    assert all(isinstance(leaf, jax.Array) for leaf in jax.tree.leaves(model))
    assert _shapes_dtypes(skeleton) == _shapes_dtypes(model)


# Model configs as files saved before the models' settings were typed fields hold them (TINY,
# on SERIES), every key included: such files must keep loading.
SAVED_CONFIGS = {
    "Simformer": {
        "num_scalars": 5, "dim_value": 8, "dim_id": 8, "dim_condition": 4, "num_heads": 2,
        "head_dim": 4, "depth": 1, "widening": 2, "dim_time": 16, "compute_dtype": "float32",
        "token_ids": [0, 1, 2, 2, 2], "has_metadata": [False, False, True, True, True],
        "metadata_scale": 4.0,
    },
    "Flux1": {
        "dim_obs": 2, "dim_cond": 3, "in_channels": 1, "context_in_dim": 1, "mlp_ratio": 2.0,
        "num_heads": 2, "depth": 1, "depth_single_blocks": 1, "axes_dim": [4], "qkv_bias": True,
        "theta": 50.0, "id_embedding_strategy": ["absolute", "absolute"], "obs_grid": None,
        "cond_grid": None, "compute_dtype": "float32", "token_ids": [0, 1, 2, 2, 2],
        "has_metadata": [False, False, True, True, True], "metadata_scale": 5.0,
        "conditioned": [False, False, True, True, True],
    },
    "Flux1Joint": {
        "num_scalars": 5, "mlp_ratio": 2.0, "num_heads": 2, "depth_single_blocks": 2,
        "axes_dim": [4], "qkv_bias": True, "theta": 50.0, "id_embedding_strategy": "absolute",
        "grid": None, "compute_dtype": "float32", "token_ids": [0, 1, 2, 2, 2],
        "has_metadata": [False, False, True, True, True], "metadata_scale": 5.0,
    },
}


@pytest.mark.parametrize("name", sorted(TINY))
def test_saved_configs_still_rebuild(name):
    assert sorted(SAVED_CONFIGS) == sorted(MODELS)
    config = SAVED_CONFIGS[name]
    skeleton = eqx.filter_eval_shape(MODELS[name].from_config, config, key=jr.key(0))
    assert json.loads(json.dumps(skeleton.config)) == config
    model = eqx.filter_eval_shape(_traced(lambda key: build(name, key, data=SERIES)), jr.key(1))
    assert jax.tree.structure(skeleton) == jax.tree.structure(model)


def _estimator(model, method):
    layout = NodeLayout.from_data(DATA)
    return gs.Estimator(model, method, layout, Standardiser.fit(layout.flatten(DATA)))


@pytest.mark.parametrize("method_name", sorted(METHODS))
@pytest.mark.parametrize("name", sorted(TINY))
def test_train_step_sample_and_round_trip(models, name, method_name, tmp_path):
    """For every model x method: the train step compiles once and gives a finite loss that
    moves the weights; sampling gives finite draws of the right shapes and a new observation
    does not recompile; save/load gives bit-identical draws."""
    model, method = models[name], METHODS[method_name]()
    layout = NodeLayout.from_data(DATA)
    parameters = tuple(layout.node_mask(["theta"]).tolist())
    masks = PosteriorMasks(parameters) if model.fixed_condition_mask else StructuredMasks(parameters)
    optimizer = optimizer_for(1e-3, 10, 1.0)
    step = make_train_step(method, masks, optimizer, 8, NUM_NODES)
    x_train = layout.flatten(DATA)
    opt_state = optimizer.init(eqx.filter(model, eqx.is_inexact_array))
    new, ema, opt_state, loss = step(x_train, model, model, opt_state, jr.key(8), jnp.asarray(0))
    new, ema, opt_state, loss = step(x_train, new, ema, opt_state, jr.key(9), jnp.asarray(1))
    assert np.isfinite(float(loss))
    moved = jax.tree.map(lambda a, b: jnp.any(a != b), eqx.filter(model, eqx.is_inexact_array),
                         eqx.filter(new, eqx.is_inexact_array))
    assert any(jax.tree.leaves(moved))

    est = _estimator(model, method)
    draws = est.sample(jr.key(10), {"x": jnp.ones((2, D_X))}, 3, steps=3)
    assert set(draws) == {"theta"} and draws["theta"].shape == (3, 2, D_THETA)
    assert np.isfinite(np.asarray(draws["theta"])).all()
    traces = eqx.debug.get_num_traces(sample_conditionals)
    est.sample(jr.key(10), {"x": -jnp.ones((2, D_X))}, 3, steps=3)
    assert eqx.debug.get_num_traces(sample_conditionals) == traces

    path = tmp_path / "est.eqx"
    est.save(path)
    loaded = gs.load(path)
    again = loaded.sample(jr.key(10), {"x": jnp.ones((2, D_X))}, 3, steps=3)
    np.testing.assert_array_equal(again["theta"], draws["theta"])
    assert type(loaded.model) is type(model) and loaded.model.config == model.config
