"""Flux1 and Flux1Joint: building from data (channels, grids), token IDs, the one conditional a
Flux1 answers, and trained accuracy on the Gaussian linear task."""

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import gensbi_eqx as gs
from gensbi_eqx.models._ids import STRATEGIES

from randomise import random_model

SMALL = dict(num_heads=2, axes_dim=(4,), depth=1, depth_single_blocks=1, mlp_ratio=2.0)
SMALL_JOINT = dict(num_heads=2, axes_dim=(4,), depth_single_blocks=2, mlp_ratio=2.0)


def _random(make, seed):
    """``make(key)`` with random N(0, 0.3^2) weights, built without running its
    initialisation (fresh Flux blocks output zero, which would make tests of what the network
    computes vacuous)."""
    return random_model(make, seed, std=0.3)


def _series_data(n=16, tokens=6, channels=2):
    """theta (n, 3) and a 2-channel series x (n, tokens, channels)."""
    k1, k2 = jr.split(jr.key(0))
    theta = jr.normal(k1, (n, 3))
    x = jr.normal(k2, (n, tokens, channels)) + theta[:, :1, None]
    return {"theta": theta, "x": x}


def test_for_data_reads_tokens_and_channels():
    """A (N, tokens, channels) node gives tokens of `channels` scalars; obs/cond positions
    follow the data's node order."""
    data = {"x": _series_data()["x"], "theta": _series_data()["theta"]}  # x first on purpose
    model = _random(lambda key: gs.Flux1.for_data(data, condition_on="x", key=key, **SMALL), 2)
    cfg = model.config
    assert (cfg["dim_obs"], cfg["in_channels"], cfg["dim_cond"], cfg["context_in_dim"]) == (3, 1, 6, 2)
    assert model.num_scalars == 15
    assert model.fixed_condition_mask == (True,) * 12 + (False,) * 3
    out = eqx.filter_jit(model)(
        jnp.asarray(0.5), jnp.arange(15.0), jnp.asarray(model.fixed_condition_mask)
    )
    assert out.shape == (15,)
    np.testing.assert_array_equal(out[:12], 0.0)  # nothing is predicted for the cond scalars
    assert np.all(np.asarray(out[12:]) != 0)


def test_for_data_refuses_mixed_channels_and_bad_condition_on():
    data = {"theta": jnp.zeros((4, 2)), "x": jnp.zeros((4, 3, 2)), "y": jnp.zeros((4, 3))}
    with pytest.raises(ValueError, match="channels"):
        gs.Flux1.for_data(data, condition_on=("x", "y"), key=jr.key(0), **SMALL)
    with pytest.raises(ValueError, match="`condition_on`"):
        gs.Flux1.for_data(data, condition_on="z", key=jr.key(0), **SMALL)
    with pytest.raises(ValueError, match="`condition_on`"):
        gs.Flux1.for_data(data, condition_on=("theta", "x", "y"), key=jr.key(0), **SMALL)


@pytest.mark.parametrize("strategy", ["pos2d", "rope2d"])
def test_two_dimensional_ids_on_an_image_node(strategy):
    """A (N, height, width, channels) node is a grid for the 2-D strategies; the helpers and
    the embeddings agree on its shapes (height != width on purpose)."""
    data = {"theta": jnp.zeros((4, 2)), "image": jnp.ones((4, 3, 5, 2))}
    model = _random(
        lambda key: gs.Flux1.for_data(
            data, condition_on="image", key=key, id_embedding_strategy=("absolute", strategy),
            **{**SMALL, "axes_dim": (4, 4)},
        ),
        1,
    )
    assert model.config["cond_grid"] == (3, 5)
    mask = jnp.asarray(model.fixed_condition_mask)
    out = eqx.filter_jit(model)(jnp.asarray(0.5), jnp.linspace(-1, 1, 32), mask)
    assert out.shape == (32,) and np.isfinite(np.asarray(out)).all()


def test_rope1d_output_is_invariant_to_shifting_every_position():
    """Under rope1d only relative positions matter: shifting all token positions by a constant
    leaves the output unchanged."""
    data = _series_data()
    model = _random(
        lambda key: gs.Flux1.for_data(
            data, condition_on="x", key=key, id_embedding_strategy=("rope1d", "rope1d"), **SMALL
        ),
        2,
    )
    mask = jnp.asarray(model.fixed_condition_mask)
    x = jr.normal(jr.key(3), (model.num_scalars,))
    # Jitted: one compile per set of id arguments is cheaper than running the model eagerly.
    call = eqx.filter_jit(lambda model, x, mask, **ids: model(jnp.asarray(0.3), x, mask, **ids))
    obs_ids, cond_ids = model.obs_ids.default_ids(), model.cond_ids.default_ids()
    base = call(model, x, mask)
    shifted = call(model, x, mask, obs_ids=obs_ids + 7.5, cond_ids=cond_ids + 7.5)
    np.testing.assert_allclose(shifted, base, atol=2e-5)
    moved = call(model, x, mask, obs_ids=obs_ids, cond_ids=cond_ids + 7.5)  # relative change
    assert float(jnp.max(jnp.abs(moved - base))) > 1e-3

    joint = _random(
        lambda key: gs.Flux1Joint(5, id_embedding_strategy="rope1d", key=key, **SMALL_JOINT), 5
    )
    y, m = jr.normal(jr.key(6), (5,)), jnp.array([True, False, True, False, False])
    ids = joint.ids.default_ids()
    np.testing.assert_allclose(call(joint, y, m, ids=ids - 3.0), call(joint, y, m), atol=2e-5)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_runs_in_both_models(strategy):
    """Every ID strategy builds and runs in Flux1 (both streams) and Flux1Joint."""
    grid = (2, 3) if strategy.endswith("2d") else None
    axes_dim = (4, 4) if strategy in ("pos2d", "rope2d", "rope") else (4,)
    # Random weights: this checks that every strategy's shapes go through both models; what
    # the IDs compute is tested in test_ids.py.
    joint = _random(lambda key: gs.Flux1Joint(6, id_embedding_strategy=strategy, grid=grid,
                                              key=key, **{**SMALL_JOINT, "axes_dim": axes_dim}), 0)
    out = eqx.filter_jit(joint)(jnp.asarray(0.2), jnp.ones(6), jnp.zeros(6, bool))
    assert out.shape == (6,) and np.isfinite(np.asarray(out)).all()
    flux = _random(lambda key: gs.Flux1(6, 6, id_embedding_strategy=(strategy, strategy),
                                        obs_grid=grid, cond_grid=grid, key=key,
                                        **{**SMALL, "axes_dim": axes_dim}), 0)
    out = eqx.filter_jit(flux)(jnp.asarray(0.2), jnp.ones(12), jnp.asarray(flux.fixed_condition_mask))
    assert out.shape == (12,) and np.isfinite(np.asarray(out)).all()


def test_flux1_bad_inputs():
    model = _random(lambda key: gs.Flux1(2, 3, key=key, **SMALL), 0)
    mask = jnp.asarray(model.fixed_condition_mask)
    with pytest.raises((ValueError, TypeError), match="x|shape"):
        model(jnp.asarray(0.1), jnp.ones(4), mask)
    with pytest.raises(ValueError, match="edge_mask"):
        model(jnp.asarray(0.1), jnp.ones(5), mask, edge_mask=jnp.ones((5, 5), bool))
    with pytest.raises((ValueError, TypeError), match="cond_ids|shape"):
        model(jnp.asarray(0.1), jnp.ones(5), mask, cond_ids=jnp.zeros((2, 1)))
    with pytest.raises(ValueError, match="id_embedding_strategy"):
        gs.Flux1(2, 3, id_embedding_strategy="absolute", key=jr.key(0))
    with pytest.raises(ValueError, match="strateg"):
        gs.Flux1(2, 3, id_embedding_strategy=("absolute", "sinusoid"), key=jr.key(0))
    with pytest.raises(ValueError, match="`conditioned`"):
        gs.Flux1(2, 3, conditioned=(True,) * 5, key=jr.key(0))
    with pytest.raises(ValueError, match="`num_heads`"):
        gs.Flux1(2, 3, num_heads=0, key=jr.key(0))


# ---- trained end to end ------------------------------------------------------------------------

DIM = 2
NUM = 2_000  # draws: the standard error of a mean is sd / 45, of a variance 3.2%
# As for the Simformer (test_api.py): 5 standard errors plus a budget for a small model after a
# short run; the posterior sd is 0.22, so 0.05 in the mean is under a quarter of an sd.
MEAN_BUDGET, VAR_BUDGET = 0.05, 0.25
# Batches of 128 train in half the time of the default 256; with the keys below the errors
# stay under half of each tolerance (checked against 256: under a third).
TRAINING = gs.Training(max_steps=1_000, batch_size=128, stopping=gs.EarlyStopping(every=100))


@pytest.fixture(scope="module")
def gaussian_linear():
    task = gs.tasks.GaussianLinear(dim=DIM)
    theta, x = task.simulate(jr.key(0), 4_000)
    return task, {"theta": theta, "x": x}


def _check_gaussian(samples, mean, var):
    samples = np.asarray(samples, dtype=np.float64)
    np.testing.assert_array_less(
        np.abs(samples.mean(0) - mean), 5 * np.sqrt(var / len(samples)) + MEAN_BUDGET
    )
    np.testing.assert_array_less(
        np.abs(samples.var(0) / var - 1), 5 * np.sqrt(2 / len(samples)) + VAR_BUDGET
    )


@pytest.fixture(scope="module")
def trained_flux1(gaussian_linear):
    _, data = gaussian_linear
    model = gs.Flux1.for_data(
        data, condition_on="x", key=jr.key(1), num_heads=4, axes_dim=(8,), depth=1,
        depth_single_blocks=2,
    )
    return gs.fit(jr.key(2), model, data, method=gs.FlowMatching(), training=TRAINING,
                  progress=False)


def test_trained_flux1_posterior(trained_flux1, gaussian_linear):
    """Flux1 trained by flow matching on p(theta | x) matches the analytic posterior; any
    other conditional is refused."""
    task, _ = gaussian_linear
    x_o = jnp.array([0.3, -0.2])
    post = trained_flux1.sample(jr.key(3), {"x": x_o}, NUM)
    truth = task.true_posterior(x_o)
    _check_gaussian(post["theta"], np.asarray(truth.mean), np.diag(np.asarray(truth.covariance)))
    with pytest.raises(ValueError, match=r"p\(theta \| x\)"):
        trained_flux1.sample(jr.key(3), {"theta": jnp.zeros(DIM)}, 10)
    with pytest.raises(ValueError, match=r"p\(theta \| x\)"):
        trained_flux1.sample(jr.key(3), {"x": jnp.array([0.3, jnp.nan])}, 10)


@pytest.fixture(scope="module")
def trained_flux1_joint(gaussian_linear):
    _, data = gaussian_linear
    model = gs.Flux1Joint.for_data(data, key=jr.key(1), num_heads=4, axes_dim=(8,), depth_single_blocks=3)
    return gs.fit(jr.key(2), model, data, method=gs.VESDE(), training=TRAINING, progress=False)


def test_trained_flux1_joint_answers_posterior_and_likelihood(trained_flux1_joint, gaussian_linear):
    task, _ = gaussian_linear
    x_o = jnp.array([0.3, -0.2])
    post = trained_flux1_joint.sample(jr.key(3), {"x": x_o}, NUM)
    truth = task.true_posterior(x_o)
    _check_gaussian(post["theta"], np.asarray(truth.mean), np.diag(np.asarray(truth.covariance)))
    theta_o = jnp.array([0.2, -0.1])
    lik = trained_flux1_joint.sample(jr.key(4), {"theta": theta_o}, NUM)
    _check_gaussian(lik["x"], np.asarray(theta_o), np.full(DIM, 0.1))


def test_fit_refuses_what_flux1_cannot_learn(gaussian_linear):
    _, data = gaussian_linear
    model = _random(lambda key: gs.Flux1.for_data(data, condition_on="x", key=key, **SMALL), 0)
    one_step = gs.Training(max_steps=1)
    with pytest.raises(ValueError, match="`condition_masks`"):
        gs.fit(jr.key(0), model, data, method=gs.VESDE(), condition_masks=gs.StructuredMasks(),
               training=one_step)
    with pytest.raises(ValueError, match="`attention`"):
        gs.fit(jr.key(0), model, data, method=gs.VESDE(),
               attention=gs.FixedAttention(np.ones((4, 4), bool)), training=one_step)
