"""The Lotka-Volterra task of the Simformer paper: two species observed at arbitrary times.

Also home to the helpers shared by the time-series tasks (``SIRD``): observation times in the
shapes ``(T,)``, ``(n, T)`` or ``(n, T, channels)``, drawn at random the way the paper draws them,
and an ODE solution read off at unsorted, per-channel times.
"""

import math
from typing import ClassVar

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .._custom_types import Array, ArrayLike, Float, Key
from ._distributions import _as_float_array, _check_last_axis, _concrete, jit_checking_counts


def _check_theta(theta: Array, dim_theta: int) -> None:
    if theta.ndim != 2 or theta.shape[1] != dim_theta:
        raise ValueError(f"`theta` must have shape (n, {dim_theta}), got shape {theta.shape}.")


def _check_noise_std(noise_std: float) -> float:
    if isinstance(noise_std, bool) or not isinstance(noise_std, (int, float)) or noise_std < 0:
        raise ValueError(f"`noise_std` must be a float >= 0, got {noise_std!r}.")
    return float(noise_std)


def _default_times(times: ArrayLike | None, default: np.ndarray) -> Float[Array, " num_times"]:
    """A task's default observation grid: ``(T,)``, non-negative and strictly increasing."""
    if times is None:
        return jnp.asarray(default)
    times = _as_float_array(times, "times", ndim=1)
    value = _concrete(times)
    if value is not None and (np.any(value < 0) or np.any(np.diff(value) <= 0)):
        raise ValueError(f"`times` must be non-negative and strictly increasing, got {value}.")
    return times


def _broadcast_times(
    times: Float[Array, "..."], n: int, num_channels: int, dtype
) -> Float[Array, "num_samples num_times num_channels"]:
    """``(T,)``, ``(n, T)`` or ``(n, T, C)`` observation times as ``(n, T, C)``."""
    shape = times.shape
    valid = (
        (times.ndim == 1 and shape[0] > 0)
        or (times.ndim == 2 and shape[0] == n and shape[1] > 0)
        or (times.ndim == 3 and shape[0] == n and shape[1] > 0 and shape[2] == num_channels)
    )
    if not valid:
        raise ValueError(
            f"`times` must have shape (T,), ({n}, T) or ({n}, T, {num_channels}) with T >= 1, "
            f"got shape {shape}."
        )
    times = times.astype(dtype)
    if times.ndim == 1:
        times = times[None, :]
    if times.ndim == 2:
        times = times[:, :, None]
    times = jnp.broadcast_to(times, (n, times.shape[1], num_channels))
    # diffrax cannot save before t0 = 0; a traced array can only be checked at run time.
    return eqx.error_if(times, jnp.any(times < 0), "`times` must be >= 0.")


def _sample_times(
    key: Key, n: int, num_times: int, num_channels: int, t_end: float
) -> Float[Array, "num_samples num_times num_channels"]:
    times = jr.uniform(key, (n, num_times, num_channels), jnp.float32, 0.0, t_end)
    return jnp.sort(times, axis=1)


def _read_channels(
    solve, times: Float[Array, "num_times num_channels"], states: tuple[int, ...]
) -> Float[Array, "num_times num_channels"]:
    """``out[j, c] = solve(ts)[at times[j, c], states[c]]`` for unsorted, per-channel times.

    ``solve`` maps sorted save times ``(k,)`` to states ``(k, num_states)``. All channels' times are
    solved in one pass (diffrax saves only at non-decreasing times), then put back in place.
    """
    flat = times.reshape(-1)
    order = jnp.argsort(flat)
    ys = solve(flat[order])
    ys = jnp.zeros_like(ys).at[order].set(ys)
    ys = ys.reshape(times.shape + ys.shape[-1:])
    return ys[:, jnp.arange(len(states)), jnp.asarray(states)]


class LogitNormal(eqx.Module):
    """``low + (high - low) * sigmoid(z)`` with ``z ~ N(loc, scale^2)``, independent per dimension.

    ``low``, ``high``, ``loc``, ``scale``: shape ``(dim,)``, ``low < high``, ``scale > 0``. The
    Simformer paper's Lotka-Volterra prior is ``low = 1``, ``high = 3``, ``loc = 0``, ``scale = 1``.
    """

    low: Float[Array, " dim"]
    high: Float[Array, " dim"]
    loc: Float[Array, " dim"]
    scale: Float[Array, " dim"]

    def __init__(self, low: ArrayLike, high: ArrayLike, loc: ArrayLike, scale: ArrayLike):
        arrays = {
            name: _as_float_array(value, name, ndim=1)
            for name, value in [("low", low), ("high", high), ("loc", loc), ("scale", scale)]
        }
        dim = arrays["low"].shape
        for name, array in arrays.items():
            if array.shape != dim:
                raise ValueError(
                    f"`{name}` must have the shape of `low`, {dim}, got shape {array.shape}."
                )
        low, high, scale = (_concrete(arrays[name]) for name in ("low", "high", "scale"))
        if low is not None and high is not None and not np.all(low < high):
            raise ValueError(
                f"`low` must be strictly less than `high` elementwise, got low={low} and "
                f"high={high}."
            )
        if scale is not None and not np.all(scale > 0):
            raise ValueError(f"`scale` must be positive, got {scale}.")
        self.low = arrays["low"]
        self.high = arrays["high"]
        self.loc = arrays["loc"]
        self.scale = arrays["scale"]

    @property
    def dim(self) -> int:
        return self.low.shape[0]

    @jit_checking_counts("n")
    def sample(self, key: Key, n: int) -> Float[Array, "num_samples dim"]:
        """``n`` independent draws, shape ``(n, dim)``, strictly inside ``(low, high)``."""
        z = self.loc + self.scale * jr.normal(key, (n, self.dim), self.low.dtype)
        return self.low + (self.high - self.low) * jax.nn.sigmoid(z)

    @eqx.filter_jit
    def log_prob(self, value: Float[Array, "*batch dim"]) -> Float[Array, "*batch"]:
        """Log-density at ``value`` (shape ``(*batch, dim)``); ``-inf`` outside ``(low, high)``."""
        _check_last_axis(value, self.dim)
        width = self.high - self.low
        u = (value - self.low) / width
        inside = jnp.all((u > 0) & (u < 1), axis=-1)
        # Any interior point keeps the logs finite where the answer is -inf anyway.
        u = jnp.where((u > 0) & (u < 1), u, 0.5)
        z = (jnp.log(u) - jnp.log1p(-u) - self.loc) / self.scale
        log_normal = -0.5 * z**2 - jnp.log(self.scale) - 0.5 * math.log(2 * math.pi)
        # value = low + width * sigmoid(logit(u)), so d value / d logit(u) = width u (1 - u).
        log_jacobian = jnp.log(width) + jnp.log(u) + jnp.log1p(-u)
        log_p = jnp.sum(log_normal - log_jacobian, axis=-1)
        return jnp.where(inside, log_p, -jnp.inf).astype(jnp.result_type(value, self.low))


def _lotka_volterra_field(t, y, args):
    alpha, beta, gamma, delta = args
    prey, predator = y[0], y[1]
    return jnp.stack(
        [alpha * prey - beta * prey * predator, -gamma * predator + delta * prey * predator]
    )


class LotkaVolterra(eqx.Module):
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
        self.times = _default_times(times, np.linspace(0, self.t_end, 150, dtype=np.float32))
        self.noise_std = _check_noise_std(noise_std)

    @property
    def num_times(self) -> int:
        return self.times.shape[0]

    @property
    def x_shape(self) -> tuple[int, int]:
        """The shape of one simulation at the default times: ``(T, 2)``."""
        return (self.num_times, self.num_channels)

    @jit_checking_counts("n", "num_times")
    def sample_times(
        self, key: Key, n: int, num_times: int = 20
    ) -> Float[Array, "num_samples num_times num_channels"]:
        """Random observation times as in the paper: ``(n, num_times, 2)``, uniform on
        ``[0, 15]``, independent per species and sorted along the time axis."""
        return _sample_times(key, n, num_times, self.num_channels, self.t_end)

    def _solve(self, theta: Float[Array, " 4"], save_ts: Float[Array, " k"]) -> Float[Array, "k 2"]:
        y0 = jnp.asarray(self.initial_state, theta.dtype)
        solution = diffrax.diffeqsolve(
            diffrax.ODETerm(_lotka_volterra_field),
            diffrax.Tsit5(),
            t0=0.0,
            # Past the last save time, so that t0 < t1 even when every time is 0.
            t1=jnp.maximum(save_ts[-1], self.t_end),
            dt0=None,
            y0=y0,
            args=theta,
            saveat=diffrax.SaveAt(ts=save_ts),
            stepsize_controller=diffrax.PIDController(rtol=1e-6, atol=1e-6),
        )
        return solution.ys

    @eqx.filter_jit
    def simulator(
        self,
        key: Key,
        theta: Float[Array, "num_samples dim_theta"],
        times: Float[Array, "..."] | None = None,
    ) -> Float[Array, "num_samples num_times num_channels"]:
        """One noisy series per row of ``theta`` (shape ``(n, 4)``); returns ``x``, ``(n, T, 2)``.

        ``times`` (default: the task's ``times``): ``(T,)`` shared by all examples, ``(n, T)``
        per example, or ``(n, T, 2)`` per example and species; any order, all ``>= 0``.
        """
        _check_theta(theta, self.dim_theta)
        n = theta.shape[0]
        times = _broadcast_times(self.times if times is None else times, n, 2, theta.dtype)

        def one(theta_i, times_i):
            return _read_channels(lambda ts: self._solve(theta_i, ts), times_i, (0, 1))

        clean = jax.vmap(one)(theta, times)
        return clean + self.noise_std * jr.normal(key, clean.shape, clean.dtype)

    @jit_checking_counts("n")
    def simulate(
        self, key: Key, n: int, times: Float[Array, "..."] | None = None
    ) -> tuple[
        Float[Array, "num_samples dim_theta"], Float[Array, "num_samples num_times num_channels"]
    ]:
        """``n`` joint draws: ``theta`` ``(n, 4)`` from the prior and ``x`` ``(n, T, 2)``."""
        key_theta, key_x = jr.split(key)
        theta = self.prior.sample(key_theta, n)
        return theta, self.simulator(key_x, theta, times)
