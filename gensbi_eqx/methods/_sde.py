"""Score-based diffusion (Song et al. 2021): variance-exploding and variance-preserving SDEs,
trained by denoising score matching with the standard ``lambda(t) = sigma(t)^2`` weighting
(equivalently, the network predicts the noise ``eps`` with unit weight)."""

import math
from typing import ClassVar, Literal

import equinox as eqx
import jax.numpy as jnp

from .._custom_types import Array, ArrayLike, Float, Scalar, ScalarLike
from ._base import AbstractMethod
from ._times import AbstractTimes, UniformTimes


class VESDE(AbstractMethod):
    """Variance exploding: ``alpha = 1``, ``sigma(t) = sigma_min (sigma_max / sigma_min)^t``;
    training times from ``times``."""

    sigma_min: float = eqx.field(static=True, default=1e-4)
    sigma_max: float = eqx.field(static=True, default=15.0)
    times: AbstractTimes = UniformTimes()
    t_min: ClassVar[float] = 1e-5
    prediction: ClassVar[Literal["noise"]] = "noise"

    def __check_init__(self):
        if not 0 < self.sigma_min < self.sigma_max:
            raise ValueError(
                f"Need 0 < `sigma_min` < `sigma_max`, got {self.sigma_min} and {self.sigma_max}."
            )

    def alpha_sigma(self, t: ScalarLike) -> tuple[Scalar, Scalar]:
        t = jnp.asarray(t, dtype=float)
        return jnp.ones_like(t), self.sigma_min * (self.sigma_max / self.sigma_min) ** t

    def drift_diffusion(self, t: ScalarLike) -> tuple[Scalar, Scalar]:
        # The SDE's own definition, g^2 = d sigma^2 / dt; a test checks it against the path.
        _, sigma = self.alpha_sigma(t)
        return jnp.zeros_like(sigma), 2 * sigma**2 * math.log(self.sigma_max / self.sigma_min)

    def time_of_log_ratio(self, log_ratio: Float[ArrayLike, "*shape"]) -> Float[Array, "*shape"]:
        t = (jnp.asarray(log_ratio, dtype=float) - math.log(self.sigma_min)) / math.log(
            self.sigma_max / self.sigma_min
        )
        return jnp.clip(t, self.t_min, 1.0)


class VPSDE(AbstractMethod):
    """Variance preserving: ``dy = -beta(t)/2 y dt + sqrt(beta(t)) dW`` with ``beta`` linear
    from ``beta_min`` to ``beta_max``; ``sigma^2 = 1 - alpha^2``."""

    beta_min: float = eqx.field(static=True, default=0.01)
    beta_max: float = eqx.field(static=True, default=10.0)
    times: AbstractTimes = UniformTimes()
    t_min: ClassVar[float] = 1e-5
    prediction: ClassVar[Literal["noise"]] = "noise"

    def __check_init__(self):
        if not 0 <= self.beta_min < self.beta_max:
            raise ValueError(
                f"Need 0 <= `beta_min` < `beta_max`, got {self.beta_min} and {self.beta_max}."
            )

    def alpha_sigma(self, t: ScalarLike) -> tuple[Scalar, Scalar]:
        t = jnp.asarray(t, dtype=float)
        log_alpha = -0.5 * (self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t**2)
        # -expm1(2 log alpha) = 1 - alpha^2 without cancellation at small t.
        return jnp.exp(log_alpha), jnp.sqrt(-jnp.expm1(2 * log_alpha))

    def drift_diffusion(self, t: ScalarLike) -> tuple[Scalar, Scalar]:
        t = jnp.asarray(t, dtype=float)
        beta = self.beta_min + t * (self.beta_max - self.beta_min)
        return -0.5 * beta, beta
