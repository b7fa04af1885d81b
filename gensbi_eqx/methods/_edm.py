"""EDM (Karras et al. 2022, "Elucidating the design space of diffusion-based generative
models"): a variance-exploding path with Karras' noise schedule, a preconditioned denoiser and
a log-normal distribution of training noise levels."""

from typing import ClassVar, Literal

import equinox as eqx
import jax
import jax.numpy as jnp

from .._custom_types import Array, ArrayLike, Flat, Float, Scalar, ScalarLike
from ._base import AbstractMethod
from ._times import AbstractTimes, LogNormalNoise


class EDM(AbstractMethod):
    """``y_t = x0 + sigma(t) eps`` with
    ``sigma(t) = (sigma_min^(1/rho) + t (sigma_max^(1/rho) - sigma_min^(1/rho)))^rho``, so that
    uniform steps in ``t`` are Karras' time discretisation.

    The network output ``F`` is preconditioned: it sees ``c_in y`` and ``c_noise``, and the
    denoiser is ``D = c_skip y + c_out F`` with

    - ``c_skip = sigma_data^2 / (sigma^2 + sigma_data^2)``,
    - ``c_out = sigma sigma_data / sqrt(sigma^2 + sigma_data^2)``,
    - ``c_in = 1 / sqrt(sigma^2 + sigma_data^2)``,
    - ``c_noise = log(sigma) / 4``.

    The training target is the ``F`` that makes ``D`` equal to ``x0``, i.e.
    ``(x0 - c_skip y) / c_out``. The shared unit-weight squared error on ``F`` is therefore
    ``lambda(sigma) |D - x0|^2`` with ``lambda = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2``,
    which is exactly EDM's loss weighting. Training noise levels are log-normal by default,
    ``log sigma ~ N(-1.2, 1.2^2)``, clipped to ``[sigma_min, sigma_max]``.

    **Arguments:**
    - `sigma_min`, `sigma_max`: noise levels at ``t = 0`` and ``t = 1``.
    - `sigma_data`: standard deviation of the data; 1 for standardised data.
    - `rho`: curvature of the schedule (``rho = 7`` spends more steps at small noise).
    - `times`: the training distribution of times (of ``log sigma``: `LogNormalNoise`).

    Sampled by default with Karras' Heun sampler (`gensbi_eqx.EDMSampler`); the generic
    reverse SDE and probability-flow ODE also apply.
    """

    sigma_min: float = eqx.field(static=True, default=0.002)
    sigma_max: float = eqx.field(static=True, default=80.0)
    sigma_data: float = eqx.field(static=True, default=1.0)
    rho: float = eqx.field(static=True, default=7.0)
    times: AbstractTimes = LogNormalNoise(-1.2, 1.2)
    t_min: ClassVar[float] = 0.0
    prediction: ClassVar[Literal["denoised"]] = "denoised"

    def __check_init__(self):
        if not 0 < self.sigma_min < self.sigma_max:
            raise ValueError(
                f"Need 0 < `sigma_min` < `sigma_max`, got {self.sigma_min} and {self.sigma_max}."
            )
        for name in ("sigma_data", "rho"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"`{name}` must be positive, got {value}.")

    # ------------------------------------------------------------------ the schedule

    def _root_range(self) -> tuple[float, float]:
        """``sigma^(1/rho)`` at ``t = 0`` and its increase up to ``t = 1``."""
        low = self.sigma_min ** (1 / self.rho)
        return low, self.sigma_max ** (1 / self.rho) - low

    def sigma(self, t: float | Float[ArrayLike, "*shape"]) -> Float[Array, "*shape"]:
        """Noise level at time ``t`` (elementwise)."""
        low, width = self._root_range()
        return (low + jnp.asarray(t, dtype=float) * width) ** self.rho

    def time_of_sigma(self, sigma: float | Float[ArrayLike, "*shape"]) -> Float[Array, "*shape"]:
        """The time at which the noise level is ``sigma`` (elementwise); inverse of ``sigma``."""
        low, width = self._root_range()
        return (jnp.asarray(sigma, dtype=float) ** (1 / self.rho) - low) / width

    def alpha_sigma(self, t: ScalarLike) -> tuple[Scalar, Scalar]:
        sigma = self.sigma(t)
        return jnp.ones_like(sigma), sigma

    def drift_diffusion(self, t: ScalarLike) -> tuple[Scalar, Scalar]:
        # f = 0 and g^2 = d sigma^2/dt = 2 rho width u^(2 rho - 1), u = sigma^(1/rho).
        low, width = self._root_range()
        u = low + jnp.asarray(t, dtype=float) * width
        return jnp.zeros_like(u), 2 * self.rho * width * u ** (2 * self.rho - 1)

    def time_of_log_ratio(self, log_ratio: Float[ArrayLike, "*shape"]) -> Float[Array, "*shape"]:
        # alpha = 1, so the ratio is sigma itself.
        sigma = jnp.clip(jnp.exp(jnp.asarray(log_ratio, dtype=float)), self.sigma_min, self.sigma_max)
        # Rounding in the power can step a hair outside [0, 1] at the clipped ends.
        return jnp.clip(self.time_of_sigma(sigma), 0.0, 1.0)

    def prior_std(self) -> Scalar:
        return jnp.sqrt(jnp.asarray(self.sigma_data**2 + self.sigma_max**2, dtype=float))

    # ------------------------------------------------------------------ preconditioning

    def preconditioning(self, t: ScalarLike) -> tuple[Scalar, Scalar, Scalar, Scalar]:
        """``(c_skip, c_out, c_in, c_noise)`` at time ``t``."""
        sigma = self.sigma(t)
        sd = self.sigma_data
        total = sigma**2 + sd**2
        c_in = jax.lax.rsqrt(total)
        return sd**2 / total, sigma * sd * c_in, c_in, jnp.log(sigma) / 4

    def input_scale(self, t: ScalarLike) -> Scalar:
        return self.preconditioning(t)[2]

    def noise_input(self, t: ScalarLike) -> Scalar:
        return self.preconditioning(t)[3]

    def target(self, x0: Flat, eps: Flat, t: ScalarLike) -> Flat:
        # (x0 - c_skip y) / c_out at y = x0 + sigma eps, simplified so that nothing cancels
        # at small sigma: c_in (sigma x0 / sigma_data - sigma_data eps).
        _, _, c_in, _ = self.preconditioning(t)
        sd = self.sigma_data
        return c_in * (self.sigma(t) * x0 / sd - sd * eps)

    def denoise(self, output: Flat, t: ScalarLike, y: Flat) -> tuple[Flat, Flat]:
        c_skip, c_out, c_in, _ = self.preconditioning(t)
        x0 = c_skip * y + c_out * output
        # (y - x0_hat) / sigma, simplified so that nothing cancels at small sigma.
        eps = c_in * (self.sigma(t) * c_in * y - self.sigma_data * output)
        return x0, eps
