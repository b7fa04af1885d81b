"""The ``gaussian_mixture`` benchmark task of sbibm (Lueckmann et al., 2021)."""

from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .._custom_types import Array, Float, Key
from ._distributions import Uniform, jit_checking_counts
from ._references import Reference, load_reference


class GaussianMixture(eqx.Module):
    """Gaussian mixture: infer the common mean of a broad and a narrow Gaussian.

    Prior: ``theta ~ U(-10, 10)^2``. Simulator:
    ``x ~ 0.5 N(theta, I) + 0.5 N(theta, 0.01 I)``, exactly as sbibm's ``gaussian_mixture``:
    one component is drawn per simulation and used for both coordinates.
    """

    name: ClassVar[str] = "gaussian_mixture"
    dim_theta: ClassVar[int] = 2
    dim_x: ClassVar[int] = 2

    prior: Uniform

    def __init__(self):
        bound = np.float32(10.0)
        self.prior = Uniform(-bound * np.ones(2, np.float32), bound * np.ones(2, np.float32))

    @eqx.filter_jit
    def simulator(
        self, key: Key, theta: Float[Array, "num_samples dim_theta"]
    ) -> Float[Array, "num_samples dim_x"]:
        """One simulation per row of ``theta`` (shape ``(n, 2)``); returns ``x``, ``(n, 2)``."""
        if theta.ndim != 2 or theta.shape[1] != self.dim_theta:
            raise ValueError(
                f"`theta` must have shape (n, {self.dim_theta}), got shape {theta.shape}."
            )
        n = theta.shape[0]
        key_component, key_noise = jr.split(key)
        # sbibm draws a single component index per row, so both coordinates share one scale:
        # x - theta is uncorrelated across coordinates but not independent.
        broad = jr.bernoulli(key_component, 0.5, (n, 1))
        scale = jnp.where(broad, 1.0, 0.1).astype(theta.dtype)
        return theta + scale * jr.normal(key_noise, theta.shape, theta.dtype)

    @jit_checking_counts("n")
    def simulate(
        self, key: Key, n: int
    ) -> tuple[Float[Array, "num_samples dim_theta"], Float[Array, "num_samples dim_x"]]:
        """``n`` joint draws ``(theta, x)``: prior then simulator, each of shape ``(n, 2)``."""
        key_theta, key_x = jr.split(key)
        theta = self.prior.sample(key_theta, n)
        return theta, self.simulator(key_x, theta)

    def reference(self, num_observation: int) -> Reference:
        """sbibm's observation ``num_observation`` (1-10) with its reference posterior samples."""
        return load_reference(self.name, num_observation)
