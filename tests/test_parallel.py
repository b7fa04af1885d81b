"""Fused training, chunked sampling and data parallelism over several (host) devices."""

import os
import subprocess
import sys
import textwrap

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import gensbi_eqx as gs
from gensbi_eqx.methods import ModelDenoiser
from gensbi_eqx.sampling import sample_conditionals
from untrained import untrained_estimator

TINY = dict(dim_value=8, dim_id=8, dim_condition=4, num_heads=2, head_dim=4, depth=1, widening=2,
            dim_time=16)
SDE = gs.SDE(steps=4)


def _data(n=64):
    theta = jr.normal(jr.key(0), (n, 2))
    return {"theta": theta, "x": theta + 0.1 * jr.normal(jr.key(1), (n, 2))}


@pytest.fixture(scope="module")
def estimator():
    data = _data()
    return untrained_estimator(gs.Simformer(4, key=jr.key(2), **TINY), data)


def test_fused_steps_give_the_same_run_however_cut():
    """One step per call and many steps per call take the same steps (keys fold in the step
    index), so losses and weights agree to rounding."""
    data = _data()
    model = gs.Simformer(4, key=jr.key(2), **TINY)
    runs = [
        gs.fit(jr.key(3), model, data, method=gs.VESDE(), progress=False,
               training=gs.Training(max_steps=12, batch_size=8,
                                    stopping=gs.EarlyStopping(every=5), steps_per_call=k))
        for k in (1, 3)
    ]
    for run in runs[1:]:
        np.testing.assert_allclose(run.history.train_loss, runs[0].history.train_loss, rtol=1e-5)
        np.testing.assert_array_equal(run.history.validation_steps, [5, 10, 12])
        np.testing.assert_allclose(run.history.validation_loss, runs[0].history.validation_loss,
                                   rtol=1e-5)
    assert runs[0].history.train_loss.shape == (12,)


def test_fused_steps_compile_once(estimator):
    """Calls of different lengths reuse one compiled loop."""
    method, model = estimator.method, estimator.model
    optimizer = gs.training.default_optimizer(10, learning_rate=1e-3, gradient_clip=1.0)
    masks = gs.StructuredMasks(is_parameter=(True, True, False, False))
    steps = gs.training.make_fused_train_steps(method, masks, optimizer, 8, 4, steps_per_call=4)
    opt_state = optimizer.init(eqx.filter(model, eqx.is_inexact_array))
    x = jr.normal(jr.key(0), (16, 4))
    state = (model, model, opt_state)
    *state, losses = steps(x, *state, jr.key(1), jnp.asarray(0), jnp.asarray(4))
    assert np.isfinite(np.asarray(losses)).all()
    *state, losses = steps(x, *state, jr.key(1), jnp.asarray(4), jnp.asarray(2))
    assert np.isfinite(np.asarray(losses[:2])).all() and np.isnan(np.asarray(losses[2:])).all()


@pytest.mark.parametrize("chunk_size", [1, 7, 10_000])
def test_chunked_sampling_matches_unchunked(estimator, chunk_size):
    """Draw i of condition j keeps its key under any chunking: same draws, up to rounding."""
    x_o = {"x": jnp.asarray([[0.5, -0.5], [1.0, 0.0], [np.nan, 2.0]])}
    full = estimator.sample(jr.key(4), x_o, 5, sampler=SDE)
    chunked = estimator.sample(jr.key(4), x_o, 5, sampler=SDE, chunk_size=chunk_size)
    assert chunked.keys() == full.keys()
    for name in full:
        assert chunked[name].shape == full[name].shape
        np.testing.assert_allclose(chunked[name], full[name], rtol=1e-5, atol=1e-5)


def _temp_bytes(estimator, num_samples, chunk_size):
    y = jnp.zeros((1, 4))
    mask = jnp.asarray([[False, False, True, True]])
    arrays, static = eqx.partition(ModelDenoiser(estimator.model, estimator.method), eqx.is_array)

    def draw(key, arrays, y, mask):
        denoiser = eqx.combine(arrays, static)
        return sample_conditionals(
            key, denoiser, y, mask, num_samples, gs.SDE(steps=2), chunk_size=chunk_size
        )

    compiled = jax.jit(draw).lower(jr.key(0), arrays, y, mask).compile()
    return compiled.memory_analysis().temp_size_in_bytes


def test_chunked_working_memory_does_not_grow_with_the_number_of_draws(estimator):
    """Compiled working memory (outside the result) for a million draws is that of the chunk:
    the same as for ten thousand, and far below the unchunked program's."""
    chunk = 1_000
    small = _temp_bytes(estimator, 10_000, chunk)
    large = _temp_bytes(estimator, 1_000_000, chunk)
    unchunked = _temp_bytes(estimator, 1_000_000, None)
    # What grows with the draws: their keys (8 bytes each, allowing a copy) and one staging
    # copy of the result (4 nodes x 4 bytes), not the network's activations.
    per_draw = 2 * 8 + 4 * 4
    assert large - small <= per_draw * (1_000_000 - 10_000)
    assert unchunked > 10 * large


def test_sample_and_fit_reject_bad_chunk_and_devices(estimator):
    x_o = {"x": jnp.zeros(2)}
    with pytest.raises(ValueError, match="`chunk_size`"):
        estimator.sample(jr.key(0), x_o, 4, chunk_size=0)
    with pytest.raises(ValueError, match="`devices` must be between 1"):
        estimator.sample(jr.key(0), x_o, 4, devices=len(jax.local_devices()) + 1)
    with pytest.raises(TypeError, match="devices"):
        estimator.sample(jr.key(0), x_o, 4, devices="gpu")
    with pytest.raises(ValueError, match="`steps_per_call`"):
        gs.Training(steps_per_call=0)


MULTI_DEVICE = textwrap.dedent(
    """
    import equinox as eqx, jax, jax.numpy as jnp, jax.random as jr, numpy as np
    import gensbi_eqx as gs

    assert len(jax.devices()) == 4, jax.devices()
    theta = jr.normal(jr.key(0), (64, 2))
    data = {"theta": theta, "x": theta + 0.1 * jr.normal(jr.key(1), (64, 2))}
    model = gs.Simformer(4, key=jr.key(2), dim_value=8, dim_id=8, dim_condition=4, num_heads=2,
                         head_dim=4, depth=1, widening=2, dim_time=16)
    training = gs.Training(max_steps=30, batch_size=16, stopping=gs.EarlyStopping(every=10))
    fit = lambda devices: gs.fit(jr.key(3), model, data, method=gs.VESDE(), training=training,
                                 devices=devices, progress=False)
    one, four = fit(1), fit(None)
    np.testing.assert_allclose(four.history.train_loss, one.history.train_loss, rtol=1e-4)
    np.testing.assert_allclose(four.history.validation_loss, one.history.validation_loss, rtol=1e-4)
    # Adam rescales tiny gradients, so rounding moves single weights by a fraction of a step;
    # the weights as a whole must agree to 1% of how far training moved them.
    weights = lambda m: jnp.concatenate(
        [w.ravel() for w in jax.tree.leaves(eqx.filter(m, eqx.is_inexact_array))]
    )
    moved = jnp.linalg.norm(weights(one.model) - weights(model))
    assert jnp.linalg.norm(weights(four.model) - weights(one.model)) <= 1e-2 * moved
    x_o = {"x": jnp.asarray([[0.5, -0.5], [1.0, 0.0], [0.0, 2.0]])}
    sde = gs.SDE(steps=4)
    single = one.sample(jr.key(4), x_o, 7, sampler=sde, devices=1)["theta"]
    for kwargs in ({}, {"chunk_size": 5}):
        split = one.sample(jr.key(4), x_o, 7, sampler=sde, **kwargs)["theta"]
        np.testing.assert_allclose(split, single, rtol=1e-5, atol=1e-5)
    try:
        fit(3)
    except ValueError as error:
        assert "`batch_size` (16) must be divisible by the number of devices (3)" in str(error)
    else:
        raise AssertionError("a batch that does not split over 3 devices was accepted")
    print("multi-device OK")
    """
)


def test_data_parallel_matches_one_device():
    """On four host devices: training with the batch split over all of them follows the
    single-device loss trajectory and weights to rounding (only the order of the batch sums
    differs), and split, chunked sampling gives the single-device draws."""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    result = subprocess.run([sys.executable, "-c", MULTI_DEVICE], env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "multi-device OK" in result.stdout
