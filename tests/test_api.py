"""End to end through the public API: fit, sample any conditional, save/load, bad input."""

import json
import os

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from scipy import stats

import gensbi_eqx as gs

TINY = dict(dim_value=8, dim_id=8, dim_condition=4, num_heads=2, head_dim=8, depth=1, widening=2, dim_time=16)
# Narrower models than this (or shorter runs) do not learn the conditionals well enough to test.
TRAINED = dict(depth=2)
DIM = 2


@pytest.fixture(scope="module")
def task():
    return gs.tasks.GaussianLinear(dim=DIM)


@pytest.fixture(scope="module")
def data(task):
    theta, x = task.simulate(jr.key(0), 4_000)
    return {"theta": theta, "x": x}


@pytest.fixture(scope="module")
def estimator(data):
    """One small Simformer trained once (VE, structured masks) and shared by the tests."""
    model = gs.Simformer.for_data(data, key=jr.key(1), **TRAINED)
    training = gs.Training(max_steps=1_500, stopping=gs.EarlyStopping(every=100))
    return gs.fit(jr.key(2), model, data, method=gs.VESDE(), training=training, progress=False)


ODE = gs.ODE()  # the probability-flow ODE, adaptive Tsit5 at rtol = atol = 1e-5
NUM = 4_000  # draws per check: standard error of a mean is sd / 63, of a variance 2.2%

# Tolerances: the sampling error (5 standard errors) plus a stated budget for what a small model
# trained for 1,500 steps gets wrong, sampled with the default reverse SDE (the probability-flow
# ODE of so short a run is wider: its accuracy is tested with an exact score in test_samplers). The posterior sd is 0.22 and the likelihood sd 0.32, so
# 0.05 in the mean is under a quarter of an sd and 25% in the variance is visible on a plot;
# an untrained or wrongly conditioned model misses both by far.
MEAN_BUDGET, VAR_BUDGET = 0.05, 0.25


def _check_gaussian(samples, mean, var):
    samples = np.asarray(samples, dtype=np.float64)
    sd = np.sqrt(var)
    np.testing.assert_array_less(np.abs(samples.mean(0) - mean), 5 * sd / np.sqrt(len(samples)) + MEAN_BUDGET)
    rel = np.abs(samples.var(0) / var - 1)
    np.testing.assert_array_less(rel, 5 * np.sqrt(2 / len(samples)) + VAR_BUDGET)


def test_posterior_matches_closed_form(estimator, task):
    """Posterior samples of a trained model match the analytic Gaussian posterior. Without a
    sampler, the method's default one runs and is recorded with the draws."""
    x_o = jnp.array([0.3, -0.2])
    post = estimator.sample(jr.key(3), {"x": x_o}, NUM)
    assert isinstance(post, gs.Samples) and post.info == {}
    assert post.sampler == gs.samplers.default_sampler(gs.VESDE()) == gs.SDE(steps=200)
    assert set(post) == {"theta"} and post["theta"].shape == (NUM, DIM)
    assert set(dict(post)) == {"theta"} and "theta" in repr(post)
    truth = task.true_posterior(x_o)
    _check_gaussian(post["theta"], np.asarray(truth.mean), np.diag(np.asarray(truth.covariance)))


def test_likelihood_from_the_same_model(estimator):
    """The same joint model answers the likelihood p(x | theta) = N(theta, 0.1 I)."""
    theta_o = jnp.array([0.2, -0.1])
    lik = estimator.sample(jr.key(4), {"theta": theta_o}, NUM)
    assert set(lik) == {"x"}
    _check_gaussian(lik["x"], np.asarray(theta_o), np.full(DIM, 0.1))


def test_partial_condition_nan_entries(estimator):
    """NaN entries are latent; given entries come back bit-identical; shapes follow the query."""
    given = jnp.array([0.3, jnp.nan])
    x_o = jnp.array([0.1, 0.25])
    out = estimator.sample(jr.key(5), {"x": x_o, "theta": given}, 500, sampler=ODE)
    assert set(out) == {"theta"} and out["theta"].shape == (500, DIM)
    assert np.all(np.asarray(out["theta"][:, 0]) == np.float32(0.3))
    assert np.isfinite(np.asarray(out["theta"][:, 1])).all()
    only_theta = estimator.sample(jr.key(5), {"theta": given}, 10, sampler=ODE)
    assert set(only_theta) == {"theta", "x"}


def test_batched_conditions_match_single_calls(estimator):
    """A leading batch axis samples every conditional at once, shaped (num_samples, B, d)."""
    x_os = jnp.array([[0.3, -0.2], [-0.5, 0.4], [0.0, 0.0]])
    batched = estimator.sample(jr.key(6), {"x": x_os}, 1_000, sampler=ODE)["theta"]
    assert batched.shape == (1_000, 3, DIM)
    np.testing.assert_allclose(np.asarray(batched.mean(0)), 0.5 * np.asarray(x_os), atol=0.06)


def test_sampler_does_not_recompile_for_new_observations(estimator):
    """A new observation, or a new NaN pattern, of the same shape reuses the compiled sampler."""
    fn = gs.sampling.sample_conditionals
    estimator.sample(jr.key(7), {"x": jnp.array([0.1, 0.1])}, 64, sampler=ODE)
    before = eqx.debug.get_num_traces(fn)
    estimator.sample(jr.key(8), {"x": jnp.array([-0.4, 0.2])}, 64, sampler=ODE)
    estimator.sample(jr.key(8), {"x": jnp.array([-0.4, jnp.nan])}, 64, sampler=gs.ODE())
    assert eqx.debug.get_num_traces(fn) == before


def test_same_key_same_samples(estimator):
    """Samples are a function of the key."""
    a = estimator.sample(jr.key(9), {"x": jnp.zeros(DIM)}, 100, sampler=ODE)["theta"]
    b = estimator.sample(jr.key(9), {"x": jnp.zeros(DIM)}, 100, sampler=ODE)["theta"]
    c = estimator.sample(jr.key(10), {"x": jnp.zeros(DIM)}, 100, sampler=ODE)["theta"]
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_history_and_early_stopping_bookkeeping(estimator):
    """The history records every step's loss and the validation scores, keeping the best."""
    h = estimator.history
    assert len(h.train_loss) == h.validation_steps[-1]
    assert np.isfinite(h.train_loss).all()
    assert h.best_step == h.validation_steps[np.argmin(h.validation_loss)]
    assert h.train_loss[-100:].mean() < h.train_loss[:100].mean()


def test_save_load_round_trip(estimator, tmp_path):
    """A loaded estimator samples bit-identically and keeps its history."""
    path = tmp_path / "est.eqx"
    gs.save(path, estimator)
    loaded = gs.load(path)
    assert [p.name for p in tmp_path.iterdir()] == ["est.eqx"]  # no temp file left behind
    for sampler in (ODE, gs.SDE(steps=20)):
        a = estimator.sample(jr.key(11), {"x": jnp.ones(DIM)}, 50, sampler=sampler)["theta"]
        b = loaded.sample(jr.key(11), {"x": jnp.ones(DIM)}, 50, sampler=sampler)["theta"]
        assert np.array_equal(a, b)
    np.testing.assert_array_equal(loaded.history.train_loss, estimator.history.train_loss)
    assert loaded.layout == estimator.layout and loaded.method == estimator.method
    assert loaded.attention == estimator.attention == gs.DenseAttention()
    with pytest.raises(TypeError, match="estimator"):
        gs.save(tmp_path / "other.eqx", estimator.model)


def test_log_prob_is_a_normalised_density_in_user_units(estimator):
    """The 1-D conditional p(theta[0] | x, theta[1]) = N(x[0] / 2, 0.05) evaluated on a grid of
    +-8 sd integrates to one in the user's units (so the standardisation's Jacobian is right:
    without it the integral is off by the data's std, about 0.45 here), and its mean and
    variance match the analytic ones within the budgets of the sampling tests."""
    x_o = jnp.array([0.3, -0.2])
    mean, sd = 0.15, np.sqrt(0.05)
    grid = np.linspace(mean - 8 * sd, mean + 8 * sd, 161)
    values = {"theta": np.stack([grid, np.full_like(grid, np.nan)], axis=-1)}
    condition = {"x": x_o, "theta": jnp.array([jnp.nan, -0.1])}
    log_density = np.asarray(estimator.log_prob(values, condition), dtype=np.float64)
    assert log_density.shape == grid.shape and np.isfinite(log_density).all()
    density = np.exp(log_density)
    # The ODE's error in the log-density is below 3e-3 at rtol = atol = 1e-5 and the trapezoid
    # rule is exact to 1e-6 at 0.1 sd spacing, so 1e-2 leaves room only for mass past 8 sd.
    total = np.trapezoid(density, grid)
    assert abs(total - 1) < 1e-2, total
    got_mean = np.trapezoid(grid * density, grid) / total
    got_var = np.trapezoid((grid - got_mean) ** 2 * density, grid) / total
    assert abs(got_mean - mean) < MEAN_BUDGET
    assert abs(got_var / sd**2 - 1) < VAR_BUDGET


def test_constraints_on_parameters_and_on_data(estimator):
    """Constraints through the estimator, in user units, by the default strategy.

    Parameters: theta[0] | x_o ~ N(0.15, 0.05) restricted to [0, 0.3] (half its mass):
    rejection runs with an acceptance near that half, every draw is inside, and the
    unconstrained theta[1] keeps its N(-0.1, 0.05) marginal (the budgets above). Data: x
    restricted to a box holding 2% of its prior-predictive mass: SMC takes over, every draw of
    x is inside, no draw of theta strays beyond 6 prior sds, and theta's mean is the exact
    ``0.5 E[x | x in box]`` (x ~ N(0, 0.2 I) truncated) within 5 standard errors of the
    effective sample plus the mean budget."""
    n = 1_000
    x_o = jnp.array([0.3, -0.2])
    box = gs.Box({"theta": (jnp.array([0.0, -jnp.inf]), jnp.array([0.3, jnp.inf]))})
    post = estimator.sample(jr.key(20), {"x": x_o}, n, constraints=box)
    assert post.sampler == gs.Rejection() and post.info["strategy"] == "rejection"
    mass = 2 * stats.norm.cdf(0.15 / np.sqrt(0.05)) - 1
    assert abs(float(post.info["acceptance"]) - mass) < 0.1, post.info
    theta = np.asarray(post["theta"])
    assert ((theta[:, 0] >= 0.0) & (theta[:, 0] <= 0.3)).all()
    _check_gaussian(theta[:, 1:], np.array([-0.1]), np.array([0.05]))

    lower, upper = np.array([0.2, -0.3]), np.array([0.4, -0.1])
    joint = estimator.sample(jr.key(21), {}, n, constraints=[gs.Box({"x": (lower, upper)})])
    info = joint.info
    assert info["strategy"] == "smc" and float(info["acceptance"]) < 0.1, info
    x, theta = np.asarray(joint["x"]), np.asarray(joint["theta"])
    assert ((x >= lower) & (x <= upper)).all()
    assert (np.abs(theta) < 6 * np.sqrt(0.1)).all()
    sd_x = np.sqrt(0.2)
    truncated = stats.truncnorm(lower / sd_x, upper / sd_x, scale=sd_x)
    sd_theta = np.sqrt(0.05 + 0.25 * truncated.var())
    effective = min(float(info["ess"]), 1.0) * n
    error = np.abs(theta.mean(0) - 0.5 * truncated.mean())
    np.testing.assert_array_less(error, 5 * sd_theta / np.sqrt(effective) + MEAN_BUDGET)


def test_guidance_alone_with_a_plain_sampler(estimator):
    """A plain sampler with constraints is guided diffusion alone, and says so: theta[0] |
    x_o restricted to [0, 0.3] (half its mass), >= 95% of draws inside, >= 99% inside the
    interval widened by 5%."""
    x_o = jnp.array([0.3, -0.2])
    box = gs.Box({"theta": (jnp.array([0.0, -jnp.inf]), jnp.array([0.3, jnp.inf]))})
    post = estimator.sample(jr.key(22), {"x": x_o}, 1_000, constraints=box, sampler=gs.SDE(steps=200))
    assert post.info == {"strategy": "guidance"}
    post = np.asarray(post["theta"])
    inside = (post[:, 0] >= 0.0) & (post[:, 0] <= 0.3)
    widened = (post[:, 0] >= -0.015) & (post[:, 0] <= 0.315)
    assert inside.mean() >= 0.95 and widened.mean() >= 0.99, (inside.mean(), widened.mean())


def test_log_prob_refuses_bad_queries(estimator):
    point = {"theta": jnp.zeros(2)}
    with pytest.raises(ValueError, match="neither"):
        estimator.log_prob(point)
    with pytest.raises(ValueError, match="both"):
        estimator.log_prob(point, {"theta": jnp.zeros(2), "x": jnp.zeros(2)})
    with pytest.raises(TypeError, match="trace"):  # the type checker may answer first
        estimator.log_prob(point, {"x": jnp.zeros(2)}, trace="skilling")
    with pytest.raises(ValueError, match="`key`"):
        estimator.log_prob(point, {"x": jnp.zeros(2)}, trace=gs.sampling.Hutchinson())
    with pytest.raises(TypeError, match="ode"):
        estimator.log_prob(point, {"x": jnp.zeros(2)}, ode=gs.SDE())


def test_failed_save_leaves_old_file_intact(estimator, tmp_path, monkeypatch):
    """A crash while writing never leaves a half-written file where the estimator was."""
    path = tmp_path / "est.eqx"
    gs.save(path, estimator)
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(eqx, "tree_serialise_leaves", boom)
    with pytest.raises(OSError, match="disk full"):
        gs.save(path, estimator)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["est.eqx"]


def test_load_refuses_other_files(tmp_path):
    """A file that is not a saved estimator gets a clear error."""
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    with pytest.raises(ValueError, match="not a saved gensbi_eqx estimator"):
        gs.load(other)
    with pytest.raises(ValueError, match="not a file"):
        gs.load(tmp_path / "missing.eqx")


def test_load_refuses_format_1_files(tmp_path):
    """A file in the first format (written before settings were objects) is refused, saying
    which format it has, which one is read, and what to do."""
    header = json.dumps({"format": 1, "library_version": "0.1.0", "model": {}}).encode()
    old = tmp_path / "old.eqx"
    old.write_bytes(b"GENSBI_EQX\n" + f"{len(header)}\n".encode() + header + b"\0" * 64)
    with pytest.raises(ValueError, match=r"format 1 \(written by gensbi_eqx 0\.1\.0\); this "
                       r"version reads format 2\. Load it with the version that wrote it"):
        gs.load(old)


def test_flow_matching_and_vp_train_through_the_same_api(data):
    """Swapping the method needs no change to the model or the call; each samples with its own
    default sampler."""
    for method in (gs.FlowMatching(), gs.VPSDE()):
        model = gs.Simformer.for_data(data, key=jr.key(1), **TINY)
        est = gs.fit(jr.key(2), model, data, method=method, training=gs.Training(max_steps=20),
                     progress=False, condition_masks=gs.PosteriorMasks())
        out = est.sample(jr.key(3), {"x": jnp.zeros(DIM)}, 8)
        assert out.sampler == gs.samplers.default_sampler(method)
        assert out["theta"].shape == (8, DIM) and np.isfinite(np.asarray(out["theta"])).all()


# ---- bad input ---------------------------------------------------------------------------------


ONE_STEP = gs.Training(max_steps=1)


def _small_model(data):
    return gs.Simformer.for_data(data, key=jr.key(0), **TINY)


@pytest.mark.parametrize(
    "bad, match",
    [
        ({}, "empty"),
        ({"theta": np.zeros((0, 2)), "x": np.zeros((0, 2))}, "no rows"),
        ({"theta": np.zeros((5, 2)), "x": np.zeros((6, 2))}, "same N"),
        ({"theta": np.zeros((5, 0)), "x": np.zeros((5, 2))}, r"shape \(N, d\)"),
        ({"theta": np.float32(1.0), "x": np.zeros((5, 2))}, r"shape \(N, d\)"),
    ],
)
def test_fit_refuses_malformed_data(bad, match):
    """Empty data, mismatched rows, empty nodes and scalars are refused with the argument named."""
    model = gs.Simformer(4, key=jr.key(0), **TINY)
    with pytest.raises(ValueError, match=match):
        gs.fit(jr.key(0), model, bad, method=gs.VESDE(), training=ONE_STEP, progress=False)


def test_fit_refuses_bad_arguments(data):
    """Model/data mismatch, wrong method type, bad counts and masks name the argument."""
    model = _small_model(data)
    fit = lambda **kw: gs.fit(jr.key(0), kw.pop("model", model), kw.pop("data", data), **{"method": gs.VESDE(), "training": ONE_STEP, "progress": False, **kw})
    with pytest.raises(ValueError, match="`model` has 4 scalars but `data` has 3"):
        fit(data={"theta": data["theta"], "x": data["x"][:, 0]})
    with pytest.raises(TypeError, match="method"):  # the type checker may answer first
        fit(method="ve")
    with pytest.raises(ValueError, match="`parameters`"):
        fit(condition_masks=gs.StructuredMasks(parameters=("phi",)))
    with pytest.raises(ValueError, match="`condition_masks` must return"):
        fit(condition_masks=lambda key, n: jnp.zeros(n + 1, bool))
    with pytest.raises(ValueError, match=r"`edge_mask` must have shape \(4, 4\)"):
        fit(attention=gs.FixedAttention(np.ones((3, 3), bool)))
    # Settings are checked where they are made, naming the setting.
    with pytest.raises(ValueError, match="`max_steps`"):
        gs.Training(max_steps=0)
    with pytest.raises(ValueError, match="`validation_fraction`"):
        gs.Training(validation_fraction=1.0)
    with pytest.raises(ValueError, match="`patience`"):
        gs.EarlyStopping(patience=0)


@pytest.mark.parametrize(
    "argument, value",
    [
        ("training", {"max_steps": 10}),  # the old keywords, as a dict
        ("training", 10),
        ("condition_masks", "posterior"),  # the old string spelling
        ("condition_masks", ("theta",)),
        ("attention", "directed"),
        ("attention", np.ones((4, 4), bool)),  # an edge mask not wrapped in gs.FixedAttention
        ("attention", gs.Dependencies({"x": ["theta"]})),  # dependencies without a policy
    ],
    ids=lambda v: v if isinstance(v, str) else type(v).__name__,
)
def test_fit_refuses_settings_of_the_wrong_type(data, argument, value):
    """Each setting of fit is an object; anything else is refused naming the argument."""
    with pytest.raises((TypeError, ValueError), match=argument):
        gs.fit(jr.key(0), _small_model(data), data, progress=False, **{argument: value})


def test_sample_refuses_bad_queries(estimator):
    """Unknown names, wrong widths, full conditions, bad counts and samplers are refused."""
    key = jr.key(0)
    with pytest.raises(ValueError, match="unknown node"):
        estimator.sample(key, {"y": jnp.zeros(2)}, 10)
    with pytest.raises(ValueError, match=r"must have shape \(\*batch, 2\), got \(3,\)"):
        estimator.sample(key, {"x": jnp.zeros(3)}, 10)
    with pytest.raises(ValueError, match="observes every node"):
        estimator.sample(key, {"x": jnp.zeros(2), "theta": jnp.zeros(2)}, 10)
    with pytest.raises(ValueError, match="`num_samples`"):
        estimator.sample(key, {"x": jnp.zeros(2)}, 0)
    with pytest.raises(ValueError, match="do not broadcast"):
        estimator.sample(key, {"x": jnp.zeros((3, 2)), "theta": jnp.zeros((4, 2))}, 10)
    with pytest.raises(TypeError, match="condition"):
        estimator.sample(key, [0.0, 0.0], 10)
    x_o = {"x": jnp.zeros(2)}
    with pytest.raises(ValueError, match="unknown node"):
        estimator.sample(key, x_o, 10, constraints=gs.Box({"phi": (0.0, 1.0)}))
    with pytest.raises(ValueError, match="lower must be below upper"):
        estimator.sample(key, x_o, 10, constraints=gs.Box({"theta": (1.0, 0.0)}))
    with pytest.raises((TypeError, ValueError), match=r"pair \(lower, upper\)|bounds"):
        estimator.sample(key, x_o, 10, constraints=gs.Box({"theta": 1.0}))
    with pytest.raises(ValueError, match=r"`A` must have shape \(num_constraints, 4\)"):
        estimator.sample(key, x_o, 10, constraints=gs.LinearInequality(np.ones((1, 3)), np.ones(1)))
    # A sampler that cannot drive the method is refused before anything is traced.
    with pytest.raises(ValueError, match="needs an EDM method, got VESDE"):
        estimator.sample(key, x_o, 10, sampler=gs.EDMSampler())
    # Resampling re-noises between the fixed steps of an SDE: no other sampler is wrapped.
    with pytest.raises(TypeError, match="sampler"):  # the type checker may answer first
        gs.Resampled(gs.ODE(), rounds=2)
    with pytest.raises(ValueError, match="`steps`"):
        gs.SDE(steps=0)
    # Rejection and SMC draw under constraints only.
    with pytest.raises(ValueError, match="pass `constraints`"):
        estimator.sample(key, x_o, 10, sampler=gs.SMC())


@pytest.mark.parametrize(
    "argument, value",
    [
        ("sampler", "sde"),  # the old string spelling
        ("sampler", gs.VESDE()),  # a method, not a sampler
        ("constraints", {"theta": (0.0, 1.0)}),  # the old dict, not wrapped in gs.Box
        ("constraints", (np.ones((1, 4)), np.ones(1))),  # the old (A, b) pair
        ("constraints", [gs.Box({"theta": (0.0, 1.0)}), "x"]),
    ],
    ids=lambda v: v if isinstance(v, str) else type(v).__name__,
)
def test_sample_refuses_settings_of_the_wrong_type(estimator, argument, value):
    """Each setting of sample is an object; anything else is refused naming the argument."""
    with pytest.raises(TypeError, match=argument):
        estimator.sample(jr.key(0), {"x": jnp.zeros(2)}, 10, **{argument: value})


def test_train_step_compiles_once_per_run():
    """The train step runs without retracing, and a retrace (new shapes) is caught loudly."""
    model = gs.Simformer(4, key=jr.key(0), **TINY)
    optimizer = gs.training.default_optimizer(10, learning_rate=1e-3, gradient_clip=1.0)
    opt_state = optimizer.init(eqx.filter(model, eqx.is_inexact_array))
    step = gs.training.make_train_step(
        gs.VESDE(), gs.StructuredMasks(is_parameter=(True, True, False, False)), optimizer, 8, 4
    )
    x_train = jr.normal(jr.key(1), (32, 4))
    state = (model, model, opt_state)
    for i in range(3):
        state = step(x_train, *state, jr.key(i), jnp.asarray(i))[:3]
    with pytest.raises(RuntimeError, match="traced"):
        step(jr.normal(jr.key(1), (16, 4)), *state, jr.key(3), jnp.asarray(3))
