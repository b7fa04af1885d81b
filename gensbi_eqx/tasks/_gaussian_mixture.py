"""The ``gaussian_mixture`` benchmark task of sbibm (Lueckmann et al., 2021)."""

from typing import ClassVar

import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .._custom_types import Array, Float, Key
from ._base import AbstractSBIBMTask
from ._distributions import Uniform


class GaussianMixture(AbstractSBIBMTask):
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
        self.prior = Uniform(np.full(2, -10.0, np.float32), np.full(2, 10.0, np.float32))

    def _simulate(self, key: Key, theta: Float[Array, "n 2"]) -> Float[Array, "n 2"]:
        """One simulation per row of ``theta``."""
        n = theta.shape[0]
        key_component, key_noise = jr.split(key)
        # sbibm draws a single component index per row, so both coordinates share one scale:
        # x - theta is uncorrelated across coordinates but not independent.
        broad = jr.bernoulli(key_component, 0.5, (n, 1))
        scale = jnp.where(broad, 1.0, 0.1).astype(theta.dtype)
        return theta + scale * jr.normal(key_noise, theta.shape, theta.dtype)
