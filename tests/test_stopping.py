"""Stopping rules: pure functions of the validation losses, and the learning-rate scale they
return reaches the optimizer's steps."""

import equinox as eqx
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest
from hypothesis import given, settings

import gensbi_eqx as gs
from gensbi_eqx.training import make_fused_train_steps

losses = st.lists(st.floats(0.01, 10.0, allow_nan=False), min_size=1, max_size=60)


@settings(max_examples=200, deadline=None)
@given(losses, st.integers(1, 10))
def test_early_stopping_waits_patience_scores_after_the_best(values, patience):
    stop, scale = gs.EarlyStopping(patience=patience).decide(values)
    assert stop == (len(values) - 1 - int(np.argmin(values)) >= patience)
    assert scale == 1.0


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 6), st.integers(0, 3), st.integers(1, 40))
def test_plateau_stopping_on_a_flat_curve(patience, decays, length):
    """A flat curve cuts the rate after every ``patience`` scores past the first and stops at
    the plateau after ``decays`` cuts, i.e. after ``1 + patience (decays + 1)`` scores."""
    rule = gs.PlateauStopping(patience=patience, decays=decays, factor=0.5)
    stop, scale = rule.decide([1.0] * length)
    last = 1 + patience * (decays + 1)
    assert stop == (length >= last)
    assert scale == 0.5 ** min((length - 1) // patience, decays)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 60), st.floats(1e-3, 0.2))
def test_plateau_stopping_never_cuts_while_the_loss_keeps_improving(length, rate):
    """Relative improvements larger than ``tolerance`` at every score: full rate, no stop."""
    values = list(np.exp(-rate * np.arange(length)) * 5.0)
    rule = gs.PlateauStopping(tolerance=min(0.5 * rate, 1e-3))
    assert rule.decide(values) == (False, 1.0)


@settings(max_examples=100, deadline=None)
@given(losses)
def test_plateau_stopping_never_raises_the_rate_again(values):
    """The learning-rate scale only ever shrinks as scores arrive."""
    rule = gs.PlateauStopping(patience=2, decays=1)
    scales = [rule.decide(values[: k + 1])[1] for k in range(len(values))]
    assert all(a >= b for a, b in zip(scales, scales[1:]))


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(patience=0), "patience"),
        (dict(every=0), "every"),
        (dict(decays=-1), "decays"),
        (dict(tolerance=1.0), "tolerance"),
        (dict(factor=1.0), "factor"),
        (dict(factor=0.0), "factor"),
    ],
)
def test_plateau_stopping_refuses_bad_settings(kwargs, name):
    with pytest.raises(ValueError, match=name):
        gs.PlateauStopping(**kwargs)


def test_training_refuses_a_stopping_rule_of_another_kind():
    with pytest.raises(TypeError, match="stopping"):
        gs.Training(stopping="plateau")


def test_learning_rate_scale_multiplies_the_updates():
    """``lr_scale = 0`` leaves the weights where they are; ``0.5`` with plain SGD moves them
    half as far as ``1``."""
    method = gs.VESDE()
    data = {"theta": jnp.zeros((16, 1)), "x": jnp.zeros((16, 1))}
    model = gs.Simformer.for_data(data, key=jr.key(0), depth=1)
    masks = gs.StructuredMasks(is_parameter=(True, False))
    optimizer = optax.sgd(1e-2)
    steps = make_fused_train_steps(method, masks, optimizer, 8, 2, steps_per_call=1)
    opt_state = optimizer.init(eqx.filter(model, eqx.is_inexact_array))
    x = jr.normal(jr.key(1), (16, 2))

    def moved(scale):
        new, *_ = steps(
            x, model, model, opt_state, jr.key(2), jnp.asarray(0), jnp.asarray(1),
            jnp.asarray(scale, jnp.float32),
        )
        deltas = jax.tree.map(lambda a, b: a - b, eqx.filter(new, eqx.is_inexact_array),
                              eqx.filter(model, eqx.is_inexact_array))
        return np.concatenate([np.ravel(d) for d in jax.tree.leaves(deltas)])

    assert np.all(moved(0.0) == 0.0)
    full, half = moved(1.0), moved(0.5)
    assert np.abs(full).max() > 0
    np.testing.assert_allclose(half, 0.5 * full, rtol=1e-4, atol=2e-6)  # float32 rounding of w + d - w
