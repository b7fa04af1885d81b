"""Contract and property tests for the models: shapes, attention masking, permutation
equivariance, sizing and scan-over-layers."""

import functools

import equinox as eqx
import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from hypothesis import given, settings
from jaxtyping import TypeCheckError

from gensbi_eqx.models import AbstractModel, Simformer


NODE_COUNTS = [1, 2, 3, 5]
TINY = dict(dim_value=4, dim_id=4, dim_condition=2, num_heads=2, head_dim=4, widening=2, dim_time=8)
SETTINGS = settings(deadline=None, max_examples=25, database=None)


@functools.cache
def tiny_model(num_scalars: int) -> Simformer:
    """One one-layer model per node count, so hypothesis examples share compiled code."""
    return Simformer(num_scalars, depth=1, **TINY, key=jr.key(num_scalars))


@eqx.filter_jit
def apply(model, t, x, condition_mask, node_ids, edge_mask):
    return model(t, x, condition_mask, node_ids=node_ids, edge_mask=edge_mask)


@eqx.filter_jit
def input_jacobian(model, t, x, condition_mask, edge_mask):
    """``jac[i, j] = d output[i] / d x[j]``."""
    return jax.jacrev(lambda x: model(t, x, condition_mask, edge_mask=edge_mask))(x)


@st.composite
def model_inputs(draw, with_edge_mask: bool):
    n = draw(st.sampled_from(NODE_COUNTS))
    x = draw(hnp.arrays(np.float32, n, elements=st.floats(-5, 5, width=32)))
    condition_mask = draw(hnp.arrays(np.bool_, n))
    t = draw(st.floats(0.0, 1.0, width=32))
    edge_mask = draw(hnp.arrays(np.bool_, (n, n))) if with_edge_mask else None
    return n, jnp.asarray(t), jnp.asarray(x), jnp.asarray(condition_mask), edge_mask


@SETTINGS
@given(inputs=model_inputs(with_edge_mask=False) | model_inputs(with_edge_mask=True))
def test_output_shape_and_finite(inputs):
    """The model maps (t, x, mask[, edge_mask]) to a finite (num_scalars,) float32 vector."""
    n, t, x, condition_mask, edge_mask = inputs
    if edge_mask is not None:
        edge_mask = jnp.asarray(edge_mask)
    out = apply(tiny_model(n), t, x, condition_mask, None, edge_mask)
    assert out.shape == (n,)
    assert out.dtype == jnp.float32
    assert jnp.all(jnp.isfinite(out))


@SETTINGS
@given(inputs=model_inputs(with_edge_mask=True))
def test_edge_mask_blocks_gradients(inputs):
    """In a one-layer model, output[i] has exactly zero gradient w.r.t. x[j] when i may not attend to j."""
    n, t, x, condition_mask, edge_mask = inputs
    jac = np.asarray(input_jacobian(tiny_model(n), t, x, condition_mask, jnp.asarray(edge_mask)))
    assert jac.shape == (n, n)
    blocked = ~(edge_mask | np.eye(n, dtype=bool))
    assert np.all(jac[blocked] == 0.0)


def test_edge_mask_allows_gradients(getkey):
    """Allowed off-diagonal edges carry gradient, so the blocking test can fail."""
    n = 5
    model = tiny_model(n)
    x = jr.normal(getkey(), (n,))
    condition_mask = jnp.array([True, False, False, True, False])
    for edge_mask in (None, jr.bernoulli(getkey(), 0.5, (n, n))):
        jac = np.asarray(input_jacobian(model, jnp.asarray(0.3), x, condition_mask, edge_mask))
        allowed = np.ones((n, n), bool) if edge_mask is None else np.asarray(edge_mask)
        allowed = allowed & ~np.eye(n, dtype=bool)
        assert allowed.any()
        assert np.all(jac[allowed] != 0.0)


@SETTINGS
@given(inputs=model_inputs(with_edge_mask=True), perm_seed=st.integers(0, 2**31 - 1))
def test_permutation_equivariance(inputs, perm_seed):
    """Permuting tokens, their node ids, condition mask and edge mask permutes the output."""
    n, t, x, condition_mask, edge_mask = inputs
    model = tiny_model(n)
    perm = np.random.default_rng(perm_seed).permutation(n)
    out = apply(model, t, x, condition_mask, jnp.arange(n), jnp.asarray(edge_mask))
    em_perm = jnp.asarray(edge_mask[perm][:, perm])
    out_perm = apply(model, t, x[perm], condition_mask[perm], jnp.asarray(perm), em_perm)
    np.testing.assert_allclose(out_perm, out[perm], atol=1e-5, rtol=1e-5)


def test_default_node_ids_are_arange(getkey):
    """Omitting node_ids is the same as passing arange(num_scalars)."""
    n = 3
    model = tiny_model(n)
    t, x, mask = jnp.asarray(0.5), jr.normal(getkey(), (n,)), jnp.array([True, False, False])
    np.testing.assert_array_equal(
        apply(model, t, x, mask, None, None), apply(model, t, x, mask, jnp.arange(n), None)
    )


def test_edge_mask_diagonal_is_forced(getkey):
    """An edge mask with a False diagonal behaves like the same mask with a True diagonal."""
    n = 3
    model = tiny_model(n)
    t, x, mask = jnp.asarray(0.5), jr.normal(getkey(), (n,)), jnp.array([False, True, False])
    em = jnp.array([[False, True, False], [False, False, False], [True, True, False]])
    np.testing.assert_array_equal(
        apply(model, t, x, mask, None, em), apply(model, t, x, mask, None, em | jnp.eye(n, dtype=bool))
    )


def test_default_config_parameter_count(getkey):
    """The default (paper 'small') configuration has 170k-190k parameters on 4 nodes."""
    model = eqx.filter_eval_shape(Simformer, 4, key=getkey())
    leaves = jax.tree.leaves(model)
    count = sum(leaf.size for leaf in leaves if jnp.issubdtype(leaf.dtype, jnp.inexact))
    assert 170_000 <= count <= 190_000


@pytest.mark.parametrize(
    ("data", "num_scalars"),
    [
        ({"theta": (7, 2), "x": (7, 2)}, 4),
        ({"theta": (7,), "x": (7, 3)}, 4),
        ({"x": (7,)}, 1),
        ({"a": (5, 1), "b": (5,), "c": (5, 6)}, 8),
    ],
)
def test_for_data_sizes_model(getkey, data, num_scalars):
    """Simformer.for_data gives one token per scalar of (N,) and (N, d) arrays."""
    arrays = {name: np.zeros(shape, np.float32) for name, shape in data.items()}
    model = Simformer.for_data(arrays, key=getkey(), **TINY, depth=1)
    assert model.num_scalars == num_scalars
    assert model.id_embedding.num_embeddings == num_scalars


def test_config_rebuilds_model(getkey):
    """Simformer(**model.config) rebuilds a model with the same structure and shapes."""
    model = Simformer(3, depth=1, **TINY, key=getkey())
    assert isinstance(model, AbstractModel)
    rebuilt = Simformer(**model.config, key=getkey())
    assert rebuilt.config == model.config
    shapes = lambda m: jax.tree.map(lambda a: a.shape, eqx.filter(m, eqx.is_array))
    assert jax.tree.structure(rebuilt) == jax.tree.structure(model)
    assert shapes(rebuilt) == shapes(model)


@pytest.mark.parametrize(
    "name",
    ["num_scalars", "dim_value", "dim_id", "dim_condition", "num_heads", "head_dim", "depth", "widening", "dim_time"],
)
@pytest.mark.parametrize("value", [0, -2, True, 2.0, "4"])
def test_bad_hyperparameters_raise(getkey, name, value):
    """Zero, negative and non-integer hyperparameters raise ValueError naming the argument."""
    kwargs = dict(TINY, num_scalars=3, depth=1)
    kwargs[name] = value
    # The suite's runtime type checker rejects a float or str against `int` before the
    # constructor's own check runs; outside the suite that check raises the ValueError.
    error = ValueError if isinstance(value, int) else (ValueError, TypeCheckError)
    with pytest.raises(error, match=f"`{name}`|parameter '{name}'"):
        Simformer(**kwargs, key=getkey())


def _count_eqns(jaxpr) -> tuple[int, int]:
    """(top-level equations, equations including every nested sub-jaxpr)."""
    total = 0
    for eqn in jaxpr.eqns:
        total += 1
        for param in eqn.params.values():
            for sub in param if isinstance(param, (tuple, list)) else (param,):
                if isinstance(sub, jax.extend.core.ClosedJaxpr):
                    total += _count_eqns(sub.jaxpr)[1]
                elif isinstance(sub, jax.extend.core.Jaxpr):
                    total += _count_eqns(sub)[1]
    return len(jaxpr.eqns), total


def test_depth_does_not_grow_the_program(getkey):
    """A depth-8 model traces to as many equations as a depth-1 model (layers run in one scan)."""
    n = 3
    args = (jnp.asarray(0.5), jnp.zeros(n), jnp.zeros(n, bool))
    is_leaf = lambda leaf: isinstance(leaf, jax.ShapeDtypeStruct)
    counts, scan_lengths = [], []
    for depth in (1, 8):
        # Abstract models: tracing needs shapes only, and building depth-8 weights is slow.
        abstract = eqx.filter_eval_shape(Simformer, n, depth=depth, **TINY, key=getkey())
        params, static = eqx.partition(abstract, is_leaf, is_leaf=is_leaf)
        call = lambda p, t, x, m: eqx.combine(p, static)(t, x, m)
        closed = jax.make_jaxpr(call)(params, *args)
        counts.append(_count_eqns(closed.jaxpr))
        scan_lengths.append([e.params["length"] for e in closed.jaxpr.eqns if e.primitive.name == "scan"])
    assert counts[0] == counts[1]
    assert scan_lengths == [[1], [8]]


def test_shape_errors_name_the_argument():
    """A wrong-sized input or an odd time embedding is refused with the argument named."""
    model = Simformer(3, depth=1, dim_value=4, dim_id=4, dim_condition=2, num_heads=2,
                      head_dim=4, widening=2, dim_time=8, key=jr.key(0))
    t = jnp.asarray(0.5)
    with pytest.raises(ValueError, match=r"`x` must have shape \(3,\)"):
        model(t, jnp.zeros(5), jnp.zeros(5, bool))
    # The suite's runtime type checker may catch the mismatch first (a TypeError).
    with pytest.raises((ValueError, TypeError), match="edge_mask"):
        model(t, jnp.zeros(3), jnp.zeros(3, bool), edge_mask=jnp.ones((2, 2), bool))
    with pytest.raises(ValueError, match="`dim_time` must be even"):
        Simformer(3, dim_time=3, key=jr.key(0))
