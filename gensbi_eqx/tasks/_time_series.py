"""Observation times for the time-series tasks (``LotkaVolterra``, ``SIRD``): a default grid,
times in the shapes ``(T,)``, ``(n, T)`` or ``(n, T, channels)``, and an ODE solved from ``t = 0``
and read off at unsorted, per-channel times.
"""

from collections.abc import Callable

import diffrax
import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array, ArrayLike, Float
from ._distributions import _as_float_array, _concrete


def default_times(times: ArrayLike | None, default: np.ndarray) -> Float[Array, " num_times"]:
    """A task's default observation grid: ``(T,)``, non-negative and strictly increasing."""
    if times is None:
        return jnp.asarray(default)
    times = _as_float_array(times, "times", ndim=1)
    value = _concrete(times)
    if value is not None and (np.any(value < 0) or np.any(np.diff(value) <= 0)):
        raise ValueError(f"`times` must be non-negative and strictly increasing, got {value}.")
    return times


def broadcast_times(
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


def read_channels(
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


def solve_ode(
    field: Callable,
    y0: Float[Array, " num_states"],
    args: object,
    save_ts: Float[Array, " k"],
    t_end: float,
    stepsize_controller: diffrax.AbstractStepSizeController,
) -> Float[Array, "k num_states"]:
    """The solution of ``dy/dt = field(t, y, args)`` from ``y(0) = y0`` (diffrax's Tsit5) at the
    sorted times ``save_ts``, ``(k, num_states)``."""
    solution = diffrax.diffeqsolve(
        diffrax.ODETerm(field),
        diffrax.Tsit5(),
        t0=0.0,
        # Past the last save time, so that t0 < t1 even when every time is 0.
        t1=jnp.maximum(save_ts[-1], t_end),
        dt0=None,
        y0=y0,
        args=args,
        saveat=diffrax.SaveAt(ts=save_ts),
        stepsize_controller=stepsize_controller,
    )
    return solution.ys
