"""The Lotka-Volterra task of the Simformer paper: two species observed at arbitrary times."""

from typing import ClassVar

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .._custom_types import Array, ArrayLike, Float, Key
from ._base import AbstractTimeSeriesTask
from ._checks import check_noise_std
from ._distributions import LogitNormal
from ._time_series import default_times, read_channels, solve_ode


def _lotka_volterra_field(t, y, args):
    alpha, beta, gamma, delta = args
    prey, predator = y[0], y[1]
    return jnp.stack(
        [alpha * prey - beta * prey * predator, -gamma * predator + delta * prey * predator]
    )


class LotkaVolterra(AbstractTimeSeriesTask):
    """Lotka-Volterra predator-prey dynamics observed with noise at arbitrary times.

    As in the Simformer paper (Gloeckler et al., 2024, ICML; its task code is
    ``scoresbibm/tasks/unstructured_tasks.py`` in ``mackelab/simformer``):

    - ``theta = (alpha, beta, gamma, delta)``, shape ``(n, 4)``, each independently
      ``1 + 2 sigmoid(z)``, ``z ~ N(0, 1)`` (a :class:`LogitNormal` on ``(1, 3)``).
    - ``d prey / dt = alpha prey - beta prey predator``,
      ``d predator / dt = -gamma predator + delta prey predator``, from
      ``(prey, predator) = (1, 0.5)`` at ``t = 0``.
    - ``x[i, j, c]`` is species ``c`` (0: prey, 1: predator) at ``times[i, j, c]`` plus
      ``N(0, noise_std^2)`` noise, ``noise_std = 0.1``; ``x`` has shape ``(n, T, 2)``. (The
      reference code calls channel 0 "predator", but its equation is the prey's.)

    The paper's time window is ``[0, 15]``. Its training data are simulated on the grid
    ``linspace(0, 15, 150)`` (this task's default ``times``) and then read at ``T`` random times
    per species drawn uniformly on ``[0, 15]`` (:meth:`sample_times`; the paper uses ``T = 20``).
    Here the ODE is solved with diffrax (Tsit5, rtol = atol = 1e-6) and saved at the requested
    times exactly; the reference code instead interpolates an RK4 solution on the 150-point grid
    linearly, which differs by at most the interpolation error.
    """

    name: ClassVar[str] = "lotka_volterra"
    dim_theta: ClassVar[int] = 4
    num_channels: ClassVar[int] = 2
    t_end: ClassVar[float] = 15.0
    initial_state: ClassVar[tuple[float, float]] = (1.0, 0.5)

    prior: LogitNormal
    times: Float[Array, " num_times"]
    noise_std: float = eqx.field(static=True)

    def __init__(self, times: ArrayLike | None = None, noise_std: float = 0.1):
        """**Arguments:** `times`: the default observation times ``(T,)`` (non-negative, strictly
        increasing; default ``linspace(0, 15, 150)``). `noise_std`: the observation noise's
        standard deviation (``0`` gives the exact ODE solution)."""
        ones = np.ones(self.dim_theta, np.float32)
        self.prior = LogitNormal(ones, 3 * ones, 0 * ones, ones)
        self.times = default_times(times, np.linspace(0, self.t_end, 150, dtype=np.float32))
        self.noise_std = check_noise_std(noise_std)

    def _solve(self, theta: Float[Array, " 4"], save_ts: Float[Array, " k"]) -> Float[Array, "k 2"]:
        y0 = jnp.asarray(self.initial_state, theta.dtype)
        controller = diffrax.PIDController(rtol=1e-6, atol=1e-6)
        return solve_ode(_lotka_volterra_field, y0, theta, save_ts, self.t_end, controller)

    def _simulate(
        self, key: Key, theta: Float[Array, "n 4"], times: Float[Array, "n T 2"]
    ) -> Float[Array, "n T 2"]:
        """One noisy ``(prey, predator)`` series per row of ``theta``."""

        def one(theta_i, times_i):
            return read_channels(lambda ts: self._solve(theta_i, ts), times_i, (0, 1))

        clean = jax.vmap(one)(theta, times)
        return clean + self.noise_std * jr.normal(key, clean.shape, clean.dtype)
