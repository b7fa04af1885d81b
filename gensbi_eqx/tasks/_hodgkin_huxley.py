"""The Hodgkin-Huxley task of the Simformer paper: a noisy neuron summarised by 8 features."""

from typing import ClassVar

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .._custom_types import Array, Float, Key
from ._base import AbstractTask
from ._checks import check_noise_std
from ._distributions import Uniform


_V_SHIFT = -65.0  # mV; the rate functions are written relative to it, as in the paper's code.


def _x_over_expm1(x: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
    """``x / (exp(x) - 1)``, continued by its series ``1 - x / 2`` near the removable ``x = 0``."""
    small = jnp.abs(x) < 1e-4
    safe = jnp.where(small, 1.0, x)
    return jnp.where(small, 1 - x / 2, safe / jnp.expm1(safe))


def _rates(voltage):
    """Opening and closing rates ``(alpha, beta)`` (1/ms) of the gates m, h, n at ``voltage``."""
    u = voltage - _V_SHIFT
    alpha_m = 1.28 * _x_over_expm1((13 - u) / 4)  # = 0.32 (13 - u) / (exp((13 - u) / 4) - 1)
    beta_m = 1.4 * _x_over_expm1((u - 40) / 5)  # = 0.28 (u - 40) / (exp((u - 40) / 5) - 1)
    alpha_h = 0.128 * jnp.exp((17 - u) / 18)
    beta_h = 4 / (1 + jnp.exp((40 - u) / 5))
    alpha_n = 0.16 * _x_over_expm1((15 - u) / 5)  # = 0.032 (15 - u) / (exp((15 - u) / 5) - 1)
    beta_n = 0.5 * jnp.exp((10 - u) / 40)
    return (alpha_m, beta_m), (alpha_h, beta_h), (alpha_n, beta_n)


def _hodgkin_huxley_drift(t, y, args):
    theta, _, current_window, current = args
    capacitance, g_na, g_k, g_leak, e_na, e_k, e_leak = theta
    voltage, m, h, n, _ = y
    (alpha_m, beta_m), (alpha_h, beta_h), (alpha_n, beta_n) = _rates(voltage)
    i_na = g_na * m**3 * h * (voltage - e_na)
    i_k = g_k * n**4 * (voltage - e_k)
    i_leak = g_leak * (voltage - e_leak)
    i_input = jnp.where((t >= current_window[0]) & (t < current_window[1]), current, 0.0)
    return jnp.stack(
        [
            (i_input - i_na - i_k - i_leak) / capacitance,
            alpha_m * (1 - m) - beta_m * m,
            alpha_h * (1 - h) - beta_h * h,
            alpha_n * (1 - n) - beta_n * n,
            i_na,
        ]
    )


def _hodgkin_huxley_diffusion(t, y, args):
    # One Brownian motion, driving the voltage only.
    noise_std = args[1]
    return jnp.zeros_like(y).at[0].set(noise_std)


class HodgkinHuxley(AbstractTask):
    """A single-compartment Hodgkin-Huxley neuron with voltage noise under a current step.

    As in the Simformer paper (Gloeckler et al., 2024, ICML; its task code is
    ``scoresbibm/tasks/hhtask.py`` in ``mackelab/simformer``):

    - ``theta = (C_m, gbar_Na, gbar_K, g_leak, E_Na, E_K, E_leak)``, shape ``(n, 7)``, uniform on
      ``[1, 2] x [60, 120] x [10, 30] x [0.1, 0.5] x [40, 70] x [-100, -60] x [-90, -60]``
      (uF/cm^2, mS/cm^2, mV).
    - ``dV = (I(t) - gbar_Na m^3 h (V - E_Na) - gbar_K n^4 (V - E_K) - g_leak (V - E_leak)) / C_m
      dt + 0.05 dW`` (mV, ms); ``I = 4 uA/cm^2`` for ``50 <= t < 150``, else 0; Traub-Miles gate
      kinetics shifted to ``V_T = -65`` mV; ``V(0) = -65`` mV with the gates at their steady
      state there; ``t`` in ``[0, 200]`` ms.
    - ``x``, shape ``(n, 8)``, from the voltage on ``linspace(0, 200, 5000)``: spike count;
      mean and standard deviation of ``V`` before the step (``t < 50``); mean, variance,
      skewness and (non-excess) kurtosis of ``V`` during it (``50 < t < 150``); and the
      "energy" feature, the sodium charge ``int_0^200 i_Na dt`` (nC/cm^2, negative as the
      sodium current is inward).

    Deviations from the reference code, each on purpose: (1) the gates start at their own
    steady states (the reference swaps the initial ``m`` and ``n``); (2) ``x / (exp(x) - 1)`` uses
    its series only for ``|x| < 1e-4`` (the reference uses it for every ``x < 1e-4``, which
    distorts the rates at negative arguments); (3) the SDE is integrated with diffrax's Heun
    method at half the output spacing (the reference: Euler-Maruyama at the output spacing,
    whose error in spike peaks is several mV); (4) a spike is an upward crossing of -10 mV (the
    reference thresholds one-step voltage jumps of 5 mV, which depends on the step size);
    (5) ``V`` is neither clipped nor cleaned of NaNs.

    Every simulation checked over the prior box (random draws in ``tests/test_task_contract.py``,
    all 128 corners in ``tests/test_simulator_tasks.py``) is finite. Parameters outside the box
    (e.g. ``C_m <= 0``) can give non-finite ``x``, which is returned as is (``fit`` refuses such
    rows and counts them).
    """

    name: ClassVar[str] = "hodgkin_huxley"
    dim_theta: ClassVar[int] = 7
    dim_x: ClassVar[int] = 8
    x_shape: ClassVar[tuple[int]] = (dim_x,)
    t_end: ClassVar[float] = 200.0
    num_steps: ClassVar[int] = 5000
    substeps: ClassVar[int] = 2
    current: ClassVar[float] = 4.0
    current_window: ClassVar[tuple[float, float]] = (50.0, 150.0)
    initial_voltage: ClassVar[float] = _V_SHIFT
    spike_threshold: ClassVar[float] = -10.0

    prior: Uniform
    noise_std: float = eqx.field(static=True)

    def __init__(self, noise_std: float = 0.05):
        """**Arguments:** `noise_std`: the voltage noise in mV per sqrt(ms) (``0``: an ODE)."""
        self.prior = Uniform(
            np.array([1.0, 60.0, 10.0, 0.1, 40.0, -100.0, -90.0], np.float32),
            np.array([2.0, 120.0, 30.0, 0.5, 70.0, -60.0, -60.0], np.float32),
        )
        self.noise_std = check_noise_std(noise_std)

    @property
    def times(self) -> np.ndarray:
        """The output grid ``(5000,)`` in ms, on which the voltage is summarised."""
        return np.linspace(0.0, self.t_end, self.num_steps, dtype=np.float32)

    def _trace(self, key: Key, theta: Float[Array, " 7"]) -> Float[Array, "5000 2"]:
        dtype = theta.dtype
        voltage = jnp.asarray(self.initial_voltage, dtype)
        gates = [alpha / (alpha + beta) for alpha, beta in _rates(voltage)]
        y0 = jnp.stack([voltage, *gates, jnp.zeros((), dtype)])
        num_fine = (self.num_steps - 1) * self.substeps
        brownian = diffrax.UnsafeBrownianPath(shape=(), key=key)
        terms = diffrax.MultiTerm(
            diffrax.ODETerm(_hodgkin_huxley_drift),
            diffrax.ControlTerm(_hodgkin_huxley_diffusion, brownian),
        )
        args = (
            theta,
            jnp.asarray(self.noise_std, dtype),
            jnp.asarray(self.current_window, dtype),
            jnp.asarray(self.current, dtype),
        )
        solution = diffrax.diffeqsolve(
            terms,
            diffrax.Heun(),
            t0=0.0,
            t1=self.t_end,
            dt0=None,
            y0=y0,
            args=args,
            saveat=diffrax.SaveAt(steps=True),
            stepsize_controller=diffrax.StepTo(
                ts=np.linspace(0.0, self.t_end, num_fine + 1, dtype=np.float32)
            ),
            max_steps=num_fine,
            # UnsafeBrownianPath is not differentiable by reverse mode; nothing is differentiated.
            adjoint=diffrax.ForwardMode(),
        )
        ys = jnp.concatenate([y0[None], solution.ys])[:: self.substeps]
        return ys[:, jnp.array([0, 4])]

    @eqx.filter_jit
    def traces(
        self, key: Key, theta: Float[Array, "num_samples dim_theta"]
    ) -> Float[Array, "num_samples 5000 2"]:
        """Voltage (mV) and cumulative sodium charge (nC/cm^2) on :attr:`times`, per row of
        ``theta`` (``(n, 7)``): ``(n, 5000, 2)``. The same key gives the traces behind
        :meth:`simulator`'s features."""
        self._check_theta(theta)
        keys = jr.split(key, theta.shape[0])
        return jax.vmap(self._trace)(keys, theta)

    def _features(self, trace: Float[Array, "5000 2"]) -> Float[Array, " 8"]:
        voltage, charge = trace[:, 0], trace[:, 1]
        times = self.times
        start, stop = self.current_window
        rest = voltage[: int(np.sum(times < start))]
        stimulus = voltage[int(np.sum(times <= start)) : int(np.sum(times < stop))]
        above = voltage >= self.spike_threshold
        spikes = jnp.sum(above[1:] & ~above[:-1])
        centred = stimulus - jnp.mean(stimulus)
        variance = jnp.mean(centred**2)
        skewness = jnp.mean(centred**3) / variance**1.5
        kurtosis = jnp.mean(centred**4) / variance**2
        return jnp.stack(
            [
                spikes.astype(voltage.dtype),
                jnp.mean(rest),
                jnp.std(rest),
                jnp.mean(stimulus),
                variance,
                skewness,
                kurtosis,
                charge[-1],
            ]
        )

    def _simulate(self, key: Key, theta: Float[Array, "n 7"]) -> Float[Array, "n 8"]:
        """The eight summary features of one simulated trace per row of ``theta``."""
        return jax.vmap(self._features)(self.traces(key, theta))
