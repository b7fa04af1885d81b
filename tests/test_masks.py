"""Condition-mask samplers: contract properties and exact mixture frequencies."""

import itertools

import equinox as eqx
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from hypothesis import given, settings

from gensbi_eqx.data import NodeLayout
from gensbi_eqx.training import BernoulliMasks, PosteriorMasks, StructuredMasks
from gensbi_eqx.training._masks import never_all_observed


def draw_masks(sampler, key, num_masks: int, num_scalars: int):
    """``(num_masks, num_scalars)`` masks from independent keys. Run eagerly, the primitives are
    compiled once per shape and reused across parameter patterns, which a jit (keyed on the
    static pattern) would not do."""
    return jax.vmap(lambda k: sampler(k, num_scalars))(jr.split(key, num_masks))


draw_many_masks = eqx.filter_jit(draw_masks)


@st.composite
def parameter_patterns(draw):
    n = draw(st.sampled_from([2, 3, 5]))
    pattern = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    if all(pattern) or not any(pattern):
        pattern[draw(st.integers(0, n - 1))] ^= True
    return tuple(pattern)


@settings(deadline=None, max_examples=20, database=None)
@given(
    parameters=parameter_patterns(),
    rate=st.sampled_from([0.0, 0.3, 0.7, 0.95]),
    seed=st.integers(0, 2**31 - 1),
)
def test_sampler_contract(parameters, rate, seed):
    """Every sampler gives bool (num_scalars,) masks that never observe every node."""
    n = len(parameters)
    key = jr.key(seed)
    samplers = (
        StructuredMasks(is_parameter=parameters),
        PosteriorMasks(is_parameter=parameters),
        BernoulliMasks(rate),
    )
    for sampler in samplers:
        single = sampler(key, n)
        assert single.shape == (n,) and single.dtype == jnp.bool_
        masks = np.asarray(draw_masks(sampler, key, 256, n))
        assert masks.shape == (256, n) and masks.dtype == np.bool_
        assert not masks.all(axis=1).any()
    posterior = np.asarray(draw_masks(PosteriorMasks(is_parameter=parameters), key, 256, n))
    np.testing.assert_array_equal(posterior, np.broadcast_to(~np.array(parameters), (256, n)))


@settings(deadline=None, max_examples=25, database=None)
@given(mask=st.lists(st.booleans(), min_size=1, max_size=6))
def test_never_all_observed(mask):
    """never_all_observed maps the all-True mask to all-False and leaves every other mask alone."""
    mask = np.array(mask)
    out = np.asarray(never_all_observed(jnp.asarray(mask)))
    np.testing.assert_array_equal(out, np.zeros_like(mask) if mask.all() else mask)


def _bernoulli_pattern_probs(rate: float, n: int) -> dict[tuple[bool, ...], float]:
    """Exact law of a Bernoulli(rate) mask over all 2^n patterns, all-True mapped to all-False."""
    probs = {}
    for pattern in itertools.product([False, True], repeat=n):
        k = sum(pattern)
        key = tuple([False] * n) if k == n else pattern
        probs[key] = probs.get(key, 0.0) + rate**k * (1 - rate) ** (n - k)
    return probs


def _structured_pattern_probs(parameters: tuple[bool, ...]) -> dict[tuple[bool, ...], float]:
    """Exact law of the paper's mixture: 0.2 each of joint, posterior, likelihood, B(0.3), B(0.7)."""
    n = len(parameters)
    is_param = tuple(parameters)
    probs = {p: 0.0 for p in itertools.product([False, True], repeat=n)}
    probs[tuple([False] * n)] += 0.2
    probs[tuple(not p for p in is_param)] += 0.2
    probs[is_param] += 0.2
    for rate in (0.3, 0.7):
        for pattern, p in _bernoulli_pattern_probs(rate, n).items():
            probs[pattern] += 0.2 * p
    return probs


def _check_frequencies(masks: np.ndarray, probs: dict[tuple[bool, ...], float], events):
    """Each named event's frequency, the per-node observed rates and the mean observed fraction
    lie within 5 binomial/sample standard errors of their exact values."""
    num = masks.shape[0]
    for name, pattern in events.items():
        p = probs[pattern]
        freq = np.mean(np.all(masks == np.array(pattern), axis=1))
        se = np.sqrt(p * (1 - p) / num)
        assert abs(freq - p) < 5 * se, (name, freq, p)
    patterns = np.array(list(probs), dtype=float)
    weights = np.array(list(probs.values()))
    np.testing.assert_allclose(weights.sum(), 1.0, atol=1e-12)
    node_rate = weights @ patterns
    se = np.sqrt(node_rate * (1 - node_rate) / num)
    assert np.all(np.abs(masks.mean(axis=0) - node_rate) < 5 * se), (masks.mean(axis=0), node_rate)
    fractions = patterns.mean(axis=1)
    mean = weights @ fractions
    std = np.sqrt(weights @ (fractions - mean) ** 2)
    assert abs(masks.mean() - mean) < 5 * std / np.sqrt(num), (masks.mean(), mean)


def test_structured_mask_frequencies():
    """Joint, posterior and likelihood masks (2 parameters, 3 data) occur at their exact rates."""
    parameters = (True, True, False, False, False)
    masks = np.asarray(
        draw_many_masks(StructuredMasks(is_parameter=parameters), jr.key(0), 20_000, 5)
    )
    probs = _structured_pattern_probs(parameters)
    joint, posterior, likelihood = (False,) * 5, (False, False, True, True, True), parameters
    # 0.2 from its own kind plus Bernoulli draws that coincide (and all-True draws for the joint).
    expected_joint = 0.2 + 0.2 * (0.7**5 + 0.3**5) * 2
    expected_posterior = 0.2 + 0.2 * (0.3**3 * 0.7**2 + 0.7**3 * 0.3**2)
    np.testing.assert_allclose(probs[joint], expected_joint, rtol=1e-12)
    np.testing.assert_allclose(probs[posterior], expected_posterior, rtol=1e-12)
    np.testing.assert_allclose(probs[likelihood], expected_posterior, rtol=1e-12)
    events = {"joint": joint, "posterior": posterior, "likelihood": likelihood}
    _check_frequencies(masks, probs, events)
    # "Other" patterns: Bernoulli draws that are none of the three named kinds.
    other = 1 - sum(probs[p] for p in events.values())
    freq_other = 1 - sum(np.mean(np.all(masks == np.array(p), axis=1)) for p in events.values())
    assert abs(freq_other - other) < 5 * np.sqrt(other * (1 - other) / masks.shape[0])


@pytest.mark.parametrize("rate", [0.3, 0.7])
def test_bernoulli_mask_frequencies(rate):
    """Bernoulli masks observe each node at the exact rate once all-True draws become all-False."""
    n = 3
    masks = np.asarray(draw_many_masks(BernoulliMasks(rate), jr.key(1), 20_000, n))
    probs = {p: 0.0 for p in itertools.product([False, True], repeat=n)}
    probs.update(_bernoulli_pattern_probs(rate, n))
    np.testing.assert_allclose(probs[(False,) * n], (1 - rate) ** n + rate**n, rtol=1e-12)
    _check_frequencies(masks, probs, {"none observed": (False,) * n, "first only": (True, False, False)})


@pytest.mark.parametrize("cls", [StructuredMasks, PosteriorMasks])
@pytest.mark.parametrize(
    "parameters",
    [(), (True,), (False,), (True, True), (False, False, False), ("a", ""), (1, 0)],
)
def test_bad_parameters_raise(cls, parameters):
    """Non-bool patterns, or ones with no parameter or no data node, raise naming `parameters`."""
    # Non-bool entries may be caught first by the suite's runtime type checker (a TypeError).
    with pytest.raises((ValueError, TypeError), match="parameters"):
        cls(is_parameter=parameters)


@pytest.mark.parametrize("cls", [StructuredMasks, PosteriorMasks])
@pytest.mark.parametrize("num_scalars", [1, 2, 4])
def test_wrong_num_nodes_raises(cls, num_scalars):
    """Calling a sampler with a node count other than len(parameters) raises ValueError naming it."""
    with pytest.raises(ValueError, match="`num_scalars`"):
        cls(is_parameter=(True, False, False))(jr.key(0), num_scalars)


_LAYOUT = NodeLayout(("x", "theta", "y"), ((2,), (1,), (3,)))


@pytest.mark.parametrize("cls", [StructuredMasks, PosteriorMasks])
def test_binding_to_a_layout_marks_the_parameter_scalars(cls):
    """Parameters are named nodes (default "theta" if there is one, else the first node);
    binding to the layout gives the per-scalar pattern, and an unbound sampler refuses to
    draw."""
    assert cls().bind(_LAYOUT) == cls(("theta",), (False, False, True, False, False, False))
    assert cls("theta").bind(_LAYOUT) == cls().bind(_LAYOUT)
    bound = cls(parameters=("x", "y")).bind(_LAYOUT)
    assert bound.is_parameter == (True, True, False, True, True, True)
    first = NodeLayout(("a", "b"), ((2,), (1,)))
    assert cls().bind(first).is_parameter == (True, True, False)
    with pytest.raises(ValueError, match="not bound"):
        cls("theta")(jr.key(0), 6)


@pytest.mark.parametrize("cls", [StructuredMasks, PosteriorMasks])
def test_binding_refuses_unknown_or_all_nodes(cls):
    with pytest.raises(ValueError, match="parameters"):
        cls("phi").bind(_LAYOUT)
    with pytest.raises(ValueError, match="parameters"):
        cls(("x", "theta", "y")).bind(_LAYOUT)


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5, float("nan")])
def test_bad_rate_raises(rate):
    """A Bernoulli rate outside [0, 1) raises ValueError naming `rate`."""
    with pytest.raises(ValueError, match="`rate`"):
        BernoulliMasks(rate)
