"""Embedding networks: nodes read through summaries (shapes, masks, gradients, the query
rules, save/load, errors)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import gensbi_eqx as gs
from gensbi_eqx.embeddings._convolutional import _strided
from gensbi_eqx.models import EmbeddedModel
from gensbi_eqx.training import ObservedAlways, StructuredMasks, batch_loss

TINY = dict(dim_value=8, dim_id=8, dim_condition=4, num_heads=2, head_dim=4, depth=1, dim_time=8)
FLUX_TINY = dict(num_heads=2, axes_dim=(4,), depth_single_blocks=1)
LENGTH = 40


def _data(n=300, key=jr.key(0)):
    """theta (n, 2) and a noisy series x (n, LENGTH) whose level and slope are theta."""
    k_theta, k_noise = jr.split(key)
    theta = jr.normal(k_theta, (n, 2))
    t = jnp.linspace(0.0, 1.0, LENGTH)
    x = theta[:, :1] + theta[:, 1:] * t + 0.3 * jr.normal(k_noise, (n, LENGTH))
    return {"theta": theta, "x": x, "z": theta[:, :1] + 0.1}


class Summaries(eqx.Module):
    """A user's own embedding: a linear map of the series to three numbers."""

    linear: eqx.nn.Linear

    def __init__(self, key):
        self.linear = eqx.nn.Linear(LENGTH, 3, key=key)

    def __call__(self, values):
        return self.linear(values)


def _embedded(cls=gs.Simformer, embedding=None, **kwargs):
    data = _data()
    embedding = gs.embeddings.SeriesEmbedding(LENGTH, 4, features=4, depth=2, hidden=8,
                                              key=jr.key(5)) if embedding is None else embedding
    tiny = {gs.Simformer: TINY, gs.Flux1Joint: FLUX_TINY, gs.Flux1: dict(FLUX_TINY, depth=1)}[cls]
    return data, cls.for_data(data, embeddings={"x": embedding}, key=jr.key(1), **tiny, **kwargs)


@settings(max_examples=5, deadline=None)
@given(length=st.integers(1, 70), channels=st.integers(1, 3), depth=st.integers(1, 4),
       kernel=st.integers(1, 6), summaries=st.integers(1, 9))
def test_series_embedding_shapes(length, channels, depth, kernel, summaries):
    net = gs.embeddings.SeriesEmbedding(length, summaries, channels=channels, depth=depth,
                                        kernel_size=kernel, features=3, hidden=5, key=jr.key(0))
    shape = (length,) if channels == 1 else (length, channels)
    assert net(jnp.ones(shape)).shape == (summaries,)
    with pytest.raises(ValueError, match="`values` must have shape"):
        net(jnp.ones((length + 1, channels)))


@settings(max_examples=4, deadline=None)
@given(height=st.integers(1, 20), width=st.integers(1, 20), channels=st.integers(1, 3),
       depth=st.integers(1, 3))
def test_image_embedding_shapes(height, width, channels, depth):
    net = gs.embeddings.ImageEmbedding(height, width, 5, channels=channels, depth=depth,
                                       features=3, hidden=5, key=jr.key(0))
    shape = (height, width) if channels == 1 else (height, width, channels)
    assert net(jnp.ones(shape)).shape == (5,)
    rebuilt = gs.embeddings.ImageEmbedding.from_config(net.config, key=jr.key(0))
    assert eqx.tree_equal(rebuilt, net)


@settings(max_examples=6, deadline=None)
@given(dims=st.integers(1, 2), size=st.integers(1, 12), channels=st.integers(1, 3),
       kernel=st.integers(1, 5), seed=st.integers(0, 100))
def test_strided_convolution_is_equinox_convolution(dims, size, channels, kernel, seed):
    conv = eqx.nn.Conv(dims, channels, 3, kernel, stride=2, padding=kernel // 2,
                       key=jr.key(seed))
    h = jr.normal(jr.key(seed + 1), (channels,) + (size,) * dims)
    np.testing.assert_allclose(_strided(conv, h), conv(h), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cls", [gs.Simformer, gs.Flux1Joint, gs.Flux1])
def test_embedded_model_tokens_and_outputs(cls):
    kwargs = {"condition_on": ("x", "z")} if cls is gs.Flux1 else {}
    data, model = _embedded(cls, **kwargs)
    assert isinstance(model, EmbeddedModel)
    assert model.num_scalars == 2 + LENGTH + 1
    assert model.model.num_scalars == 2 + 4 + 1  # theta, four summaries, z
    always = np.asarray(model.observed_always)
    assert always[2:2 + LENGTH].all() and not always[[0, 1, -1]].any()
    x = gs.data.NodeLayout.from_data(data).flatten(data)[0]
    out = model(jnp.asarray(0.3), x, jnp.zeros(model.num_scalars, bool))
    assert out.shape == (model.num_scalars,)
    assert (out[2:2 + LENGTH] == 0).all()  # (the Flux final layers start at zero everywhere)
    if cls is gs.Flux1:
        fixed = np.asarray(model.fixed_condition_mask)
        assert fixed[2:].all() and not fixed[:2].any()
    else:
        assert model.fixed_condition_mask is None


def test_summaries_change_with_the_series_and_gradients_reach_the_embedding():
    data, model = _embedded()
    layout = gs.data.NodeLayout.from_data(data)
    x0 = layout.flatten(data)[:16]
    masks = jax.vmap(lambda k: ObservedAlways(StructuredMasks().bind(layout),
                                              model.observed_always)(k, model.num_scalars))(
        jr.split(jr.key(2), 16))
    grads = eqx.filter_grad(batch_loss)(model, gs.VESDE(), x0, masks, jr.key(3))
    leaves = jax.tree.leaves(eqx.filter(grads.embeddings, eqx.is_inexact_array))
    assert leaves and all(jnp.abs(g).sum() > 0 for g in leaves)
    # The output for theta depends on the series, through the summaries.
    mask = jnp.asarray(model.observed_always)
    out = model(jnp.asarray(0.3), x0[0], mask)
    moved = model(jnp.asarray(0.3), x0[0].at[5].add(3.0), mask)
    assert not jnp.allclose(out[:2], moved[:2])
    # Specialised to a condition, the model reads the series from it, once: same outputs for
    # any latent values.
    specialised = model.given(x0[0])
    latent = x0[0].at[:2].set(jnp.array([0.7, -1.2]))
    np.testing.assert_allclose(specialised(jnp.asarray(0.3), latent, mask),
                               model(jnp.asarray(0.3), latent, mask), rtol=1e-5, atol=1e-6)


def test_summaries_attend_as_their_node():
    """An edge mask over the data's scalars reaches the summaries through their node's first
    scalar: theta[0] barred from the series (and z) does not see it, theta[1] does."""
    data, model = _embedded()
    n = model.num_scalars
    edges = np.ones((n, n), bool)
    edges[0, 2:] = False  # theta[0] attends to neither the series nor z
    x0 = gs.data.NodeLayout.from_data(data).flatten(data)[0]
    moved = x0.at[2:2 + LENGTH].add(2.0)
    mask = jnp.asarray(model.observed_always)
    call = eqx.filter_jit(lambda x: model(jnp.asarray(0.3), x, mask, edge_mask=jnp.asarray(edges)))
    before, after = call(x0), call(moved)
    assert before[0] == after[0]
    assert before[1] != after[1]


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), rate=st.floats(0.0, 1.0))
def test_observed_always_masks(seed, rate):
    always = (False, True, True, False, True)
    sampler = ObservedAlways(lambda key, n: jr.bernoulli(key, rate, (n,)), always)
    mask = np.asarray(sampler(jr.key(seed), 5))
    assert mask[[1, 2, 4]].all()
    assert not mask.all()
    everything = ObservedAlways(lambda key, n: jnp.ones(n, bool), always)
    assert tuple(np.asarray(everything(jr.key(seed), 5)).tolist()) == always


@pytest.fixture(scope="module")
def estimator():
    data, model = _embedded()
    est = gs.fit(jr.key(2), model, data, training=gs.Training(max_steps=60, batch_size=32),
                 progress=False)
    return data, est


def test_fit_sample_log_prob_save_load(estimator, tmp_path):
    data, est = estimator
    x_o = {"x": data["x"][:2], "z": data["z"][:2]}
    samples = est.sample(jr.key(3), x_o, 20, sampler=gs.SDE(10))
    assert samples["theta"].shape == (20, 2, 2) and set(samples) == {"theta"}
    joint = est.sample(jr.key(3), {"x": data["x"][0]}, 20, sampler=gs.SDE(10))
    assert set(joint) == {"theta", "z"}
    log_prob = est.log_prob({"theta": data["theta"][:2]}, x_o)
    assert log_prob.shape == (2,) and np.isfinite(log_prob).all()
    path = tmp_path / "embedded.eqx"
    gs.save(path, est)
    loaded = gs.load(path)
    again = loaded.sample(jr.key(3), x_o, 20, sampler=gs.SDE(10))
    np.testing.assert_array_equal(np.asarray(again["theta"]), np.asarray(samples["theta"]))
    assert eqx.tree_equal(loaded.model, est.model)


def test_users_own_embedding_saves_and_loads_with_a_skeleton(estimator, tmp_path):
    _, est = estimator
    _, own = _embedded(embedding=Summaries(jr.key(7)))
    est = eqx.tree_at(lambda e: e.model, est, own)
    path = tmp_path / "own.eqx"
    gs.save(path, est)
    with pytest.raises(ValueError, match=r"embeddings=\{'x': Summaries"):
        gs.load(path)
    loaded = gs.load(path, embeddings={"x": Summaries(jr.key(99))})
    assert eqx.tree_equal(loaded.model, est.model)
    plain = tmp_path / "plain.eqx"
    gs.save(plain, eqx.tree_at(lambda e: e.model, est, own.model))
    with pytest.raises(ValueError, match="reads no node through an embedding"):
        gs.load(plain, embeddings={"x": Summaries(jr.key(99))})


def test_an_embedded_node_is_conditioned_on_only(estimator):
    data, est = estimator
    message = "read through an embedding network"
    with pytest.raises(ValueError, match=message):
        est.sample(jr.key(0), {"theta": data["theta"][0]}, 5)
    with pytest.raises(ValueError, match=message):
        est.sample(jr.key(0), {"z": data["z"][0]}, 5)
    with pytest.raises(ValueError, match=message):
        est.log_prob({"x": data["x"][:1]}, {"theta": data["theta"][:1], "z": data["z"][:1]})


def test_embedding_errors():
    data = _data(50)
    net = gs.embeddings.SeriesEmbedding(LENGTH, 4, key=jr.key(0))
    with pytest.raises(ValueError, match="`embeddings`"):
        gs.Simformer.for_data(data, embeddings={"w": net}, key=jr.key(0))
    with pytest.raises(TypeError, match="embeddings"):
        gs.Simformer.for_data(data, embeddings={"x": lambda v: v[:3]}, key=jr.key(0))
    with pytest.raises(ValueError, match=r"`embeddings\['theta'\]` must take node 'theta'"):
        gs.Simformer.for_data(data, embeddings={"theta": net}, key=jr.key(0))
    with pytest.raises(ValueError, match="every node would be read through an embedding"):
        gs.Simformer.for_data({"x": data["x"]}, embeddings={"x": net}, key=jr.key(0))
    with pytest.raises(ValueError, match=r"inferred, not in `condition_on`"):
        gs.Flux1.for_data(data, condition_on="theta", embeddings={"x": net}, key=jr.key(0))
    with pytest.raises(TypeError, match="`embeddings` must be a non-empty dict"):
        gs.Simformer.for_data(data, embeddings={}, key=jr.key(0))
    series = {"theta": data["theta"], "x": gs.Series(data["x"], jnp.linspace(0, 1, LENGTH))}
    with pytest.raises(ValueError, match="have times"):
        gs.Simformer.for_data(series, embeddings={"x": net}, key=jr.key(0))

    class Scalar(eqx.Module):
        def __call__(self, values):
            return values.sum()

    with pytest.raises(ValueError, match=r"shape \(k,\) or \(k, c\)"):
        gs.Simformer.for_data(data, embeddings={"x": Scalar()}, key=jr.key(0))
    with pytest.raises(ValueError, match="`length` must be a positive integer"):
        gs.embeddings.SeriesEmbedding(0, key=jr.key(0))
