"""The ``gaussian_linear`` benchmark task of sbibm, with its closed-form posterior."""

from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np

from .._custom_types import Array, Float, Key
from ._base import AbstractSBIBMTask
from ._checks import check_shape
from ._distributions import Normal


class GaussianLinear(AbstractSBIBMTask):
    """Gaussian linear: ``theta ~ N(0, 0.1 I)``, ``x | theta ~ N(theta, 0.1 I)``, as sbibm.

    Conjugate, so :meth:`true_posterior` gives the exact reference posterior.

    ``dim``: the width of both ``theta`` and ``x`` (sbibm uses 10). ``prior`` and ``noise``
    (zero-mean, added to ``theta`` by the simulator) are :class:`Normal`.
    """

    name: ClassVar[str] = "gaussian_linear"

    dim: int = eqx.field(static=True)
    prior: Normal
    noise: Normal

    def __init__(self, dim: int = 10):
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"`dim` must be an int >= 1, got {dim!r}.")
        self.dim = dim
        # NumPy constants: building them with jnp would compile a few kernels for every new dim.
        zeros = np.zeros(dim, np.float32)
        covariance = np.float32(0.1) * np.eye(dim, dtype=np.float32)
        self.prior = Normal(zeros, covariance)
        self.noise = Normal(zeros, covariance)

    @property
    def dim_theta(self) -> int:
        return self.dim

    @property
    def dim_x(self) -> int:
        return self.dim

    def _simulate(self, key: Key, theta: Float[Array, "n dim"]) -> Float[Array, "n dim"]:
        """One simulation ``x = theta + noise`` per row of ``theta``."""
        return theta + self.noise.sample(key, theta.shape[0]).astype(theta.dtype)

    @eqx.filter_jit
    def true_posterior(self, x_o: Float[Array, " dim_x"]) -> Normal:
        """The exact posterior ``p(theta | x_o)`` for one observation ``x_o`` of shape ``(dim,)``.

        With prior ``N(m, P)`` and noise ``N(c, L)``: precision ``P^-1 + L^-1``, mean
        ``cov @ (P^-1 m + L^-1 (x_o - c))``. For this task, ``cov = 0.05 I``, mean ``0.5 x_o``.
        """
        check_shape(x_o, "x_o", (self.dim,))
        eye = jnp.eye(self.dim, dtype=self.prior.loc.dtype)
        prior_precision = jsl.cho_solve((self.prior.cholesky, True), eye)
        noise_precision = jsl.cho_solve((self.noise.cholesky, True), eye)
        covariance = jnp.linalg.inv(prior_precision + noise_precision)
        # The inverse is symmetric only up to rounding; Cholesky assumes exact symmetry.
        covariance = 0.5 * (covariance + covariance.T)
        residual = x_o - self.noise.loc
        mean = covariance @ (prior_precision @ self.prior.loc + noise_precision @ residual)
        return Normal(mean, covariance)
