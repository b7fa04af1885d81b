"""Token metadata in Flux1Joint and Flux1: the tokens of an `Series` node share one ID and are
placed by RoPE at their (real-valued) coordinates, so the models are equivariant to reordering
them; errors, and config round trips."""

import json

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import gensbi_eqx as gs
from gensbi_eqx.api._query import flat_query

from randomise import random_model
from untrained import untrained_estimator

SMALL = dict(num_heads=2, axes_dim=(4,), depth=1, depth_single_blocks=1, mlp_ratio=2.0)
SMALL_JOINT = dict(num_heads=2, axes_dim=(4,), depth_single_blocks=1, mlp_ratio=2.0)
N, T = 6, 5
TOL = dict(atol=1e-5, rtol=1e-5)  # float32 rounding of a reordered attention sum
TIME = jnp.asarray(0.4)


def _normal(shape, seed):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _times(shape, seed):
    return np.random.default_rng(seed).uniform(size=shape).astype(np.float32)


def _joint_data(channels):
    """theta (N, 2) and a series x of T points, (N, T) or (N, T, channels), with per-scalar
    times (per row and channel when there are channels)."""
    shape = (N, T) if channels is None else (N, T, channels)
    return {
        "theta": _normal((N, 2), 0),
        "x": gs.Series(_normal(shape, 1), _times(shape, 2)),
    }


def _inputs(model, seed):
    """Values, metadata (zero where not read, to check it is not) and a condition mask."""
    n = model.num_scalars
    rng = np.random.default_rng(seed)  # numpy: no eager jax op to compile
    x = rng.normal(size=n).astype(np.float32)
    metadata = np.where(model.has_metadata, rng.uniform(size=n), 0.0).astype(np.float32)
    mask = rng.uniform(size=n) < 0.5
    if model.fixed_condition_mask is not None:
        mask = np.asarray(model.fixed_condition_mask)
    return jnp.asarray(x), jnp.asarray(metadata), jnp.asarray(mask)


def _build(make, seed=0):
    """The model ``make(key)`` with N(0, 0.5^2) weights (fresh Flux blocks output zero, which
    would make these tests vacuous), built without running its initialisation."""
    return random_model(make, seed)


def _same_weights(model, skeleton):
    """``skeleton`` (same parameter tree, other static fields) with ``model``'s weights."""
    leaves = jax.tree.leaves(model)
    assert len(leaves) == len(jax.tree.leaves(skeleton))
    return jax.tree.unflatten(jax.tree.structure(skeleton), leaves)


def _without_metadata(model):
    """The same network built with no metadata tokens (but the same token IDs), with the same
    weights: its RoPE rotates nothing."""
    config = {k: v for k, v in model.config.items() if k not in ("has_metadata", "metadata_scale")}
    plain = _build(lambda key: type(model)(**config, key=key))
    assert not any(plain.has_metadata) and plain.token_ids == model.token_ids
    return _same_weights(model, plain)


@pytest.fixture(scope="module")
def joint():
    """A Flux1Joint on (N, T) series points, its jitted call and inputs."""
    model = _build(lambda key: gs.Flux1Joint.for_data(_joint_data(None), key=key, **SMALL_JOINT), 4)
    return model, eqx.filter_jit(model), _inputs(model, 5)


@pytest.fixture(scope="module")
def joint_channels():
    """A Flux1Joint on (N, T, 2) series points (per-channel times)."""
    model = _build(lambda key: gs.Flux1Joint.for_data(_joint_data(2), key=key, **SMALL_JOINT), 7)
    return model, eqx.filter_jit(model), _inputs(model, 8)


@pytest.fixture(scope="module")
def flux_cond():
    """A Flux1 for p(theta | x) with x an (N, T, 2) series: the cond tokens have metadata."""
    data = {
        "theta": _normal((N, 2), 0),
        "x": gs.Series(_normal((N, T, 2), 1), _times((N, T), 2)),
    }
    model = _build(lambda key: gs.Flux1.for_data(data, condition_on="x", key=key, **SMALL), 10)
    return model, eqx.filter_jit(model), _inputs(model, 11)


@pytest.fixture(scope="module")
def flux_obs():
    """A Flux1 for p(z | y) with the INFERRED node z an (N, T, 2) series with times; y comes
    first, so obs and cond scalars interleave in the flat vector's node order."""
    data = {
        "y": _normal((N, 3), 0),
        "z": gs.Series(_normal((N, T, 2), 1), _times((T,), 2)),
    }
    model = _build(lambda key: gs.Flux1.for_data(data, condition_on="y", key=key, **SMALL), 13)
    return model, eqx.filter_jit(model), _inputs(model, 14)


# ---- equivariance -------------------------------------------------------------------------------


def _permutation(num_scalars, start, point_perms):
    """Flat permutation that reorders the points of a node starting at ``start``: channel ``c``
    of point ``i`` takes channel ``c`` of point ``point_perms[c][i]``."""
    channels = len(point_perms)
    perm = np.arange(num_scalars)
    for c, point_perm in enumerate(point_perms):
        perm[start + c + channels * np.arange(T)] = start + c + channels * np.asarray(point_perm)
    return perm


def _check_equivariant(call, inputs, perm):
    x, metadata, mask = inputs
    out = call(TIME, x, mask, metadata=metadata)
    permuted = call(TIME, x[perm], mask[perm], metadata=metadata[perm])
    np.testing.assert_allclose(permuted, out[perm], **TOL)


@settings(max_examples=12, deadline=None)
@given(st.permutations(range(T)))
def test_joint_is_equivariant_to_reordering_points(joint, point_perm):
    model, call, inputs = joint
    _check_equivariant(call, inputs, _permutation(model.num_scalars, 2, [point_perm]))


@settings(max_examples=12, deadline=None)
@given(st.permutations(range(T)), st.permutations(range(T)))
def test_joint_is_equivariant_per_channel(joint_channels, perm0, perm1):
    """Each scalar is a token: the channels of a series may even be reordered separately."""
    model, call, inputs = joint_channels
    assert model.token_ids[2:6] == (2, 3, 2, 3)  # one ID per channel
    _check_equivariant(call, inputs, _permutation(model.num_scalars, 2, [perm0, perm1]))


@settings(max_examples=12, deadline=None)
@given(st.permutations(range(T)))
def test_flux1_is_invariant_to_reordering_condition_points(flux_cond, point_perm):
    model, call, inputs = flux_cond
    _check_equivariant(call, inputs, _permutation(model.num_scalars, 2, [point_perm] * 2))


@settings(max_examples=12, deadline=None)
@given(st.permutations(range(T)))
def test_flux1_is_equivariant_to_reordering_inferred_points(flux_obs, point_perm):
    model, call, inputs = flux_obs
    assert model.fixed_condition_mask == (True,) * 3 + (False,) * (2 * T)
    _check_equivariant(call, inputs, _permutation(model.num_scalars, 3, [point_perm] * 2))


# ---- what the metadata does ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["joint", "flux_cond"])
def test_zero_metadata_rotates_nothing_and_metadata_matters(name, request):
    model, call, (x, metadata, mask) = request.getfixturevalue(name)
    plain = _without_metadata(model)
    zeros = jnp.zeros(model.num_scalars)
    at_zero = call(TIME, x, mask, metadata=zeros)
    np.testing.assert_array_equal(at_zero, eqx.filter_jit(plain)(TIME, x, mask))
    out = call(TIME, x, mask, metadata=metadata)
    other = call(TIME, x, mask, metadata=metadata * 0.5 + 0.25)
    assert float(jnp.max(jnp.abs(out - at_zero))) > 1e-3
    assert float(jnp.max(jnp.abs(other - out))) > 1e-3
    # Only the tokens with metadata read it.
    unread = jnp.where(jnp.asarray(model.has_metadata), metadata, 7.0)
    np.testing.assert_array_equal(call(TIME, x, mask, metadata=unread), out)


def test_flux1_reads_the_time_of_a_tokens_first_scalar(flux_cond):
    model, call, (x, metadata, mask) = flux_cond
    second = np.arange(model.num_scalars) % 2 == 1  # channel 1 of the x tokens (and theta[1])
    moved = jnp.where(jnp.asarray(model.has_metadata) & second, metadata + 3.0, metadata)
    out = call(TIME, x, mask, metadata=metadata)
    np.testing.assert_array_equal(call(TIME, x, mask, metadata=moved), out)


def test_flux1_id_overrides_still_work_with_metadata(flux_cond):
    """The default cond ids are the shared ones (every x token uses row 0); given ids replace
    them in the additive embedding while the metadata still sets the RoPE positions."""
    model, call, (x, metadata, mask) = flux_cond
    out = call(TIME, x, mask, metadata=metadata)
    shared = jnp.zeros((T, 1))
    np.testing.assert_array_equal(call(TIME, x, mask, metadata=metadata, cond_ids=shared), out)
    own = model.cond_ids.default_ids()
    moved = call(TIME, x, mask, metadata=metadata, cond_ids=own)
    assert float(jnp.max(jnp.abs(moved - out))) > 1e-3


def test_for_data_sets_shared_ids_and_the_metadata_mask(flux_cond):
    joint = _build(lambda key: gs.Flux1Joint.for_data(_joint_data(2), key=key, **SMALL_JOINT))
    assert joint.has_metadata == (False,) * 2 + (True,) * (2 * T)
    assert joint.token_ids == (0, 1) + (2, 3) * T
    assert joint.config["metadata_scale"] == 2 + 2 * T
    model = flux_cond[0]
    assert model.has_metadata == (False,) * 2 + (True,) * (2 * T)
    assert model.config["metadata_scale"] == 2 + T  # tokens, not scalars
    data = {"theta": np.zeros((N, 2)), "x": np.zeros((N, T))}
    plain = _build(lambda key: gs.Flux1Joint.for_data(data, key=key, **SMALL_JOINT))
    assert not any(plain.has_metadata)
    assert not {"token_ids", "has_metadata", "metadata_scale"} & set(plain.config)


# ---- errors ------------------------------------------------------------------------------------


def test_metadata_errors(joint, flux_cond):
    for model in (joint[0], flux_cond[0]):
        x, metadata, mask = _inputs(model, 0)
        with pytest.raises(ValueError, match="pass `metadata`"):
            model(TIME, x, mask)
        with pytest.raises((ValueError, TypeError), match="metadata"):  # jaxtyping or ours
            model(TIME, x, mask, metadata=metadata[:-1])
    plain = _build(lambda key: gs.Flux1Joint(4, key=key, **SMALL_JOINT))
    with pytest.raises(ValueError, match="no tokens with metadata"):
        plain(TIME, jnp.ones(4), jnp.zeros(4, bool), metadata=jnp.zeros(4))
    flux = _build(lambda key: gs.Flux1(2, 3, key=key, **SMALL))
    with pytest.raises(ValueError, match="no tokens with metadata"):
        flux(TIME, jnp.ones(5), jnp.asarray(flux.fixed_condition_mask), metadata=jnp.zeros(5))


def test_strategies_that_need_their_own_rope_positions_are_refused():
    meta = (False, True, True)
    for strategy in ("rope1d", "rope"):
        with pytest.raises(ValueError, match="id_embedding_strategy.*coordinates"):
            gs.Flux1Joint(3, has_metadata=meta, id_embedding_strategy=strategy, key=jr.key(0),
                          **SMALL_JOINT)
    _build(lambda key: gs.Flux1Joint(3, has_metadata=meta, id_embedding_strategy="pos1d", key=key,
                                     **SMALL_JOINT))
    # Flux1: per stream. Cond tokens (the last 3 scalars) have metadata here.
    flux_meta = (False, False, True, True, True)
    with pytest.raises(ValueError, match=r"id_embedding_strategy \(cond stream\)"):
        gs.Flux1(2, 3, has_metadata=flux_meta, id_embedding_strategy=("absolute", "rope1d"),
                 key=jr.key(0), **SMALL)
    _build(lambda key: gs.Flux1(2, 3, has_metadata=flux_meta, key=key,
                                id_embedding_strategy=("rope1d", "pos1d"), **SMALL))
    with pytest.raises(ValueError, match="`has_metadata` must be the same for the channels"):
        gs.Flux1(1, 2, context_in_dim=2, has_metadata=(False, True, False, True, True),
                 key=jr.key(0), **SMALL)
    with pytest.raises(ValueError, match="`token_ids`"):  # shares the ID of an obs token
        gs.Flux1(2, 3, token_ids=(0, 1, 0, 2, 2), has_metadata=flux_meta, key=jr.key(0), **SMALL)


def test_flux1_for_data_needs_one_time_per_token():
    values = np.zeros((N, T, 2), np.float32)
    theta = np.zeros((N, 2), np.float32)
    per_channel = _times((N, T, 2), 0)
    with pytest.raises(ValueError, match=r"one time per token.*\(T,\) or \(\.\.\., T\)"):
        gs.Flux1.for_data({"theta": theta, "x": gs.Series(values, per_channel)},
                          condition_on="x", key=jr.key(0), **SMALL)
    # Per-channel times that agree are fine, and Flux1Joint takes any.
    same = np.repeat(_times((N, T, 1), 0), 2, axis=-1)
    _build(lambda key: gs.Flux1.for_data({"theta": theta, "x": gs.Series(values, same)},
                                         condition_on="x", key=key, **SMALL))
    timed = {"theta": theta, "x": gs.Series(values, per_channel)}
    _build(lambda key: gs.Flux1Joint.for_data(timed, key=key, **SMALL_JOINT))


def test_flux1_queries_need_one_time_per_token(flux_cond):
    """A query's condition is held to the training data's rule: Flux1 would read only the first
    channel's times. Checked before anything is traced."""
    data = {
        "theta": _normal((N, 2), 0),
        "x": gs.Series(_normal((N, T, 2), 1), _times((N, T), 2)),
    }
    est = untrained_estimator(flux_cond[0], data, gs.FlowMatching())
    values = _normal((3, 2), 3)
    per_channel = _times((3, 2), 4)
    with pytest.raises(ValueError, match=r"`condition\['x'\]\.times` differ between the channels"):
        est.sample(jr.key(0), {"x": gs.Series(values, per_channel)}, 2)
    with pytest.raises(ValueError, match=r"`condition\['x'\]\.times` differ"):  # batched
        est.sample(jr.key(0), {"x": gs.Series(values[None], per_channel[None])}, 2)
    # One time per point, or per-channel times that agree, make a query.
    for times in (per_channel[:, 0], np.repeat(per_channel[:, :1], 2, axis=-1)):
        given, metadata, _ = flat_query(
            est.layout, est.model, est.time_standardiser, {"x": gs.Series(values, times)}
        )
        assert np.isfinite(metadata).all()


# ---- config ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["joint", "joint_channels", "flux_cond", "flux_obs"])
def test_config_round_trip(name, request):
    model = request.getfixturevalue(name)[0]
    assert isinstance(model.config["token_ids"], list)
    assert isinstance(model.config["has_metadata"], list)
    for config in (model.config, json.loads(json.dumps(model.config))):
        rebuilt = _build(lambda key: type(model)(**config, key=key))
        assert rebuilt.token_ids == model.token_ids
        assert rebuilt.has_metadata == model.has_metadata
        assert rebuilt.num_scalars == model.num_scalars
        assert rebuilt.config == model.config
        assert jax.tree.structure(rebuilt) == jax.tree.structure(model)


def test_custom_token_ids_without_metadata_survive_the_config():
    model = _build(lambda key: gs.Flux1Joint(4, token_ids=(0, 0, 2, 3), key=key, **SMALL_JOINT))
    assert _build(lambda key: type(model)(**model.config, key=key)).token_ids == (0, 0, 2, 3)
