"""The contract every model, method, sampler and attention policy keeps, run over the
registries below: shapes, finiteness, attention masks, one compile per train step and per
sampler, and save/load of every configuration."""

import dataclasses
import inspect
import json

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import gensbi_eqx as gs
from gensbi_eqx._config import subclasses
from gensbi_eqx.data import NodeLayout
from gensbi_eqx.methods import AbstractMethod
from gensbi_eqx.models import AbstractAttention
from gensbi_eqx.samplers import default_sampler
from gensbi_eqx.sampling import sample_conditionals
from gensbi_eqx.training import PosteriorMasks, StructuredMasks, default_optimizer, make_train_step

from randomise import randomised
from untrained import untrained_estimator

# ---- the registries ------------------------------------------------------------------------

# Every model, with the smallest hyperparameters that exercise all of its parts.
MODELS = [gs.Simformer, gs.Flux1, gs.Flux1Joint]
TINY = {
    "Simformer": dict(dim_value=8, dim_id=8, dim_condition=4, num_heads=2, head_dim=4, depth=1,
                      widening=2, dim_time=16),
    "Flux1": dict(num_heads=2, axes_dim=(4,), depth=1, depth_single_blocks=1, mlp_ratio=2.0),
    "Flux1Joint": dict(num_heads=2, axes_dim=(4,), depth_single_blocks=2, mlp_ratio=2.0),
}
JOINT = ["Simformer", "Flux1Joint"]

# Every method, each with the sampler `gs.samplers.default_sampler` gives it.
METHODS = [gs.VESDE(), gs.VPSDE(), gs.FlowMatching(), gs.EDM()]
DEFAULT_SAMPLERS = {
    "VESDE": gs.SDE(steps=200),
    "VPSDE": gs.SDE(steps=500),
    "FlowMatching": gs.ODE(diffrax.Heun(), steps=20),
    "EDM": gs.EDMSampler(steps=18),
}
# Methods away from their defaults (every kind of training times), for the config round trip.
METHOD_VARIANTS = [
    gs.VESDE(sigma_min=1e-3, sigma_max=10.0, times=gs.LogitNormalTimes(0.5, 0.8)),
    gs.VPSDE(beta_min=0.1, beta_max=20.0, times=gs.LogNormalNoise(-1.0, 1.5)),
    gs.FlowMatching(times=gs.LogitNormalTimes()),
    gs.EDM(sigma_data=0.5, rho=5.0, times=gs.UniformTimes()),
]

N, D_THETA, D_X = 64, 2, 3
NUM_NODES = D_THETA + D_X
LAYOUT = NodeLayout(("theta", "x"), ((D_THETA,), (D_X,)))
# x[0] and x[1] from theta[0]; x[2] from theta[1] and x[1]: directed masks differ by condition.
DEPENDENCIES = gs.Dependencies({("x", 0): [("theta", 0)], ("x", 1): [("theta", 0)],
                                ("x", 2): [("theta", 1), ("x", 1)]})
# Every attention policy (unbound, as a user passes it to `fit`).
ATTENTION = [
    gs.DenseAttention(),
    gs.FixedAttention(np.eye(NUM_NODES, dtype=bool) | np.tri(NUM_NODES, k=-2, dtype=bool)),
    gs.UndirectedAttention(DEPENDENCIES),
    gs.DirectedAttention(DEPENDENCIES),
]
ALL_CONDITION_MASKS = jnp.asarray(
    [[bool(bits >> k & 1) for k in range(NUM_NODES)] for bits in range(2**NUM_NODES)]
)


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
    cls = getattr(gs, name)
    if name == "Flux1":
        return cls.for_data(data, condition_on="x", key=key, **hyper)
    return cls.for_data(data, key=key, **hyper)


@pytest.fixture(scope="module")
def models():
    return {name: randomised(build(name), jr.key(2)) for name in TINY}


def _mask_for(model, key):
    fixed = model.fixed_condition_mask
    if fixed is not None:
        return jnp.asarray(fixed)
    return jr.bernoulli(key, 0.5, (model.num_scalars,))


def _concrete(base: type) -> set[str]:
    """The library's concrete subclasses of ``base`` (not those other tests define)."""
    return {
        name
        for name, cls in subclasses(base).items()
        if cls.__module__.startswith("gensbi_eqx.") and not inspect.isabstract(cls)
    }


def test_registries_are_covered():
    """The registries hold every model a saved file may name, every concrete method and every
    attention policy, and each method's default sampler is the one listed (and accepts it)."""
    names = [cls.__name__ for cls in MODELS]
    # EmbeddedModel wraps one of these (its contract: tests/test_embeddings.py).
    assert sorted(TINY) == sorted(names) == sorted(set(gs.models.MODELS) - {"EmbeddedModel"})
    assert {type(m).__name__ for m in METHODS} == _concrete(AbstractMethod)
    assert {type(m).__name__ for m in METHOD_VARIANTS} == _concrete(AbstractMethod)
    assert {type(a).__name__ for a in ATTENTION} == _concrete(AbstractAttention)
    for method in METHODS:
        sampler = default_sampler(method)
        assert sampler == DEFAULT_SAMPLERS[type(method).__name__], type(method).__name__
        sampler.check_method(method)
        assert sampler.evaluations is not None  # fixed steps: a known cost per draw


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
    cls = getattr(gs, name)
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
    assert sorted(SAVED_CONFIGS) == sorted(TINY)
    config = SAVED_CONFIGS[name]
    skeleton = eqx.filter_eval_shape(getattr(gs, name).from_config, config, key=jr.key(0))
    assert json.loads(json.dumps(skeleton.config)) == config
    model = eqx.filter_eval_shape(_traced(lambda key: build(name, key, data=SERIES)), jr.key(1))
    assert jax.tree.structure(skeleton) == jax.tree.structure(model)


def _short(sampler):
    """The sampler with 3 steps: the method's own kind of sampler, at a tenth of the cost."""
    return dataclasses.replace(sampler, steps=3)


# Model x method pairs in which every method meets at least two models and every model at least
# two methods (methods talk to models only through `t`, the values and the mask): 8 of the 12
# pairs, each of which costs a train-step and a sampler compile.
PAIRS = [
    ("Simformer", "VESDE"), ("Simformer", "VPSDE"), ("Simformer", "FlowMatching"),
    ("Simformer", "EDM"), ("Flux1", "FlowMatching"), ("Flux1", "EDM"), ("Flux1Joint", "VESDE"),
    ("Flux1Joint", "VPSDE"),
]


def test_pairs_cover_every_model_and_method():
    models = [name for name, _ in PAIRS]
    methods = [method for _, method in PAIRS]
    assert all(models.count(name) >= 2 for name in TINY)
    assert all(methods.count(type(m).__name__) >= 2 for m in METHODS)


@pytest.mark.parametrize("name,method_name", PAIRS, ids=lambda p: p)
def test_train_step_sample_and_round_trip(models, name, method_name, tmp_path):
    """For each pair of model and method: the train step compiles once and gives a finite loss
    that moves the weights; the method's default kind of sampler gives finite draws of the
    right shapes and a new observation does not recompile; save/load keeps the model and the
    method and gives bit-identical draws."""
    model = models[name]
    method = next(m for m in METHODS if type(m).__name__ == method_name)
    layout = NodeLayout.from_data(DATA)
    parameters = tuple(layout.node_mask(["theta"]).tolist())
    kind = PosteriorMasks if model.fixed_condition_mask is not None else StructuredMasks
    masks = kind(is_parameter=parameters)
    optimizer = default_optimizer(10, learning_rate=1e-3, gradient_clip=1.0)
    step = make_train_step(method, masks, optimizer, 8, NUM_NODES)
    x_train = layout.flatten(DATA)
    opt_state = optimizer.init(eqx.filter(model, eqx.is_inexact_array))
    new, ema, opt_state, loss = step(x_train, model, model, opt_state, jr.key(8), jnp.asarray(0))
    new, ema, opt_state, loss = step(x_train, new, ema, opt_state, jr.key(9), jnp.asarray(1))
    assert np.isfinite(float(loss))
    moved = jax.tree.map(lambda a, b: jnp.any(a != b), eqx.filter(model, eqx.is_inexact_array),
                         eqx.filter(new, eqx.is_inexact_array))
    assert any(jax.tree.leaves(moved))

    est = untrained_estimator(model, DATA, method)
    sampler = _short(default_sampler(method))
    draws = est.sample(jr.key(10), {"x": jnp.ones((2, D_X))}, 3, sampler=sampler)
    assert set(draws) == {"theta"} and draws["theta"].shape == (3, 2, D_THETA)
    assert np.isfinite(np.asarray(draws["theta"])).all()
    assert isinstance(draws, gs.Samples) and draws.sampler == sampler
    traces = eqx.debug.get_num_traces(sample_conditionals)
    est.sample(jr.key(10), {"x": -jnp.ones((2, D_X))}, 3, sampler=sampler)
    assert eqx.debug.get_num_traces(sample_conditionals) == traces

    path = tmp_path / "est.eqx"
    gs.save(path, est)
    loaded = gs.load(path)
    assert loaded.method == method and loaded.layout == est.layout
    again = loaded.sample(jr.key(10), {"x": jnp.ones((2, D_X))}, 3, sampler=sampler)
    np.testing.assert_array_equal(again["theta"], draws["theta"])
    assert type(loaded.model) is type(model) and loaded.model.config == model.config


@pytest.mark.parametrize(
    "method", METHODS + METHOD_VARIANTS, ids=lambda m: f"{type(m).__name__}-{type(m.times).__name__}"
)
def test_method_config_round_trips(method):
    """What a saved file stores of a method, ``method.config`` as JSON, rebuilds an equal method
    (the same class, path parameters and training times)."""
    config = json.loads(json.dumps(method.config))
    assert config["class"] == type(method).__name__
    again = AbstractMethod.from_config(config)
    assert type(again) is type(method) and again == method
    assert again.config == method.config
    with pytest.raises(ValueError, match="'Sideways'"):
        AbstractMethod.from_config({**config, "class": "Sideways"})


@eqx.filter_jit
def _edge_masks(policy, condition_masks):
    """The policy's edge mask for each condition mask (``None`` for dense attention)."""
    return jax.vmap(policy)(condition_masks)


@pytest.mark.parametrize("policy", ATTENTION, ids=lambda a: type(a).__name__)
def test_attention_policy_round_trips(models, policy, tmp_path):
    """Every attention policy, through ``config`` as JSON and ``from_config``, then bound to the
    layout, gives the same edge mask as the original for every condition mask; a saved and
    loaded estimator keeps it too."""
    config = json.loads(json.dumps(policy.config))
    assert config["class"] == type(policy).__name__
    rebuilt = AbstractAttention.from_config(config)
    assert type(rebuilt) is type(policy) and rebuilt.config == policy.config
    bound = policy.bind(LAYOUT)
    want = _edge_masks(bound, ALL_CONDITION_MASKS)
    got = _edge_masks(rebuilt.bind(LAYOUT), ALL_CONDITION_MASKS)
    if isinstance(policy, gs.DenseAttention):
        assert want is None and got is None
    else:
        assert want.shape == (len(ALL_CONDITION_MASKS), NUM_NODES, NUM_NODES)
        assert want.dtype == jnp.bool_
        np.testing.assert_array_equal(got, want)

    path = tmp_path / "est.eqx"
    gs.save(path, untrained_estimator(models["Simformer"], DATA, gs.VESDE(), policy))
    loaded = gs.load(path)
    assert type(loaded.attention) is type(policy)
    assert loaded.attention.config == policy.config
    again = _edge_masks(loaded.attention, ALL_CONDITION_MASKS)
    if want is None:
        assert again is None
    else:
        np.testing.assert_array_equal(again, want)
