"""The Simformer paper's structured tasks (Tree, HMM) and MCMC references of their conditionals.

Statistical checks use fixed keys and tolerances of 5 standard errors computed from the sample
size (MCMC draws counted at a quarter of their number, a conservative effective sample size),
not tuned until green. NUTS compiles for a few seconds per run, so the MCMC tests are few and
small.
"""

import math
import sys

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from scipy.stats import norm

import gensbi_eqx.tasks._mcmc as mcmc_module
from gensbi_eqx.data import Dependencies, NodeLayout
from gensbi_eqx.tasks import HMM, Tree, TwoMoons, conditional_reference, random_conditionals


TASKS = {"tree": Tree(), "hmm": HMM()}
task_ids = pytest.mark.parametrize("name", list(TASKS))

# Tree, worked out by hand from the paper's graph: theta0 -> theta1, theta2; theta1 -> x0, x1;
# theta2 -> x2, x3. Rows depend on columns (theta0, theta1, theta2, x0, x1, x2, x3).
TREE_BASE = [
    [1, 0, 0, 0, 0, 0, 0],
    [1, 1, 0, 0, 0, 0, 0],
    [1, 0, 1, 0, 0, 0, 0],
    [0, 1, 0, 1, 0, 0, 0],
    [0, 1, 0, 0, 1, 0, 0],
    [0, 0, 1, 0, 0, 1, 0],
    [0, 0, 1, 0, 0, 0, 1],
]
# HMM: theta_{i-1} -> theta_i, theta_i -> x_i. Blocks [[theta|theta, 0], [x|theta, x|x]].
_I10 = np.eye(10, dtype=int)
HMM_BASE = np.block([[_I10 + np.eye(10, k=-1, dtype=int), 0 * _I10], [_I10, _I10]])
BASES = {"tree": np.array(TREE_BASE, dtype=bool), "hmm": HMM_BASE.astype(bool)}


def _num_se(estimate, truth, se):
    return np.max(np.abs(np.asarray(estimate) - np.asarray(truth)) / se)


def _layout(task):
    return NodeLayout.from_data(
        {"theta": np.zeros((1, task.dim_theta)), "x": np.zeros((1, task.dim_x))}
    )


def _closure(adjacency):
    """[i, j] True when there is a directed path from j to i (or i == j)."""
    reach = adjacency.copy()
    while True:
        grown = reach | ((reach.astype(int) @ reach.astype(int)) > 0)
        if (grown == reach).all():
            return reach
        reach = grown


def _moral(adjacency):
    n = adjacency.shape[0]
    parents = adjacency & ~np.eye(n, dtype=bool)
    co_parents = (parents.T.astype(int) @ parents.astype(int)) > 0
    return adjacency | adjacency.T | co_parents


# ----------------------------------------------------------------------------- tasks


@task_ids
def test_log_joint_finite_on_joint_draws(name, getkey):
    """Shapes, dtypes and reproducibility of ``simulate``: tests/test_task_contract.py."""
    task = TASKS[name]
    theta, x = task.simulate(getkey(), 256)
    log_joint = task.log_joint(theta, x)
    assert log_joint.shape == (256,) and np.all(np.isfinite(log_joint))
    assert task.log_joint(theta[:6].reshape(2, 3, -1), x[:6].reshape(2, 3, -1)).shape == (2, 3)


@task_ids
def test_dependencies_hand_worked_and_follow_simulator(name, getkey):
    """The declared graph is the hand-worked one; with the noise held fixed (same key), x_i moves
    with theta_j exactly where theta_j is a parent of x_i; the prior draws theta = loc + L eps
    with L nonzero exactly along paths of the theta graph; and the joint density couples two
    entries only where the moral graph has an edge (the Markov property of the DAG)."""
    task = TASKS[name]
    dt = task.dim_theta
    adjacency = task.dependencies.adjacency(_layout(task))
    assert isinstance(task.dependencies, Dependencies)
    np.testing.assert_array_equal(adjacency, BASES[name])

    theta = task.prior.sample(getkey(), 1)[0]
    key = getkey()
    jacobian = jax.jacfwd(lambda t: task.simulator(key, t[None])[0])(theta)
    np.testing.assert_array_equal(np.asarray(jacobian) != 0, adjacency[dt:, :dt])
    np.testing.assert_array_equal(
        np.abs(np.asarray(task.prior.cholesky)) > 1e-6, _closure(adjacency[:dt, :dt])
    )

    x = task.simulator(getkey(), theta[None])[0]
    flat = jnp.concatenate([theta, x])
    hessian = np.asarray(jax.hessian(lambda v: task.log_joint(v[:dt], v[dt:]))(flat))
    moral = _moral(adjacency)
    scale = np.abs(hessian).max()
    assert np.all(np.abs(hessian[~moral]) < 1e-5 * scale)
    assert np.all(np.abs(hessian[moral]) > 1e-5 * scale)


@task_ids
def test_log_joint_agrees_with_prior_and_simulator(name, getkey):
    """log_joint = the ancestral prior factorisation (scipy) + a likelihood whose 1-D slices,
    normalised on a grid, have the simulator's mean and variance, and which integrates to 1."""
    task = TASKS[name]
    dt, dx = task.dim_theta, task.dim_x
    theta = np.asarray(task.prior.sample(getkey(), 4), np.float64)
    if name == "tree":
        ancestral = (
            norm.logpdf(theta[:, 0], 0, 1)
            + norm.logpdf(theta[:, 1], theta[:, 0], 1)
            + norm.logpdf(theta[:, 2], theta[:, 0], 1)
        )
    else:
        ancestral = norm.logpdf(theta[:, 0], 0, 0.5) + norm.logpdf(
            theta[:, 1:], theta[:, :-1], 0.5
        ).sum(axis=1)
    np.testing.assert_allclose(
        task.prior.log_prob(jnp.asarray(theta, jnp.float32)), ancestral, rtol=1e-5, atol=1e-5
    )

    theta_0 = jnp.asarray(theta[:1], jnp.float32)
    n = 20_000
    draws = np.asarray(task.simulator(getkey(), jnp.repeat(theta_0, n, axis=0)), np.float64)
    mean, sd = draws.mean(axis=0), draws.std(axis=0)
    x_0 = jnp.asarray(draws[0], jnp.float32)
    log_slices = []
    for i in range(dx):
        grid = np.linspace(mean[i] - 12 * sd[i], mean[i] + 12 * sd[i], 4001)
        xs = np.repeat(np.asarray(x_0)[None], grid.size, axis=0)
        xs[:, i] = grid
        values = np.asarray(
            task.log_likelihood(jnp.repeat(theta_0, grid.size, axis=0), jnp.asarray(xs)),
            np.float64,
        )
        density = np.exp(values - values.max())
        mass = np.trapezoid(density, grid)
        slice_mean = np.trapezoid(grid * density, grid) / mass
        slice_var = np.trapezoid((grid - slice_mean) ** 2 * density, grid) / mass
        assert abs(mean[i] - slice_mean) < 5 * sd[i] / math.sqrt(n)
        assert abs(sd[i] ** 2 - slice_var) < 5 * slice_var * math.sqrt(2 / n)
        log_slices.append(math.log(mass) + values.max())
    # With no coupling between the x_i (checked above), log L(x) = sum_i f_i(x_i), so the slices
    # through x_0 give log Z = sum_i log int exp(slice_i) - (dim_x - 1) log L(x_0) exactly.
    log_at_x0 = float(task.log_likelihood(theta_0[0], x_0))
    assert abs(sum(log_slices) - (dx - 1) * log_at_x0) < 1e-3
    np.testing.assert_allclose(
        task.log_joint(theta_0[0], x_0),
        task.prior.log_prob(theta_0[0]) + log_at_x0,
        rtol=1e-6,
    )
    with pytest.raises(ValueError, match=rf"`theta` must have shape \(\*batch, {dt}\)"):
        task.log_joint(jnp.zeros((2, dt + 1)), jnp.zeros((2, dx)))
    with pytest.raises(ValueError, match=rf"`x` must have shape \(\*batch, {dx}\)"):
        task.log_joint(jnp.zeros((2, dt)), jnp.zeros((2, dx + 1)))


# ----------------------------------------------------------------------------- conditionals


@task_ids
def test_random_conditionals(name):
    task = TASKS[name]
    dim = task.dim_theta + task.dim_x
    values, masks = random_conditionals(jr.key(0), task, 256)
    assert values.shape == masks.shape == (256, dim) and masks.dtype == jnp.bool_
    observed = np.asarray(masks).sum(axis=1)
    assert observed.min() >= 1 and observed.max() <= dim - 1
    assert len(np.unique(observed)) > dim // 2  # the number observed varies
    theta, x = task.simulate(jr.split(jr.key(0), 3)[0], 256)
    # Fused inside one jit, the simulator may round differently in the last bit.
    np.testing.assert_allclose(values, jnp.concatenate([theta, x], axis=-1), rtol=1e-5, atol=1e-6)
    again = random_conditionals(jr.key(0), task, 256)
    np.testing.assert_array_equal(again[1], masks)
    with pytest.raises(ValueError, match="`num`"):
        random_conditionals(jr.key(0), task, 0)


def test_conditional_reference_bad_inputs():
    task = TASKS["tree"]
    values, mask = np.zeros(7, np.float32), np.array([1, 0, 0, 0, 0, 0, 0], bool)
    with pytest.raises(ValueError, match=r"`values` must have shape \(7,\).*\(6,\)"):
        conditional_reference(jr.key(0), task, values[:6], mask, 10)
    with pytest.raises(ValueError, match=r"`condition_mask` must have shape \(7,\).*\(2, 7\)"):
        conditional_reference(jr.key(0), task, values, np.stack([mask, mask]), 10)
    with pytest.raises(TypeError, match="`condition_mask` must be a bool array"):
        conditional_reference(jr.key(0), task, values, mask.astype(int), 10)
    with pytest.raises(ValueError, match="nothing to sample"):
        conditional_reference(jr.key(0), task, values, np.ones(7, bool), 10)
    with pytest.raises(ValueError, match=r"finite at the observed entries; entries \[0\]"):
        conditional_reference(jr.key(0), task, np.full(7, np.nan, np.float32), mask, 10)
    with pytest.raises(ValueError, match="`num_samples`"):
        conditional_reference(jr.key(0), task, values, mask, 0)
    with pytest.raises(ValueError, match="`num_chains`"):
        conditional_reference(jr.key(0), task, values, mask, 10, num_chains=0)
    with pytest.raises(ValueError, match="`on_poor_mixing`"):
        conditional_reference(jr.key(0), task, values, mask, 10, on_poor_mixing="loud")
    with pytest.raises(TypeError, match="AbstractJointDensityTask"):
        conditional_reference(jr.key(0), TwoMoons(), np.zeros(4), mask[:4], 10)
    # Nothing observed: the joint itself, sampled exactly.
    joint = conditional_reference(jr.key(0), task, values, np.zeros(7, bool), 5)
    theta, x = task.simulate(jr.split(jr.key(0), 4)[0], 5)
    np.testing.assert_array_equal(joint, jnp.concatenate([theta, x], axis=-1))


def test_lazy_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "numpyro", None)
    mask = np.array([1, 0, 0, 0, 0, 0, 0], bool)
    with pytest.raises(ImportError, match=r"pip install gensbi_eqx\[mcmc\]"):
        conditional_reference(jr.key(0), TASKS["tree"], np.zeros(7), mask, 10)


def test_mixing_problems_reported():
    """The checks behind the warning, on synthetic chains: a drifting chain, an unused stuck
    chain (ignored), divergences and a poor importance-sampling ESS."""
    numpyro = mcmc_module._import_numpyro()
    rng = np.random.default_rng(0)
    good = rng.normal(size=(3, 400, 2))
    counts = np.array([100, 100, 100])
    calm = np.zeros((3, 400), bool)
    assert mcmc_module._mixing_problems(good, counts, calm, 1e4, 1.1, 100.0, numpyro) == []
    drifting = good.copy()
    drifting[1] += np.linspace(0, 5, 400)[:, None]
    problems = mcmc_module._mixing_problems(drifting, counts, calm, 1e4, 1.1, 100.0, numpyro)
    assert any("chains [1] did not settle" in p for p in problems)
    unused = np.array([150, 0, 150])
    assert mcmc_module._mixing_problems(drifting, unused, calm, 1e4, 1.1, 100.0, numpyro) == []
    diverging = calm.copy()
    diverging[0, :50] = True
    problems = mcmc_module._mixing_problems(good, counts, diverging, 20.0, 1.1, 100.0, numpyro)
    assert any("50 of 1200 transitions diverged" in p for p in problems)
    assert any("importance-sampling effective sample size of 20" in p for p in problems)
    np.testing.assert_array_equal(mcmc_module._allocate(np.array([0.5, 0.3, 0.2]), 7), [4, 2, 1])
    with pytest.raises(RuntimeError, match=r"unreliable for this conditional \(setting\): a; b"):
        mcmc_module._report(["a", "b"], "setting", "raise")
    with pytest.warns(RuntimeWarning, match="unreliable"):
        mcmc_module._report(["a"], "setting", "warn")
    mcmc_module._report(["a"], "setting", "ignore")
    mcmc_module._report([], "setting", "raise")


def test_reference_weighs_separated_modes():
    """Tree with all but theta_1 observed: sin^2(theta_1) = 0.9 puts modes near +-pi/2 with a
    ~10-nat barrier at 0 that NUTS does not cross; chains start on both sides about equally, but
    theta_0 = 0.8 gives the positive side 90% of the mass (1-D grid). The reweighted pool must
    have the grid's mode weights and moments."""
    task = TASKS["tree"]
    values = np.array([0.8, np.nan, 0.3, 0.9, 0.25, 0.1, 0.9], np.float32)
    mask = np.array([1, 0, 1, 1, 1, 1, 1], bool)
    grid = np.linspace(-8, 8, 20001)
    log_p = (
        norm.logpdf(grid, 0.8, 1)
        + norm.logpdf(0.9, np.sin(grid) ** 2, 0.2)
        + norm.logpdf(0.25, 0.1 * grid**2, 0.2)
    )
    p = np.exp(log_p - log_p.max())
    p /= p.sum()
    positive, mean = p[grid > 0].sum(), (grid * p).sum()
    sd = math.sqrt((grid**2 * p).sum() - mean**2)

    n = 800
    kwargs = dict(num_warmup=300, num_chains=8)
    samples = np.asarray(conditional_reference(jr.key(2), task, values, mask, n, **kwargs))
    assert np.all(samples[:, mask] == values[mask])
    theta_1 = samples[:, 1].astype(np.float64)
    # Mode weights come from importance sampling with 65536 proposals; count their Kish ESS
    # as only 1000.
    se_share = math.sqrt(positive * (1 - positive) / 1000)
    assert abs((theta_1 > 0).mean() - positive) < 5 * se_share
    se_mean = math.sqrt(sd**2 / (n / 4) + (3.2 * se_share) ** 2)  # modes ~3.2 apart
    assert abs(theta_1.mean() - mean) < 5 * se_mean
    # Plain pooling would be near 50:50 here, far outside these bounds.
    assert abs(0.5 - positive) > 10 * se_share


def test_chain_weights_find_mode_masses():
    """Synthetic chains, three in the left mode of 0.8 N((-3, 0), I) + 0.2 N((3, 0), I) and one
    in the right: the shares give each mode its mass, split between the chains in it, whatever
    the chain counts; the same key gives the same shares."""
    rng = np.random.default_rng(0)
    centres = np.array([-3.0, -3.0, -3.0, 3.0])
    samples = rng.normal(size=(4, 400, 2))
    samples[..., 0] += centres[:, None]

    def log_density(z):
        left = jnp.log(0.8) - 0.5 * jnp.sum((z - jnp.array([-3.0, 0.0])) ** 2, axis=-1)
        right = jnp.log(0.2) - 0.5 * jnp.sum((z - jnp.array([3.0, 0.0])) ** 2, axis=-1)
        return jnp.logaddexp(left, right)

    shares, ess = mcmc_module._chain_weights(jr.key(0), samples, log_density)
    assert ess > 1000
    se = math.sqrt(0.8 * 0.2 / ess)
    assert abs(shares[3] - 0.2) < 5 * se
    np.testing.assert_allclose(shares[:3], (1 - shares[3]) / 3, rtol=0.05)
    again, _ = mcmc_module._chain_weights(jr.key(0), samples, log_density)
    np.testing.assert_array_equal(again, shares)


def test_reference_hmm_markov():
    """Observe every entry but theta_1 and x_1: by the Markov property only theta_0 and theta_2
    matter, theta_1 ~ N((theta_0 + theta_2) / 2, 0.125) and x_1 ~ N(theta_1^2, 0.25), whatever
    the other x say."""
    task = TASKS["hmm"]
    values = np.array(jnp.concatenate(task.simulate(jr.key(4), 1), axis=-1)[0])
    values[[0, 2]] = 0.4, 1.0
    values[11] = np.nan
    mask = np.ones(20, bool)
    mask[[1, 11]] = False
    n = 400
    samples = conditional_reference(jr.key(5), task, values, mask, n, num_warmup=300, num_chains=1)
    np.testing.assert_array_equal(samples[:, mask], np.broadcast_to(values[mask], (n, 18)))
    theta_1, x_1 = np.asarray(samples[:, 1], np.float64), np.asarray(samples[:, 11], np.float64)
    mu, var = 0.7, 0.125
    n_eff = n / 4
    assert _num_se(theta_1.mean(), mu, math.sqrt(var / n_eff)) < 5
    assert _num_se(theta_1.var(), var, var * math.sqrt(2 / n_eff)) < 5
    x_var = 2 * var**2 + 4 * mu**2 * var + 0.25
    assert _num_se(x_1.mean(), mu**2 + var, math.sqrt(x_var / n_eff)) < 5
