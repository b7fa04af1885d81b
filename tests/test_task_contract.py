"""The contract every task keeps, checked for each task in ``gensbi_eqx.tasks.TASKS``.

One set of checks over a registry of implementations (as flowjax's bijection tests): joint
draws' shapes, dtypes, finiteness and reproducibility, prior draws inside the prior's support,
and clear errors for a bad ``n`` or ``theta``. Task-specific behaviour (closed forms,
references, MCMC) is tested in the task modules. Each task compiles ``simulate`` once, for
``N`` draws, in a module-scoped fixture; the ODE and SDE tasks dominate the time.
"""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from gensbi_eqx.data import Dependencies
from gensbi_eqx.tasks import (
    TASKS,
    AbstractDistribution,
    AbstractJointDensityTask,
    AbstractSBIBMTask,
    AbstractTask,
    AbstractTimeSeriesTask,
    LogitNormal,
    Normal,
    Uniform,
)
from gensbi_eqx.tasks._references import TASK_DIMS


N = 3


@pytest.fixture(scope="module", params=list(TASKS))
def case(request):
    """``(task, draws)``: a task built with its defaults and ``simulate(key(0), N)``."""
    task = TASKS[request.param]()
    return task, task.simulate(jr.key(0), N)


def test_registry_and_interfaces(case):
    task, _ = case
    cls = type(task)
    assert TASKS[task.name] is cls and isinstance(task, AbstractTask)
    # Abstract or final: a concrete task is never subclassed.
    assert cls.__subclasses__() == []
    assert isinstance(task.prior, AbstractDistribution) and task.prior.dim == task.dim_theta
    assert isinstance(task.dim_theta, int)
    assert isinstance(task.x_shape, tuple) and all(isinstance(d, int) for d in task.x_shape)
    if isinstance(task, AbstractSBIBMTask):
        assert TASK_DIMS[task.name] == (task.dim_theta, task.dim_x)
    if isinstance(task, (AbstractSBIBMTask, AbstractJointDensityTask)):
        assert task.x_shape == (task.dim_x,)
    if isinstance(task, AbstractJointDensityTask):
        assert isinstance(task.dependencies, Dependencies)
    if isinstance(task, AbstractTimeSeriesTask):
        assert task.x_shape == (task.times.shape[0], task.num_channels)


def test_simulate_shapes_dtypes_finite(case):
    task, (theta, x) = case
    assert isinstance(theta, jax.Array) and isinstance(x, jax.Array)
    assert theta.shape == (N, task.dim_theta) and x.shape == (N, *task.x_shape)
    assert theta.dtype == x.dtype == jnp.float32
    assert np.all(np.isfinite(theta)) and np.all(np.isfinite(x))


def test_simulate_reproducible(case):
    task, draws = case
    for left, right in zip(draws, task.simulate(jr.key(0), N)):
        np.testing.assert_array_equal(left, right)
    theta, x = task.simulate(jr.key(1), N)
    # Continuous draws never coincide; x may share some entries (spike counts), not all.
    assert not np.any(np.asarray(theta) == np.asarray(draws[0]))
    assert not np.array_equal(x, draws[1])


def test_prior_draws_in_support(case):
    task, (theta, _) = case
    assert np.all(np.isfinite(task.prior.log_prob(theta)))
    if isinstance(task.prior, (Uniform, LogitNormal)):
        low, high = np.asarray(task.prior.low), np.asarray(task.prior.high)
        assert np.all((theta >= low) & (theta <= high))


@pytest.mark.parametrize("n", [0, -2, True])
def test_simulate_bad_n(case, n):
    task, _ = case
    with pytest.raises(ValueError, match=rf"`n` must be a positive int, got {n!r}"):
        task.simulate(jr.key(0), n)


def test_simulator_bad_theta(case):
    task, _ = case
    dim = task.dim_theta
    match = rf"`theta` must have shape \(n, {dim}\), got shape \({N}, {dim + 1}\)\."
    with pytest.raises(ValueError, match=match):
        task.simulator(jr.key(0), jnp.zeros((N, dim + 1)))


class _Shift(AbstractTask):
    """A task written against the interface alone: ``x = theta + 1``."""

    name = "shift"
    dim_theta = 3
    x_shape = (3,)

    prior: Normal

    def _simulate(self, key, theta):
        return theta + 1.0


class _Ramp(AbstractTimeSeriesTask):
    """A time-series task written against the interface alone: ``x = theta * times``."""

    name = "ramp"
    dim_theta = 2
    num_channels = 2
    t_end = 1.0

    prior: Normal
    times: jax.Array

    def _simulate(self, key, theta, times):
        return theta[:, None, :] * times


def test_interface_is_enough_to_write_a_task():
    task = _Shift(Normal(np.zeros(3, np.float32), np.eye(3, dtype=np.float32)))
    theta, x = task.simulate(jr.key(0), 2)
    np.testing.assert_array_equal(theta, task.prior.sample(jr.split(jr.key(0))[0], 2))
    np.testing.assert_array_equal(x, theta + 1.0)
    # The base checks theta before the task's own simulator sees it.
    with pytest.raises(ValueError, match="theta"):
        task.simulator(jr.key(0), jnp.zeros((2, 4)))
    # Further arguments of simulate go to the simulator; the base broadcasts `times` to
    # (n, T, num_channels) whichever of its three shapes is given.
    ramp = _Ramp(Normal(np.zeros(2, np.float32), np.eye(2, dtype=np.float32)), jnp.arange(3.0))
    theta, x = ramp.simulate(jr.key(0), 2)
    np.testing.assert_allclose(x, theta[:, None, :] * jnp.arange(3.0)[None, :, None])
    times = jnp.asarray([[0.0, 2.0], [1.0, 3.0]])
    np.testing.assert_allclose(
        ramp.simulate(jr.key(0), 2, times)[1], theta[:, None, :] * times[:, :, None]
    )
    with pytest.raises(ValueError, match=r"`prior` must have dim 3 \(`dim_theta`\), got dim 2"):
        _Shift(Normal(np.zeros(2, np.float32), np.eye(2, dtype=np.float32)))
