"""Declared dependencies and the attention masks built from them: properties on random DAGs,
faithfulness by d-separation, hand-worked masks, and the declaration's parsing and validation."""

import json
import re

import equinox as eqx
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings

from gensbi_eqx.data import Dependencies, NodeLayout
from gensbi_eqx.models import (
    AbstractAttention,
    DenseAttention,
    DirectedAttention,
    UndirectedAttention,
    dense_mask,
    directed_mask,
    undirected_mask,
)

BATCH = 4
directed_batch = jax.jit(jax.vmap(directed_mask, in_axes=(None, 0)))
# The mask function behind each attention policy, jitted once per shape.
MASK_FUNCTIONS = {
    DenseAttention: jax.jit(lambda b, c: dense_mask(b)),
    UndirectedAttention: jax.jit(lambda b, c: undirected_mask(b)),
    DirectedAttention: jax.jit(directed_mask),
}


def bound_policies(base: np.ndarray) -> list[AbstractAttention]:
    """Every attention policy over ``base`` (as declared dependencies of one node of
    ``len(base)`` scalars), bound to that layout."""
    layout = NodeLayout(("z",), ((base.shape[0],),))
    deps = Dependencies.from_adjacency(base)
    return [DenseAttention().bind(layout), UndirectedAttention(deps).bind(layout),
            DirectedAttention(deps).bind(layout)]


# ----------------------------------------------------------------------------- graph helpers


@st.composite
def dags(draw):
    """A random DAG as a base mask ([i, j]: i depends on j, diagonal True) and a batch of
    condition masks: a strictly lower-triangular graph under a random node permutation."""
    n = draw(st.sampled_from([3, 5, 8]))
    bits = draw(st.lists(st.booleans(), min_size=n * n, max_size=n * n))
    lower = np.tril(np.array(bits).reshape(n, n), -1)
    perm = np.array(draw(st.permutations(range(n))))
    base = lower[np.ix_(perm, perm)] | np.eye(n, dtype=bool)
    flat = draw(st.lists(st.booleans(), min_size=BATCH * n, max_size=BATCH * n))
    return base, np.array(flat).reshape(BATCH, n)


def moral_graph(base: np.ndarray) -> np.ndarray:
    """Moral graph by its definition: i ~ j if equal, parent/child, or parents of one child."""
    n = base.shape[0]
    out = np.eye(n, dtype=bool)
    for i in range(n):
        for j in range(n):
            shared_child = any(base[k, i] and base[k, j] for k in range(n))
            out[i, j] |= base[i, j] or base[j, i] or shared_child
    return out


def d_separated(base: np.ndarray, xs, ys, zs) -> bool:
    """xs and ys d-separated by zs in the DAG ``base``: disconnected in the moral graph of the
    ancestral set of xs, ys and zs once zs are removed (Lauritzen's criterion)."""
    n = base.shape[0]
    parents = base & ~np.eye(n, dtype=bool)
    keep = np.zeros(n, dtype=bool)
    keep[list(xs) + list(ys) + list(zs)] = True
    while True:
        grown = keep | parents[keep].any(axis=0)
        if (grown == keep).all():
            break
        keep = grown
    idx = np.flatnonzero(keep)
    moral = moral_graph(base[np.ix_(idx, idx)])
    position = {int(v): k for k, v in enumerate(idx)}
    open_ = np.ones(len(idx), dtype=bool)
    open_[[position[z] for z in zs]] = False
    reached = np.zeros(len(idx), dtype=bool)
    reached[[position[x] for x in xs]] = True
    while True:
        grown = reached | (moral[reached].any(axis=0) & open_)
        if (grown == reached).all():
            break
        reached = grown
    return not reached[[position[y] for y in ys]].any()


def latent_order(mask: np.ndarray, latent: np.ndarray) -> list[int] | None:
    """An order of the latent nodes in which each comes before every latent it attends to, or
    None when the latent part of the mask has a cycle."""
    remaining = [int(v) for v in np.flatnonzero(latent)]
    order = []
    while remaining:
        free = [v for v in remaining if not any(mask[u, v] for u in remaining if u != v)]
        if not free:
            return None
        order.append(free[0])
        remaining.remove(free[0])
    return order


def assert_faithful(base: np.ndarray, observed: np.ndarray, mask: np.ndarray):
    """The mask's latent rows define p(latent | observed) = prod_v p(v | attended(v)): in an order
    where v precedes the latents it attends to, v is d-separated from the later latents and the
    observed nodes it does not attend to, given those it does."""
    order = latent_order(mask, ~observed)
    assert order is not None, "the latent part of the directed mask has a cycle"
    for k, v in enumerate(order):
        given_ = {int(u) for u in np.flatnonzero(mask[v])} - {v}
        rest = (set(order[k + 1 :]) | {int(u) for u in np.flatnonzero(observed)}) - given_
        if rest:
            assert d_separated(base, [v], sorted(rest), sorted(given_)), (v, given_, rest)


# ----------------------------------------------------------------------------- properties


@settings(deadline=None, max_examples=25, database=None)
@given(graph=dags())
def test_mask_contract(graph):
    """Every policy's mask function gives a bool (n, n) mask with a True diagonal; dense is all
    True; the moralised mask is symmetric, contains base and base.T, and is exactly the moral
    graph; each attention policy, bound to a layout, gives its function's mask (the dense one
    gives None: no mask at all)."""
    base, conditions = graph
    n = base.shape[0]
    for function in MASK_FUNCTIONS.values():
        mask = np.asarray(function(jnp.asarray(base), jnp.asarray(conditions[0])))
        assert mask.shape == (n, n) and mask.dtype == np.bool_
        assert mask.diagonal().all()
    assert np.asarray(dense_mask(base)).all()
    moral = np.asarray(undirected_mask(jnp.asarray(base)))
    np.testing.assert_array_equal(moral, moral.T)
    assert (moral >= base).all() and (moral >= base.T).all()
    np.testing.assert_array_equal(moral, moral_graph(base))
    np.testing.assert_array_equal(
        np.asarray(MASK_FUNCTIONS[UndirectedAttention](jnp.asarray(base), jnp.asarray(conditions[1]))),
        moral,
    )
    # Bound to a layout, the policies carry the base mask; the undirected one gives the moral
    # graph (eagerly: its few operations need no compilation per random graph) and the dense
    # one no mask at all. The directed policy is checked against hand-worked masks below.
    dense, undirected, directed = bound_policies(base)
    assert dense(jnp.asarray(conditions[0])) is None
    for policy in (undirected, directed):
        np.testing.assert_array_equal(np.asarray(policy.base), base)
    np.testing.assert_array_equal(np.asarray(undirected(jnp.asarray(conditions[0]))), moral)


@settings(deadline=None, max_examples=25, database=None)
@given(graph=dags())
def test_directed_jit_vmap_matches_eager(graph):
    """Under jit + vmap over a batch of different condition masks, the directed mask equals the
    one computed eagerly (no compilation at all) example by example."""
    base, conditions = graph
    batched = np.asarray(directed_batch(jnp.asarray(base), jnp.asarray(conditions)))
    assert batched.shape == (BATCH, *base.shape) and batched.dtype == np.bool_
    with jax.disable_jit():
        for k in range(2):
            eager = np.asarray(directed_mask(jnp.asarray(base), jnp.asarray(conditions[k])))
            np.testing.assert_array_equal(batched[k], eager)


@settings(deadline=None, max_examples=30, database=None)
@given(graph=dags())
def test_directed_mask_is_faithful(graph):
    """Observed rows equal base; nothing or everything observed gives base; each latent attends
    to its observed neighbours in the moral graph; each moral edge between two latents is kept in
    exactly one direction and the latent part is acyclic; and the mask is faithful to
    p(latent | observed) (checked by d-separation in the DAG)."""
    base, conditions = graph
    n = base.shape[0]
    masks = np.asarray(directed_batch(jnp.asarray(base), jnp.asarray(conditions)))
    moral = moral_graph(base)
    for observed, mask in zip(conditions, masks):
        np.testing.assert_array_equal(mask[observed], base[observed])
        if not observed.any() or observed.all():
            np.testing.assert_array_equal(mask, base)
            continue
        latent = ~observed
        assert (mask[np.ix_(latent, observed)] >= moral[np.ix_(latent, observed)]).all()
        for i in np.flatnonzero(latent):
            for j in np.flatnonzero(latent):
                if i != j and moral[i, j]:
                    assert mask[i, j] != mask[j, i], (i, j)
        assert_faithful(base, observed, mask)
    everything = np.ones((BATCH, n), dtype=bool)
    for mask in np.asarray(directed_batch(jnp.asarray(base), jnp.asarray(everything))):
        np.testing.assert_array_equal(mask, base)


def test_directed_compiles_once_for_all_condition_masks():
    """The condition mask is traced: one compilation serves every condition mask."""
    base = jnp.asarray(np.tril(np.ones((5, 5), dtype=bool)))
    traced = jax.jit(eqx.debug.assert_max_traces(directed_mask, max_traces=1))
    for bits in range(8):
        traced(base, jnp.asarray([bool(bits >> k & 1) for k in range(5)]))


# ----------------------------------------------------------------------------- hand-worked

# Two-moons-shaped graph: nodes theta0, theta1, x0, x1; each x_k depends on both thetas.
MOONS_LAYOUT = NodeLayout(("theta", "x"), ((2,), (2,)))
MOONS = Dependencies({"x": ["theta"]})
MOONS_BASE = [
    [1, 0, 0, 0],
    [0, 1, 0, 0],
    [1, 1, 1, 0],
    [1, 1, 0, 1],
]
MOONS_UNDIRECTED = [  # thetas are co-parents of x0 (and x1); x0 and x1 share no child
    [1, 1, 1, 1],
    [1, 1, 1, 1],
    [1, 1, 1, 0],
    [1, 1, 0, 1],
]
MOONS_DIRECTED = {
    # Posterior: theta1 is eliminated first (a tie broken towards the higher index) and attends
    # to everything; then theta0 attends to the data: p(theta1 | theta0, x) p(theta0 | x).
    (0, 0, 1, 1): [
        [1, 0, 1, 1],
        [1, 1, 1, 1],
        [1, 1, 1, 0],
        [1, 1, 0, 1],
    ],
    # Likelihood: x1 then x0, each attending to the thetas only, which is the base mask.
    (1, 1, 0, 0): MOONS_BASE,
    # theta1 and x0 observed: x1 goes first (theta0 has a latent child), then theta0:
    # p(x1 | theta0, theta1) p(theta0 | theta1, x0).
    (0, 1, 1, 0): [
        [1, 1, 1, 0],
        [0, 1, 0, 0],
        [1, 1, 1, 0],
        [1, 1, 0, 1],
    ],
}

# The Simformer paper's Tree task: theta0 -> theta1, theta2; theta1 -> x0, x1; theta2 -> x2, x3.
TREE_LAYOUT = NodeLayout(
    ("theta0", "theta1", "theta2", "x0", "x1", "x2", "x3"), ((1,),) * 7
)
TREE = Dependencies(
    {
        "theta1": "theta0",
        "theta2": "theta0",
        "x0": ["theta1"],
        "x1": ["theta1"],
        "x2": ["theta2"],
        "x3": ["theta2"],
    }
)
TREE_BASE = [
    [1, 0, 0, 0, 0, 0, 0],
    [1, 1, 0, 0, 0, 0, 0],
    [1, 0, 1, 0, 0, 0, 0],
    [0, 1, 0, 1, 0, 0, 0],
    [0, 1, 0, 0, 1, 0, 0],
    [0, 0, 1, 0, 0, 1, 0],
    [0, 0, 1, 0, 0, 0, 1],
]
TREE_UNDIRECTED = [  # one parent per node: no co-parents, so base | base.T
    [1, 1, 1, 0, 0, 0, 0],
    [1, 1, 0, 1, 1, 0, 0],
    [1, 0, 1, 0, 0, 1, 1],
    [0, 1, 0, 1, 0, 0, 0],
    [0, 1, 0, 0, 1, 0, 0],
    [0, 0, 1, 0, 0, 1, 0],
    [0, 0, 1, 0, 0, 0, 1],
]
TREE_DIRECTED = {
    # Posterior: theta2 (tie with theta1, higher index), then theta1, then theta0. Eliminating
    # theta2 joins theta0 with x2, x3; eliminating theta1 joins theta0 with x0, x1.
    (0, 0, 0, 1, 1, 1, 1): [
        [1, 0, 0, 1, 1, 1, 1],
        [1, 1, 0, 1, 1, 0, 0],
        [1, 0, 1, 0, 0, 1, 1],
        [0, 1, 0, 1, 0, 0, 0],
        [0, 1, 0, 0, 1, 0, 0],
        [0, 0, 1, 0, 0, 1, 0],
        [0, 0, 1, 0, 0, 0, 1],
    ],
    # x0 and x2 observed: x3, x1 (leaves), then theta2, theta1, theta0. The latent leaves attend
    # to their parent only; theta0 ends up attending to both observations.
    (0, 0, 0, 1, 0, 1, 0): [
        [1, 0, 0, 1, 0, 1, 0],
        [1, 1, 0, 1, 0, 0, 0],
        [1, 0, 1, 0, 0, 1, 0],
        [0, 1, 0, 1, 0, 0, 0],
        [0, 1, 0, 0, 1, 0, 0],
        [0, 0, 1, 0, 0, 1, 0],
        [0, 0, 1, 0, 0, 0, 1],
    ],
    # Likelihood: the data are leaves given the thetas, so the mask is the base mask.
    (1, 1, 1, 0, 0, 0, 0): TREE_BASE,
    # Joint: nothing observed, the generative direction.
    (0, 0, 0, 0, 0, 0, 0): TREE_BASE,
}


@pytest.mark.parametrize(
    "deps, layout, base, undirected, directed",
    [
        (MOONS, MOONS_LAYOUT, MOONS_BASE, MOONS_UNDIRECTED, MOONS_DIRECTED),
        (TREE, TREE_LAYOUT, TREE_BASE, TREE_UNDIRECTED, TREE_DIRECTED),
    ],
    ids=["two_moons", "tree"],
)
def test_hand_worked_masks(deps, layout, base, undirected, directed):
    """Base, undirected and directed masks of two small graphs, worked out by hand, through the
    mask functions and through the attention policies bound to the layout."""
    adjacency = deps.adjacency(layout)
    np.testing.assert_array_equal(adjacency, np.array(base, dtype=bool))
    np.testing.assert_array_equal(
        np.asarray(undirected_mask(adjacency)), np.array(undirected, dtype=bool)
    )
    conditions = jnp.asarray(np.array(list(directed), dtype=bool))
    for_each = eqx.filter_jit(lambda policy, masks: jax.vmap(policy)(masks))
    by_policy = np.asarray(for_each(UndirectedAttention(deps).bind(layout), conditions))
    np.testing.assert_array_equal(by_policy, np.broadcast_to(undirected, by_policy.shape))
    by_policy = np.asarray(for_each(DirectedAttention(deps).bind(layout), conditions))
    for (condition, expected), got in zip(directed.items(), by_policy):
        observed = np.array(condition, dtype=bool)
        np.testing.assert_array_equal(got, np.array(expected, dtype=bool), err_msg=str(condition))
        if observed.any():
            assert_faithful(adjacency, observed, got)


def test_two_moons_with_shared_noise():
    """Two moons' x1 shares the simulator's noise with x0: declared element-wise, x0 and x1 become
    neighbours and the moral graph is complete."""
    deps = Dependencies({"x": ["theta"], ("x", 1): [("x", 0)]})
    adjacency = deps.adjacency(MOONS_LAYOUT)
    expected = np.array(MOONS_BASE, dtype=bool)
    expected[3, 2] = True
    np.testing.assert_array_equal(adjacency, expected)
    assert np.asarray(undirected_mask(adjacency)).all()


# ----------------------------------------------------------------------------- Dependencies


def test_declaration_forms_agree():
    """Whole-node, element-wise, bare-parent and adjacency declarations give the same mask."""
    layout = NodeLayout(("theta", "x"), ((2,), (3,)))
    expected = np.eye(5, dtype=bool)
    expected[2:, :2] = True
    forms = [
        Dependencies({"x": ["theta"]}),
        Dependencies({"x": "theta"}),
        Dependencies({"x": [("theta", 0), ("theta", 1)]}),
        Dependencies({("x", k): ["theta"] for k in range(3)}),
        Dependencies({("x", 0): "theta", ("x", 1): ("theta", 0), "x": {("theta", 1), "theta"}}),
        Dependencies.from_adjacency(expected),
        Dependencies.from_adjacency(expected.astype(int) - np.eye(5, dtype=int)),
    ]
    for deps in forms:
        np.testing.assert_array_equal(deps.adjacency(layout), expected)


def test_element_indices_are_flat_within_a_node():
    """For a (tokens, channels) node, element k is token k // channels, channel k % channels."""
    layout = NodeLayout(("theta", "x"), ((1,), (2, 3)))
    adjacency = Dependencies({("x", 4): ["theta"], ("x", 5): [("x", 4)]}).adjacency(layout)
    expected = np.eye(7, dtype=bool)
    expected[1 + 4, 0] = True
    expected[1 + 5, 1 + 4] = True
    np.testing.assert_array_equal(adjacency, expected)


def test_value_semantics_and_round_trip():
    """Frozen, hashable, order-insensitive, no array leaves, and a JSON round trip."""
    a = Dependencies({"x": ["theta", "z"], ("z", 0): ["theta"]})
    b = Dependencies({("z", 0): ("theta",), "x": ["z", "theta", "z"]})
    assert a == b and hash(a) == hash(b)
    assert {a: 1}[b] == 1
    assert a != Dependencies({"x": ["theta"]})
    assert jax.tree.leaves(a) == []
    with pytest.raises(AttributeError):
        a.parents = None  # type: ignore[misc]
    matrix = Dependencies.from_adjacency(np.array(TREE_BASE, dtype=bool))
    for deps in (a, TREE, matrix, Dependencies({"theta": []})):
        config = json.loads(json.dumps(deps.config))
        again = Dependencies.from_config(config)
        assert again == deps and hash(again) == hash(deps)
    layout = NodeLayout(("theta", "z", "x"), ((1,), (2,), (1,)))
    np.testing.assert_array_equal(
        Dependencies.from_config(json.loads(json.dumps(a.config))).adjacency(layout),
        a.adjacency(layout),
    )


def test_unknown_names_and_indices_raise():
    """Names missing from the layout and indices past a node's size raise ValueError naming
    them and listing what is valid."""
    with pytest.raises(ValueError, match=r"\['y'\].*\['theta', 'x'\]"):
        Dependencies({"x": ["y"]}).adjacency(MOONS_LAYOUT)
    with pytest.raises(ValueError, match=r"\['z'\].*\['theta', 'x'\]"):
        Dependencies({"z": []}).adjacency(MOONS_LAYOUT)
    with pytest.raises(ValueError, match=r"x\[2\].*'x': 2"):
        Dependencies({("x", 2): ["theta"]}).adjacency(MOONS_LAYOUT)
    with pytest.raises(ValueError, match="flat indices from 0"):
        Dependencies({("x", -1): ["theta"]})


@pytest.mark.parametrize(
    "parents",
    [
        ["x", "theta"],
        {3: ["theta"]},
        {("x", "0"): ["theta"]},
        {("x", True): ["theta"]},
        {"x": 3},
        {"x": [("theta", 0, 1)]},
        {"x": [None]},
    ],
)
def test_malformed_declarations_raise(parents):
    """Keys and parents must be names or (name, index) pairs."""
    with pytest.raises(TypeError, match="parents"):
        Dependencies(parents)


def test_exactly_one_form():
    with pytest.raises(TypeError, match="exactly one"):
        Dependencies()
    with pytest.raises(TypeError, match="exactly one"):
        Dependencies({"x": "theta"}, adjacency=np.eye(2, dtype=bool))


@pytest.mark.parametrize(
    "matrix, error",
    [
        (np.ones((2, 3), dtype=bool), ValueError),
        (np.ones(4, dtype=bool), ValueError),
        (np.zeros((0, 0), dtype=bool), ValueError),
        (np.full((2, 2), 0.5), TypeError),
        (np.full((2, 2), 2), TypeError),
    ],
)
def test_bad_adjacency_raises(matrix, error):
    with pytest.raises(error, match="adjacency"):
        Dependencies.from_adjacency(matrix)


def test_adjacency_must_fit_the_layout():
    deps = Dependencies.from_adjacency(np.eye(3, dtype=bool))
    with pytest.raises(ValueError, match=r"\(4, 4\).*got \(3, 3\)"):
        deps.adjacency(MOONS_LAYOUT)


def test_cycles_raise_naming_the_cycle():
    """A dependency cycle raises ValueError listing the scalars that form it (a -> b: a depends
    on b), starting from the first scalar that cannot be ordered."""
    layout = NodeLayout(("a", "b", "c"), ((1,), (2,), (1,)))
    message = "cycle (a -> b: a depends on b): a[0] -> c[0] -> b[1] -> a[0]."
    with pytest.raises(ValueError, match=re.escape(message)):
        Dependencies({"a": ["c"], "c": [("b", 1)], ("b", 1): "a"}).adjacency(layout)
    with pytest.raises(ValueError, match=re.escape("b[0] -> b[1] -> b[0].")):
        Dependencies({"b": ["b"]}).adjacency(layout)
    # A one-scalar node depending on itself is only the diagonal.
    only_diagonal = Dependencies({"a": "a"}).adjacency(layout)
    np.testing.assert_array_equal(only_diagonal, np.eye(4, dtype=bool))
    cyclic = np.eye(3, dtype=bool)
    cyclic[0, 2] = cyclic[2, 1] = cyclic[1, 0] = True
    with pytest.raises(ValueError, match=re.escape("node 0 -> node 2 -> node 1 -> node 0.")):
        Dependencies.from_adjacency(cyclic)


# ----------------------------------------------------------------------------- policy errors


def test_policy_and_shape_errors():
    """An unknown policy, an unbound one, one bound to the wrong layout, and masks of the wrong
    shape are refused, naming what is wrong."""
    base = jnp.asarray(np.array(MOONS_BASE, dtype=bool))
    with pytest.raises(ValueError, match="'FaithfulAttention'"):
        AbstractAttention.from_config({"class": "FaithfulAttention"})
    for kind in (UndirectedAttention, DirectedAttention):
        with pytest.raises(ValueError, match="not bound to a layout"):
            kind(MOONS)(jnp.zeros(4, dtype=bool))
        with pytest.raises(TypeError, match="dependencies"):  # the type checker may answer first
            kind({"x": ["theta"]})
    with pytest.raises(ValueError, match="x"):
        DirectedAttention(MOONS).bind(NodeLayout(("theta", "y"), ((2,), (2,))))
    with pytest.raises((ValueError, TypeError), match="condition_mask|num_scalars"):
        directed_mask(base, jnp.zeros(3, dtype=bool))
    with pytest.raises((ValueError, TypeError), match="base|num_scalars"):
        undirected_mask(jnp.ones((3, 4), dtype=bool))
