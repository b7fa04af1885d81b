"""The interfaces the benchmark tasks implement.

``AbstractTask`` is what every task has: a prior, a simulator and joint draws from both. Three
abstract subclasses add what a family of tasks shares: sbibm's reference posteriors
(``AbstractSBIBMTask``), an exact joint density for MCMC references (``AbstractJointDensityTask``)
and observation times of the caller's choosing (``AbstractTimeSeriesTask``). Concrete tasks
subclass one of them and are final.
"""

import abc
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr

from .._custom_types import Array, Float, Key
from ..data import Dependencies
from ._checks import check_shape, jit_checking_counts
from ._distributions import AbstractDistribution
from ._references import TASK_DIMS, Reference, load_reference
from ._time_series import broadcast_times


class AbstractTask(eqx.Module):
    """A simulation-based inference problem: a prior over parameters ``theta`` and a simulator of
    data ``x`` given ``theta``.

    - ``name``: the task's name (for the sbibm tasks, sbibm's).
    - ``prior``: an [`AbstractDistribution`][gensbi_eqx.tasks.AbstractDistribution] of
      dimension ``dim_theta`` (checked at construction).
    - ``x_shape``: the shape of one simulation, so ``x`` is ``(n, *x_shape)``.
    - ``simulator(key, theta)``: one simulation per row of ``theta`` ``(n, dim_theta)``. It checks
      ``theta`` and calls ``_simulate(key, theta)``, the one method a subclass writes.

    ``simulate(key, n)`` draws from the joint: ``theta`` from the prior, then ``x`` from the
    simulator. Everything is ``eqx.filter_jit``-compiled; the same key gives the same draws.
    """

    name: eqx.AbstractClassVar[str]
    prior: eqx.AbstractVar[AbstractDistribution]
    dim_theta: eqx.AbstractVar[int]
    x_shape: eqx.AbstractVar[tuple[int, ...]]

    def __check_init__(self):
        if self.prior.dim != self.dim_theta:
            raise ValueError(
                f"`prior` must have dim {self.dim_theta} (`dim_theta`), got dim {self.prior.dim}."
            )

    @eqx.filter_jit
    def simulator(
        self, key: Key, theta: Float[Array, "num_samples dim_theta"]
    ) -> Float[Array, "num_samples *x_shape"]:
        """One simulation per row of ``theta`` ``(n, dim_theta)``; returns ``x``,
        ``(n, *x_shape)``. A ``theta`` of another shape raises a ValueError."""
        self._check_theta(theta)
        return self._simulate(key, theta)

    @abc.abstractmethod
    def _simulate(
        self, key: Key, theta: Float[Array, "num_samples dim_theta"]
    ) -> Float[Array, "num_samples *x_shape"]:
        """The simulator proper, on a ``theta`` already checked."""

    @jit_checking_counts("n")
    def simulate(
        self, key: Key, n: int, *args: Any, **kwargs: Any
    ) -> tuple[Float[Array, "num_samples dim_theta"], Float[Array, "num_samples *x_shape"]]:
        """``n`` joint draws ``(theta, x)``: ``theta`` ``(n, dim_theta)`` from the prior, then
        ``x`` ``(n, *x_shape)`` from the simulator. Further arguments go to the simulator (the
        time-series tasks take ``times``). ``n`` must be a positive int."""
        key_theta, key_x = jr.split(key)
        theta = self.prior.sample(key_theta, n)
        return theta, self.simulator(key_x, theta, *args, **kwargs)

    def _check_theta(self, theta: Array) -> None:
        check_shape(theta, "theta", ("n", self.dim_theta))


class AbstractSBIBMTask(AbstractTask):
    """A task of sbibm (Lueckmann et al., 2021, *Benchmarking Simulation-Based Inference*) that
    carries sbibm's name, and with it sbibm's ten reference problems: ``reference(i)``.

    ``x`` is a vector: ``x_shape`` is ``(dim_x,)``.
    """

    dim_x: eqx.AbstractVar[int]

    @property
    def x_shape(self) -> tuple[int]:
        return (self.dim_x,)

    def reference(self, num_observation: int) -> Reference:
        """sbibm's observation ``num_observation`` (1-10) with its reference posterior samples.

        sbibm publishes references for its own dimensions only (``GaussianLinear``: ``dim`` =
        10); a task of other dimensions raises a ValueError. The first call downloads sbibm's
        wheel (see [`load_reference`][gensbi_eqx.tasks.load_reference]).
        """
        dims = TASK_DIMS.get(self.name)
        if dims is not None and (self.dim_theta, self.dim_x) != dims:
            raise ValueError(
                f"sbibm's references for {self.name!r} have dim_theta = {dims[0]} and dim_x = "
                f"{dims[1]}; this task has dim_theta = {self.dim_theta} and dim_x = {self.dim_x}."
            )
        return load_reference(self.name, num_observation)


class AbstractJointDensityTask(AbstractTask):
    """A task with an exact joint density ``log p(theta, x)`` and the dependency graph it
    factorises along: what [`conditional_reference`][gensbi_eqx.tasks.conditional_reference]
    needs to draw MCMC references for any conditional of ``[theta, x]``.

    ``x`` is a vector: ``x_shape`` is ``(dim_x,)``. ``dependencies`` is the graph over the nodes
    ``"theta"`` (``dim_theta`` scalars) and ``"x"`` (``dim_x``). Subclasses give
    ``log_likelihood``; ``log_joint`` adds the prior's log-density.
    """

    dim_x: eqx.AbstractVar[int]
    dependencies: eqx.AbstractVar[Dependencies]

    @property
    def x_shape(self) -> tuple[int]:
        return (self.dim_x,)

    @abc.abstractmethod
    def log_likelihood(
        self, theta: Float[Array, "*batch dim_theta"], x: Float[Array, "*batch dim_x"]
    ) -> Float[Array, "*batch"]:
        """Exact ``log p(x | theta)`` for ``theta`` ``(*batch, dim_theta)`` and ``x``
        ``(*batch, dim_x)``."""

    @eqx.filter_jit
    def log_joint(
        self, theta: Float[Array, "*batch dim_theta"], x: Float[Array, "*batch dim_x"]
    ) -> Float[Array, "*batch"]:
        """Exact ``log p(theta, x)`` for ``theta`` ``(*batch, dim_theta)`` and ``x``
        ``(*batch, dim_x)``: the prior's log-density plus ``log_likelihood``."""
        self._check_pair(theta, x)
        return self.prior.log_prob(theta) + self.log_likelihood(theta, x)

    def _check_pair(self, theta: Array, x: Array) -> None:
        check_shape(theta, "theta", ("*batch", self.dim_theta))
        check_shape(x, "x", ("*batch", self.dim_x))
        if theta.shape[:-1] != x.shape[:-1]:
            raise ValueError(
                f"`theta` and `x` must share their batch shape, got {theta.shape[:-1]} and "
                f"{x.shape[:-1]}."
            )


class AbstractTimeSeriesTask(AbstractTask):
    """A task whose ``x`` is a noisy series of ``num_channels`` channels on ``[0, t_end]``, read
    at times of the caller's choosing (the Simformer paper's ``LotkaVolterra`` and ``SIRD``).

    ``times`` ``(T,)`` is the default grid, so ``x_shape`` is ``(T, num_channels)``.
    ``simulator(key, theta, times)`` also takes times ``(T,)`` shared by all examples, ``(n, T)``
    per example or ``(n, T, num_channels)`` per example and channel, in any order and all
    ``>= 0``; ``sample_times`` draws them as the paper does.
    """

    num_channels: eqx.AbstractClassVar[int]
    t_end: eqx.AbstractClassVar[float]
    times: eqx.AbstractVar[Float[Array, " num_times"]]

    @property
    def num_times(self) -> int:
        return self.times.shape[0]

    @property
    def x_shape(self) -> tuple[int, int]:
        """The shape of one simulation at the default times: ``(T, num_channels)``."""
        return (self.num_times, self.num_channels)

    @eqx.filter_jit
    def simulator(
        self,
        key: Key,
        theta: Float[Array, "num_samples dim_theta"],
        times: Float[Array, "..."] | None = None,
    ) -> Float[Array, "num_samples num_times num_channels"]:
        """One noisy series per row of ``theta`` ``(n, dim_theta)`` at ``times`` (default: the
        task's ``times``; ``(T,)`` shared by all examples, ``(n, T)`` per example, or
        ``(n, T, num_channels)`` per example and channel; any order, all ``>= 0``); returns
        ``x``, ``(n, T, num_channels)``."""
        self._check_theta(theta)
        times = broadcast_times(
            self.times if times is None else times, theta.shape[0], self.num_channels, theta.dtype
        )
        return self._simulate(key, theta, times)

    @abc.abstractmethod
    def _simulate(
        self,
        key: Key,
        theta: Float[Array, "num_samples dim_theta"],
        times: Float[Array, "num_samples num_times num_channels"],
    ) -> Float[Array, "num_samples num_times num_channels"]:
        """The simulator proper, on a ``theta`` already checked and ``times`` per example and
        channel."""

    @jit_checking_counts("n", "num_times")
    def sample_times(
        self, key: Key, n: int, num_times: int = 20
    ) -> Float[Array, "num_samples num_times num_channels"]:
        """Random observation times as in the Simformer paper: ``(n, num_times, num_channels)``,
        uniform on ``[0, t_end]``, independent per channel and sorted along the time axis (the
        paper uses ``num_times = 20``)."""
        times = jr.uniform(key, (n, num_times, self.num_channels), jnp.float32, 0.0, self.t_end)
        return jnp.sort(times, axis=1)
