"""The SIRD task of the Simformer paper: an epidemic with a contact rate drawn from a GP."""

import math
from typing import ClassVar

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import jax.scipy.linalg as jsl
import numpy as np

from .._custom_types import Array, ArrayLike, Float, Key
from ._base import AbstractTimeSeriesTask
from ._checks import check_noise_std, check_shape, jit_checking_counts
from ._distributions import AbstractDistribution, Uniform
from ._time_series import broadcast_times, default_times, read_channels, solve_ode


_DEFAULT_GRID = np.linspace(0.0, 50.0, 100, dtype=np.float32)


class SIRDPrior(AbstractDistribution):
    """Prior of :class:`SIRD`: ``(gamma, delta, beta(t_1), ..., beta(t_K))``, shape ``(2 + K,)``.

    ``gamma``, ``delta`` ~ ``U(0, 0.5)``; ``beta = sigmoid(f)`` with ``f`` a zero-mean Gaussian
    process on the grid ``times`` (``(K,)``), kernel
    ``2.5^2 exp(-(t - t')^2 / (2 * 7^2)) + 1e-5 [t = t']``, as in the paper's code.

    The kernel is nearly singular on a fine grid (the jitter is only ``1e-5``), so its Cholesky
    factor is computed once in float64; :meth:`log_prob` in float32 is accurate to roughly
    ``1e-2`` on a 100-point grid.
    """

    length_scale: ClassVar[float] = 7.0
    amplitude: ClassVar[float] = 2.5
    jitter: ClassVar[float] = 1e-5

    rates: Uniform
    times: Float[Array, " num_times"]
    cholesky: Float[Array, "num_times num_times"]

    def __init__(self, times: ArrayLike | None = None):
        """**Arguments:** `times`: the grid ``(K,)``, non-negative and strictly increasing
        (default ``linspace(0, 50, 100)``)."""
        times = default_times(times, _DEFAULT_GRID)
        grid = np.asarray(times, np.float64)
        kernel = self.amplitude**2 * np.exp(
            -0.5 * (grid[:, None] - grid[None, :]) ** 2 / self.length_scale**2
        )
        kernel += self.jitter * np.eye(len(grid))
        self.rates = Uniform(np.zeros(2, np.float32), np.full(2, 0.5, np.float32))
        self.times = times
        self.cholesky = jnp.asarray(np.linalg.cholesky(kernel), times.dtype)

    @property
    def num_times(self) -> int:
        return self.times.shape[0]

    @property
    def dim(self) -> int:
        return 2 + self.num_times

    @property
    def support(self) -> tuple[Float[Array, " dim"], Float[Array, " dim"]]:
        """Rates in ``[0, 0.5]``, ``beta`` in ``(0, 1)``."""
        lower = jnp.zeros(self.dim, self.times.dtype)
        return lower, jnp.concatenate([self.rates.high, jnp.ones(self.num_times, self.times.dtype)])

    @jit_checking_counts("n")
    def sample(self, key: Key, n: int) -> Float[Array, "num_samples dim"]:
        """``n`` independent draws, shape ``(n, 2 + K)``."""
        key_rates, key_f = jr.split(key)
        rates = self.rates.sample(key_rates, n)
        f = jr.normal(key_f, (n, self.num_times), self.cholesky.dtype) @ self.cholesky.T
        return jnp.concatenate([rates, jax.nn.sigmoid(f)], axis=-1)

    @eqx.filter_jit
    def log_prob(self, value: Float[Array, "*batch dim"]) -> Float[Array, "*batch"]:
        """Log-density at ``value`` (shape ``(*batch, 2 + K)``); ``-inf`` outside the support."""
        check_shape(value, "value", ("*batch", self.dim))
        batch_shape = value.shape[:-1]
        value = value.reshape(-1, self.dim)
        beta = value[:, 2:]
        inside = jnp.all((beta > 0) & (beta < 1), axis=-1)
        # Any interior point keeps the logs finite where the answer is -inf anyway.
        beta = jnp.where((beta > 0) & (beta < 1), beta, 0.5)
        f = jnp.log(beta) - jnp.log1p(-beta)
        z = jsl.solve_triangular(self.cholesky, f.T, lower=True)
        log_gp = (
            -0.5 * jnp.sum(z**2, axis=0)
            - jnp.sum(jnp.log(jnp.diag(self.cholesky)))
            - 0.5 * self.num_times * math.log(2 * math.pi)
        )
        # beta = sigmoid(f): d beta / d f = beta (1 - beta).
        log_jacobian = jnp.sum(jnp.log(beta) + jnp.log1p(-beta), axis=-1)
        log_beta = jnp.where(inside, log_gp - log_jacobian, -jnp.inf)
        log_p = self.rates.log_prob(value[:, :2]) + log_beta
        return log_p.reshape(batch_shape).astype(jnp.result_type(value, self.cholesky))


def _sird_field(t, y, args):
    gamma, delta, beta_values, beta_times = args
    susceptible, infected = y[0], y[1]
    # beta is linear between its grid values and constant beyond them (np.interp's rule).
    infections = jnp.interp(t, beta_times, beta_values) * susceptible * infected
    return jnp.stack(
        [-infections, infections - (gamma + delta) * infected, gamma * infected, delta * infected]
    )


class SIRD(AbstractTimeSeriesTask):
    """An SIRD epidemic with a time-varying contact rate, observed with noise at arbitrary times.

    As in the Simformer paper (Gloeckler et al., 2024, ICML; its task code is
    ``scoresbibm/tasks/unstructured_tasks.py`` in ``mackelab/simformer``):

    - ``theta = (gamma, delta, beta(t_1), ..., beta(t_K))``, shape ``(n, 2 + K)``: recovery and
      death rates, then the contact rate on the grid ``times`` (``(K,)``, default
      ``linspace(0, 50, 100)``); prior :class:`SIRDPrior` (uniform rates, ``sigmoid`` of an RBF
      Gaussian process). Between grid points ``beta`` is linear, beyond them constant.
    - ``dS/dt = -beta S I``, ``dI/dt = beta S I - (gamma + delta) I``, ``dR/dt = gamma I``,
      ``dD/dt = delta I`` from ``(S, I, R, D) = (1, I0, 0, 0)``, where the initial infected
      fraction ``I0 ~ U(0, 0.2)`` is drawn anew per simulation and is not part of ``theta`` (so
      ``S + I + R + D = 1 + I0`` throughout, as in the paper's code).
    - ``x[i, j, c]`` is compartment ``c`` (0: ``I``, 1: ``R``, 2: ``D``) at ``times[i, j, c]``
      with multiplicative log-normal noise: ``exp(log(value + 1e-8) + noise_std * eps)``,
      ``noise_std = 0.05``; ``x`` has shape ``(n, T, 3)``, all positive.

    The paper's time window is ``[0, 50]``; its training data live on the 100-point grid and are
    read at ``T`` random times per compartment, uniform on ``[0, 50]`` (:meth:`sample_times`;
    the paper uses ``T = 20``). The paper's code also reads ``beta`` at random times; here
    ``theta`` holds ``beta`` on the fixed grid, and a caller who wants it elsewhere interpolates
    linearly, which is how the ODE sees it anyway. Here the ODE is solved with
    diffrax (Tsit5, rtol = 1e-6, atol = 1e-9, a step on every ``beta`` kink) and saved at the
    requested times exactly; the reference code interpolates an RK4 solution on the grid.
    """

    name: ClassVar[str] = "sird"
    num_channels: ClassVar[int] = 3
    t_end: ClassVar[float] = 50.0
    max_initial_infected: ClassVar[float] = 0.2

    prior: SIRDPrior
    noise_std: float = eqx.field(static=True)

    def __init__(self, times: ArrayLike | None = None, noise_std: float = 0.05):
        """**Arguments:** `times`: the grid ``(K,)`` of ``beta`` and the default observation times
        (non-negative, strictly increasing; default ``linspace(0, 50, 100)``). `noise_std`: the
        standard deviation of the log-space observation noise (``0``: noise-free)."""
        self.prior = SIRDPrior(times)
        self.noise_std = check_noise_std(noise_std)

    @property
    def times(self) -> Float[Array, " num_times"]:
        return self.prior.times

    @property
    def dim_theta(self) -> int:
        return 2 + self.num_times

    def _solve(
        self,
        theta: Float[Array, " dim_theta"],
        initial_infected: Float[Array, ""],
        save_ts: Float[Array, " k"],
    ) -> Float[Array, "k 4"]:
        dtype = theta.dtype
        one, zero = jnp.ones((), dtype), jnp.zeros((), dtype)
        y0 = jnp.stack([one, initial_infected, zero, zero])
        args = (theta[0], theta[1], theta[2:], self.times.astype(dtype))
        controller = diffrax.PIDController(rtol=1e-6, atol=1e-9, jump_ts=self.times)
        return solve_ode(_sird_field, y0, args, save_ts, self.t_end, controller)

    @eqx.filter_jit
    def compartments(
        self,
        theta: Float[Array, "num_samples dim_theta"],
        # Unchecked name, so a mismatch reaches the ValueError below.
        initial_infected: Float[Array, " _num_samples"],
        times: Float[Array, "..."] | None = None,
    ) -> Float[Array, "num_samples num_times 4"]:
        """The noise-free ``(S, I, R, D)`` at ``times`` (``(T,)`` or ``(n, T)``; default: the
        task's grid), shape ``(n, T, 4)``, given ``theta`` ``(n, 2 + K)`` and ``I0`` ``(n,)``."""
        self._check_theta(theta)
        n = theta.shape[0]
        check_shape(initial_infected, "initial_infected", (n,))
        times = self.times if times is None else times
        if times.ndim == 3:
            raise ValueError(f"`times` must have shape (T,) or ({n}, T), got shape {times.shape}.")
        times = broadcast_times(times, n, 1, theta.dtype)[:, :, 0]
        solve = jax.vmap(self._solve)
        return solve(theta, initial_infected.astype(theta.dtype), times)

    def _simulate(
        self, key: Key, theta: Float[Array, "n dim_theta"], times: Float[Array, "n T 3"]
    ) -> Float[Array, "n T 3"]:
        """One noisy ``(I, R, D)`` series per row of ``theta``."""
        n = theta.shape[0]
        key_initial, key_noise = jr.split(key)
        initial_infected = jr.uniform(
            key_initial, (n,), theta.dtype, 0.0, self.max_initial_infected
        )

        def one(theta_i, initial_i, times_i):
            return read_channels(
                lambda ts: self._solve(theta_i, initial_i, ts), times_i, (1, 2, 3)
            )

        clean = jax.vmap(one)(theta, initial_infected, times)
        # Solver error can leave a compartment a hair below 0; the log needs it non-negative.
        log_clean = jnp.log(jnp.maximum(clean, 0.0) + 1e-8)
        return jnp.exp(log_clean + self.noise_std * jr.normal(key_noise, clean.shape, clean.dtype))
