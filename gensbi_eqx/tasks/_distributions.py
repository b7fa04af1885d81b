"""Small distributions for benchmark priors and closed-form posteriors.

Just enough to draw samples and score them; they are Modules, so they can be passed through
``eqx.filter_jit`` and stored inside a task.

Methods here and in the tasks are ``eqx.filter_jit``-compiled: they are mostly called at top
level, where eager JAX would compile every small op separately for each new shape.
"""

import abc
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import jax.scipy.linalg as jsl
import numpy as np

from .._custom_types import Array, ArrayLike, Float, Key
from ._checks import check_shape, jit_checking_counts


def _concrete(x: Array) -> np.ndarray | None:
    """The value of ``x`` if it is known now, ``None`` if it is a tracer.

    Value checks (``low < high``, positive definiteness) can only run on concrete arrays; a
    distribution built inside ``jit`` skips them rather than failing to trace.
    """
    try:
        return np.asarray(x)
    except jax.errors.TracerArrayConversionError:
        return None


def _as_float_array(value: ArrayLike, name: str, ndim: int) -> Float[Array, "..."]:
    array = jnp.asarray(value)
    if array.ndim != ndim:
        expected = {1: "(dim,)", 2: "(dim, dim)"}[ndim]
        raise ValueError(f"`{name}` must have shape {expected}, got shape {array.shape}.")
    if array.shape[0] == 0:
        raise ValueError(f"`{name}` must have a non-empty shape, got shape {array.shape}.")
    if not jnp.issubdtype(array.dtype, jnp.floating):
        # Integer or bool inputs would make samples and log-densities integer-typed.
        array = array.astype(jnp.result_type(float))
    return array


class AbstractDistribution(eqx.Module):
    """A distribution over vectors of length ``dim``, as a task's prior needs: draws and a
    log-density. Concrete distributions are final."""

    dim: eqx.AbstractVar[int]

    @abc.abstractmethod
    def sample(self, key: Key, n: int) -> Float[Array, "num_samples dim"]:
        """``n`` independent draws, shape ``(n, dim)``."""

    @abc.abstractmethod
    def log_prob(self, value: Float[Array, "*batch dim"]) -> Float[Array, "*batch"]:
        """Log-density at ``value`` (shape ``(*batch, dim)``); ``-inf`` outside the support."""

    @property
    @abc.abstractmethod
    def support(self) -> tuple[Float[Array, " dim"], Float[Array, " dim"]]:
        """``(lower, upper)`` per dimension, infinite where unbounded: what
        ``gs.Node(bounds=prior.support)`` declares to `fit`."""


class Uniform(AbstractDistribution):
    """Uniform on the box ``[low, high]``, independent per dimension.

    ``low``, ``high``: shape ``(dim,)`` with ``low < high`` elementwise.
    """

    low: Float[Array, " dim"]
    high: Float[Array, " dim"]

    def __init__(self, low: ArrayLike, high: ArrayLike):
        low = _as_float_array(low, "low", ndim=1)
        high = _as_float_array(high, "high", ndim=1)
        if high.shape != low.shape:
            raise ValueError(
                f"`high` must have the shape of `low`, {low.shape}, got shape {high.shape}."
            )
        low_value, high_value = _concrete(low), _concrete(high)
        if low_value is not None and high_value is not None:
            if not np.all(low_value < high_value):
                raise ValueError(
                    f"`low` must be strictly less than `high` elementwise, got low={low_value} "
                    f"and high={high_value}."
                )
        self.low = low
        self.high = high

    @property
    def dim(self) -> int:
        return self.low.shape[0]

    @property
    def mean(self) -> Float[Array, " dim"]:
        return 0.5 * (self.low + self.high)

    @property
    def support(self) -> tuple[Float[Array, " dim"], Float[Array, " dim"]]:
        return self.low, self.high

    @jit_checking_counts("n")
    def sample(self, key: Key, n: int) -> Float[Array, "num_samples dim"]:
        """``n`` independent draws, shape ``(n, dim)``."""
        return jr.uniform(key, (n, self.dim), self.low.dtype, self.low, self.high)

    @eqx.filter_jit
    def log_prob(self, value: Float[Array, "*batch dim"]) -> Float[Array, "*batch"]:
        """Log-density at ``value`` (shape ``(*batch, dim)``); ``-inf`` outside the box."""
        check_shape(value, "value", ("*batch", self.dim))
        inside = jnp.all((value >= self.low) & (value <= self.high), axis=-1)
        log_volume = jnp.sum(jnp.log(self.high - self.low))
        return jnp.where(inside, -log_volume, -jnp.inf).astype(jnp.result_type(value, self.low))


class Normal(AbstractDistribution):
    """Multivariate normal ``N(loc, covariance)``.

    ``loc``: shape ``(dim,)``; ``covariance``: shape ``(dim, dim)``, symmetric positive definite.
    The lower Cholesky factor is computed once here so sampling and scoring never refactorise.
    """

    loc: Float[Array, " dim"]
    covariance: Float[Array, "dim dim"]
    cholesky: Float[Array, "dim dim"]

    def __init__(self, loc: ArrayLike, covariance: ArrayLike):
        loc = _as_float_array(loc, "loc", ndim=1)
        covariance = _as_float_array(covariance, "covariance", ndim=2)
        dim = loc.shape[0]
        if covariance.shape != (dim, dim):
            raise ValueError(
                f"`covariance` must have shape ({dim}, {dim}) to match `loc`, got shape "
                f"{covariance.shape}."
            )
        dtype = jnp.result_type(loc, covariance)
        loc, covariance = loc.astype(dtype), covariance.astype(dtype)
        cholesky = jnp.linalg.cholesky(covariance)
        cov_value, chol_value = _concrete(covariance), _concrete(cholesky)
        if cov_value is not None and chol_value is not None:
            if not np.allclose(cov_value, cov_value.T, rtol=1e-5, atol=1e-6):
                raise ValueError("`covariance` must be symmetric.")
            # A failed factorisation shows up as NaNs rather than an exception in JAX.
            if not np.all(np.isfinite(chol_value)) or not np.all(np.diag(chol_value) > 0):
                raise ValueError("`covariance` must be positive definite.")
        self.loc = loc
        self.covariance = covariance
        self.cholesky = cholesky

    @property
    def dim(self) -> int:
        return self.loc.shape[0]

    @property
    def mean(self) -> Float[Array, " dim"]:
        return self.loc

    @property
    def support(self) -> tuple[Float[Array, " dim"], Float[Array, " dim"]]:
        infinite = jnp.full(self.dim, jnp.inf, self.loc.dtype)
        return -infinite, infinite

    @jit_checking_counts("n")
    def sample(self, key: Key, n: int) -> Float[Array, "num_samples dim"]:
        """``n`` independent draws, shape ``(n, dim)``."""
        eps = jr.normal(key, (n, self.dim), self.loc.dtype)
        return self.loc + eps @ self.cholesky.T

    @eqx.filter_jit
    def log_prob(self, value: Float[Array, "*batch dim"]) -> Float[Array, "*batch"]:
        """Log-density at ``value`` (shape ``(*batch, dim)``)."""
        check_shape(value, "value", ("*batch", self.dim))
        batch_shape = value.shape[:-1]
        diff = (value - self.loc).reshape(-1, self.dim)
        # Whitening with the triangular factor avoids forming the inverse covariance.
        z = jsl.solve_triangular(self.cholesky, diff.T, lower=True)
        mahalanobis = jnp.sum(z**2, axis=0)
        half_log_det = jnp.sum(jnp.log(jnp.diag(self.cholesky)))
        log_norm = 0.5 * self.dim * math.log(2 * math.pi) + half_log_det
        return (-0.5 * mahalanobis - log_norm).reshape(batch_shape)


class LogitNormal(AbstractDistribution):
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

    @property
    def support(self) -> tuple[Float[Array, " dim"], Float[Array, " dim"]]:
        return self.low, self.high

    @jit_checking_counts("n")
    def sample(self, key: Key, n: int) -> Float[Array, "num_samples dim"]:
        """``n`` independent draws, shape ``(n, dim)``, strictly inside ``(low, high)``."""
        z = self.loc + self.scale * jr.normal(key, (n, self.dim), self.low.dtype)
        return self.low + (self.high - self.low) * jax.nn.sigmoid(z)

    @eqx.filter_jit
    def log_prob(self, value: Float[Array, "*batch dim"]) -> Float[Array, "*batch"]:
        """Log-density at ``value`` (shape ``(*batch, dim)``); ``-inf`` outside ``(low, high)``."""
        check_shape(value, "value", ("*batch", self.dim))
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
