"""Contract and property tests for the token-ID embeddings: shapes for every strategy, RoPE's
relative-position property, sinusoid and learned-table behaviour, and input validation."""

import functools
import itertools

import equinox as eqx
import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from hypothesis import given, settings

from gensbi_eqx.models._ids import (
    STRATEGIES,
    IdEmbedding,
    apply_rope,
    default_ids,
    grid_ids,
    num_id_axes,
    rope_angles,
    sequence_ids,
)


SETTINGS = settings(deadline=None, max_examples=15, database=None)
# Non-square grids on purpose: height != width must not be confused anywhere.
GRIDS = [(1, 1), (1, 4), (3, 2), (2, 5), (4, 3)]
AXES_DIMS = [(4,), (2, 4), (4, 2, 6)]
THETA = 10_000.0


def normal(seed, shape):
    """Standard normal float32 test data (numpy: no compilation per shape)."""
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


def make_embedding(strategy, grid, axes_dim, dim=8, key=jr.key(0)):
    height, width = grid
    return IdEmbedding(strategy, height * width, dim, axes_dim=axes_dim, grid=grid, key=key)


def valid(strategy, axes_dim):
    return not (strategy == "rope2d" and len(axes_dim) < 2)


@eqx.filter_jit
def pipeline(embedding, other, x):
    """One stream's additive part, and the rotated queries of it joined with a second stream."""
    ids = embedding.default_ids()
    positions = jnp.concatenate(
        [embedding.rope_positions(ids), other.rope_positions(other.default_ids())]
    )
    angles = rope_angles(positions, embedding.axes_dim, THETA)
    return ids, embedding.additive(ids), positions, angles, apply_rope(x, angles)


# ---------------------------------------------------------------- helpers and shapes


def test_sequence_and_grid_ids():
    np.testing.assert_array_equal(sequence_ids(4), np.arange(4.0)[:, None])
    ids = grid_ids(2, 3)
    assert ids.dtype == jnp.float32 and sequence_ids(2).dtype == jnp.float32
    np.testing.assert_array_equal(ids, [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]])


@pytest.mark.parametrize("axes_dim", AXES_DIMS)
def test_num_id_axes_and_default_ids(axes_dim):
    expected = dict(absolute=1, pos1d=1, rope1d=1, pos2d=2, rope2d=2, rope=len(axes_dim))
    assert {s: num_id_axes(s, axes_dim) for s in STRATEGIES} == expected
    ids = default_ids("rope", 5, None, axes_dim)
    assert ids.shape == (5, len(axes_dim))
    np.testing.assert_array_equal(ids[:, 0], np.arange(5.0))
    np.testing.assert_array_equal(ids[:, 1:], 0.0)
    np.testing.assert_array_equal(default_ids("pos2d", 6, (3, 2), axes_dim), grid_ids(3, 2))
    np.testing.assert_array_equal(default_ids("absolute", 6, (3, 2), axes_dim), sequence_ids(6))


@SETTINGS
@given(
    strategy=st.sampled_from(STRATEGIES),
    other_strategy=st.sampled_from(STRATEGIES),
    grid=st.sampled_from(GRIDS),
    axes_dim=st.sampled_from(AXES_DIMS),
)
def test_shapes_agree_for_every_strategy(strategy, other_strategy, grid, axes_dim):
    """default_ids -> additive / rope_positions -> rope_angles -> apply_rope agree on shapes,
    for every strategy (a 2-D one on a non-square grid included), jointly with a second stream."""
    if not (valid(strategy, axes_dim) and valid(other_strategy, axes_dim)):
        return
    n, dim, heads = grid[0] * grid[1], 12, 2
    embedding = make_embedding(strategy, grid, axes_dim, dim)
    other = make_embedding(other_strategy, grid[::-1], axes_dim, dim)
    x = normal(n, (2 * n, heads, sum(axes_dim)))
    ids, additive, positions, angles, rotated = pipeline(embedding, other, x)
    assert ids.shape == (n, num_id_axes(strategy, axes_dim)) and ids.dtype == jnp.float32
    assert additive.shape == (n, dim) and bool(jnp.all(jnp.isfinite(additive)))
    assert positions.shape == (2 * n, len(axes_dim))
    assert angles.shape == (2 * n, sum(axes_dim) // 2)
    assert rotated.shape == x.shape and bool(jnp.all(jnp.isfinite(rotated)))
    assert embedding.uses_rope == strategy.startswith("rope")
    if not embedding.uses_rope:
        np.testing.assert_array_equal(positions[:n], 0.0)
        np.testing.assert_array_equal(rotated[:n], x[:n])
    else:
        np.testing.assert_array_equal(additive, 0.0)


# ---------------------------------------------------------------- RoPE


@eqx.filter_jit
def score(q, p, k, r, axes_dim):
    """Per-token attention logits <rope(q, p), rope(k, r)> of one-head queries and keys."""
    q_rot = apply_rope(q, rope_angles(p, axes_dim, THETA))
    k_rot = apply_rope(k, rope_angles(r, axes_dim, THETA))
    return jnp.sum(q_rot * k_rot, axis=(1, 2))


@st.composite
def rope_problem(draw):
    axes_dim = draw(st.sampled_from(AXES_DIMS))
    columns = draw(st.integers(1, len(axes_dim)))  # fewer columns are zero-padded
    num_tokens = draw(st.sampled_from([1, 3]))
    coordinates = st.floats(-50, 50, width=32)
    p, r = (draw(hnp.arrays(np.float32, (num_tokens, columns), elements=coordinates)) for _ in "pr")
    shift = draw(hnp.arrays(np.float32, (1, columns), elements=coordinates))
    seed = draw(st.integers(0, 2**31 - 1))
    return axes_dim, jnp.asarray(p), jnp.asarray(r), jnp.asarray(shift), seed


@SETTINGS
@given(problem=rope_problem())
def test_rope_scores_depend_only_on_relative_positions(problem):
    axes_dim, p, r, shift, seed = problem
    q, k = normal(seed, (2, p.shape[0], 1, sum(axes_dim)))
    tolerance = 1e-4 * np.linalg.norm(q, axis=(1, 2)) * np.linalg.norm(k, axis=(1, 2))
    shifted = score(q, p + shift, k, r + shift, axes_dim)
    np.testing.assert_array_less(np.abs(shifted - score(q, p, k, r, axes_dim)), tolerance)


def test_rope_scores_do_change_with_relative_position():
    """The property above is not vacuous: moving one token changes the logit."""
    for axes_dim in AXES_DIMS:
        q, k = normal(len(axes_dim), (2, 1, 1, sum(axes_dim)))
        zero = jnp.zeros((1, len(axes_dim)))
        for axis in range(len(axes_dim)):
            moved = zero.at[0, axis].set(1.0)
            change = score(q, moved, k, zero, axes_dim) - score(q, zero, k, zero, axes_dim)
            assert abs(float(change[0])) > 1e-3


@eqx.filter_jit
def rotate(x, positions, axes_dim):
    return apply_rope(x, rope_angles(positions, axes_dim, THETA))


@SETTINGS
@given(problem=rope_problem())
def test_apply_rope_preserves_norms(problem):
    axes_dim, p, _, _, seed = problem
    x = normal(seed, (p.shape[0], 3, sum(axes_dim)))
    rotated = rotate(x, p, axes_dim)
    np.testing.assert_allclose(
        jnp.linalg.norm(rotated, axis=-1), jnp.linalg.norm(x, axis=-1), rtol=1e-5, atol=1e-6
    )


def test_rope_matches_complex_rotation():
    """Pair (2k, 2k+1) is the complex number x_2k + i x_2k+1 times exp(i pos theta^(-2k/d))."""
    axes_dim, n = (4, 2), 5
    positions = 10 * normal(0, (n, 2))
    x = normal(1, (n, 2, 6))
    frequencies = [THETA ** (-np.arange(0, d, 2) / d) for d in axes_dim]
    angles = np.concatenate([np.asarray(positions)[:, a, None] * f for a, f in enumerate(frequencies)], 1)
    np.testing.assert_allclose(rope_angles(positions, axes_dim, THETA), angles, rtol=1e-5, atol=1e-6)
    z = np.asarray(x[..., 0::2]) + 1j * np.asarray(x[..., 1::2])
    expected = z * np.exp(1j * angles)[:, None, :]
    rotated = np.asarray(apply_rope(x, jnp.asarray(angles, jnp.float32)))
    np.testing.assert_allclose(rotated[..., 0::2], expected.real, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(rotated[..., 1::2], expected.imag, rtol=1e-5, atol=1e-5)


def test_zero_positions_and_missing_columns_are_identity():
    axes_dim = (4, 2, 6)
    x = normal(0, (3, 2, 12))
    zero_angles = rope_angles(jnp.zeros((3, 3)), axes_dim, THETA)
    np.testing.assert_array_equal(apply_rope(x, zero_angles), x)
    one_column = normal(1, (3, 1))
    angles = rope_angles(one_column, axes_dim, THETA)
    np.testing.assert_array_equal(angles, rope_angles(jnp.pad(one_column, ((0, 0), (0, 2))), axes_dim, THETA))
    np.testing.assert_array_equal(angles[:, 2:], 0.0)  # only axis 0's 2 angles rotate
    np.testing.assert_array_equal(apply_rope(x, angles)[..., 4:], x[..., 4:])


def test_apply_rope_keeps_bfloat16():
    x = normal(0, (4, 2, 8))
    angles = rope_angles(sequence_ids(4), (8,), THETA)
    low = apply_rope(x.astype(jnp.bfloat16), angles)
    assert low.dtype == jnp.bfloat16
    np.testing.assert_allclose(low.astype(jnp.float32), apply_rope(x, angles), atol=5e-2)


# ---------------------------------------------------------------- sinusoids


def min_pairwise_distance(rows) -> float:
    """Smallest max-norm distance between two different rows."""
    rows = np.asarray(rows)
    return min(np.max(np.abs(rows[i] - rows[j])) for i, j in itertools.combinations(range(len(rows)), 2))


@SETTINGS
@given(
    axes=st.sampled_from([1, 2]),
    dim=st.sampled_from([4, 16]),
    data=st.data(),
)
def test_sinusoids_distinct_and_bounded(axes, dim, data):
    positions = data.draw(
        st.lists(st.tuples(*[st.integers(0, 500)] * axes), min_size=6, max_size=6, unique=True)
    )
    n = len(positions)
    ids = jnp.asarray(positions, jnp.float32)
    strategy = "pos1d" if axes == 1 else "pos2d"
    features = IdEmbedding(strategy, n, dim, axes_dim=(4,), grid=(n, 1), key=jr.key(0)).additive(ids)
    assert features.shape == (n, dim)
    assert bool(jnp.all(jnp.isfinite(features))) and bool(jnp.all(jnp.abs(features) <= 1.0))
    assert min_pairwise_distance(features) > 1e-3


def test_pos2d_grid_rows_are_distinct():
    embedding = IdEmbedding("pos2d", 12, 8, axes_dim=(4,), grid=(3, 4), key=jr.key(0))
    features = np.asarray(embedding.additive(embedding.default_ids()))
    assert len(np.unique(features.round(5), axis=0)) == 12


# ---------------------------------------------------------------- learned table


@functools.cache
def absolute_embedding(n: int) -> IdEmbedding:
    return IdEmbedding("absolute", n, 8, axes_dim=(4,), key=jr.key(n))


@SETTINGS
@given(n=st.sampled_from([2, 3, 7]), perm_seed=st.integers(0, 2**31 - 1))
def test_absolute_rows_distinct_and_follow_ids(n, perm_seed):
    embedding = absolute_embedding(n)
    ids = embedding.default_ids()
    table = embedding.additive(ids)
    assert min_pairwise_distance(table) > 0.0
    perm = np.random.default_rng(perm_seed).permutation(n)
    np.testing.assert_array_equal(embedding.additive(ids[perm]), table[perm])


def test_absolute_lookup_rounds_and_clamps():
    embedding = IdEmbedding("absolute", 3, 4, axes_dim=(4,), key=jr.key(0))
    table = embedding.additive(embedding.default_ids())
    out = embedding.additive(jnp.array([[-3.0], [1.2], [9.0]]))
    np.testing.assert_array_equal(out, table[jnp.array([0, 1, 2])])


def test_absolute_table_is_trainable():
    embedding = IdEmbedding("absolute", 3, 4, axes_dim=(4,), key=jr.key(0))
    grads = eqx.filter_grad(lambda e: jnp.sum(e.additive(e.default_ids()) ** 2))(embedding)
    assert bool(jnp.all(grads.table != 0.0))
    assert IdEmbedding("rope1d", 3, 4, axes_dim=(4,), key=jr.key(0)).table is None


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: IdEmbedding("learned", 4, 8, axes_dim=(4,), key=jr.key(0)), "`strategy`"),
        (lambda: num_id_axes("rope3d", (4,)), "`strategy`"),
        (lambda: default_ids("sinusoid", 4, None, (4,)), "`strategy`"),
        (lambda: IdEmbedding("rope1d", 4, 8, axes_dim=(3,), key=jr.key(0)), "`axes_dim`"),
        (lambda: IdEmbedding("rope", 4, 8, axes_dim=(4, 5), key=jr.key(0)), "`axes_dim`"),
        (lambda: IdEmbedding("rope", 4, 8, axes_dim=(0,), key=jr.key(0)), "`axes_dim`"),
        (lambda: IdEmbedding("rope2d", 4, 8, axes_dim=(4,), grid=(2, 2), key=jr.key(0)), "`axes_dim`"),
        (lambda: rope_angles(jnp.zeros((2, 1)), (3,), THETA), "`axes_dim`"),
        (lambda: IdEmbedding("pos2d", 6, 8, axes_dim=(4,), key=jr.key(0)), "`grid`"),
        (lambda: IdEmbedding("rope2d", 6, 8, axes_dim=(4, 4), key=jr.key(0)), "`grid`"),
        (lambda: IdEmbedding("pos2d", 6, 8, axes_dim=(4,), grid=(2, 2), key=jr.key(0)), "`grid`"),
        (lambda: IdEmbedding("rope2d", 6, 8, axes_dim=(4, 4), grid=(3, 3), key=jr.key(0)), "`grid`"),
        (lambda: default_ids("pos2d", 6, (4, 2), (4,)), "`grid`"),
        (lambda: default_ids("rope2d", 6, None, (4, 4)), "`grid`"),
        (lambda: IdEmbedding("pos1d", 4, 7, axes_dim=(4,), key=jr.key(0)), "`dim`"),
        (lambda: IdEmbedding("pos2d", 4, 6, axes_dim=(4,), grid=(2, 2), key=jr.key(0)), "`dim`"),
        (lambda: IdEmbedding("absolute", 4, 0, axes_dim=(4,), key=jr.key(0)), "`dim`"),
        (lambda: rope_angles(jnp.zeros((2, 3)), (4, 4), THETA), "`positions`"),
        (lambda: apply_rope(jnp.zeros((2, 1, 8)), jnp.zeros((2, 3))), "`angles`"),
    ],
)
def test_bad_arguments_are_named(call, name):
    with pytest.raises(ValueError, match=name):
        call()


@pytest.mark.parametrize(
    "strategy, grid, ids_shape",
    [
        ("absolute", None, (5, 1)),
        ("pos1d", None, (4, 2)),
        ("rope1d", None, (4, 2)),
        ("pos2d", (2, 2), (4, 1)),
        ("rope2d", (2, 2), (2, 2)),
        ("rope", None, (4, 2)),
    ],
)
@pytest.mark.parametrize("method", ["additive", "rope_positions"])
def test_wrong_ids_shape(strategy, grid, ids_shape, method):
    embedding = IdEmbedding(strategy, 4, 8, axes_dim=(4, 2, 2), grid=grid, key=jr.key(0))
    expected = str(embedding.default_ids().shape)
    with pytest.raises(ValueError, match=r"`ids`") as error:
        getattr(embedding, method)(jnp.zeros(ids_shape))
    assert expected in str(error.value) and str(ids_shape) in str(error.value)
