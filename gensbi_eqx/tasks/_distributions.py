"""Small distributions for benchmark priors and closed-form posteriors.

Just enough to draw samples and score them; they are Modules, so they can be passed through
``eqx.filter_jit`` and stored inside a task.

Methods here and in the tasks are ``eqx.filter_jit``-compiled: they are mostly called at top
level, where eager JAX would compile every small op separately for each new shape.
"""

import functools
import inspect
import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import jax.scipy.linalg as jsl
import numpy as np

from .._custom_types import Array, ArrayLike, Float, Key


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


def check_num_samples(n: int, name: str = "n") -> None:
    """Raise a ValueError unless ``n`` is a positive Python int (bools are refused)."""
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise ValueError(f"`{name}` must be a positive int, got {n!r}.")


def jit_checking_counts(*names: str) -> Callable[[Callable], Callable]:
    """``eqx.filter_jit``, after checking that the named arguments are positive ints.

    The check runs on every call, outside the compiled function: the compile cache cannot tell
    ``True`` from ``1``, so a check inside it would be skipped once ``1`` has been compiled.
    """

    def decorate(fn: Callable) -> Callable:
        signature = inspect.signature(fn)
        jitted = eqx.filter_jit(fn)

        @functools.wraps(fn)
        def checked(*args, **kwargs):
            arguments = signature.bind(*args, **kwargs).arguments
            for name in names:
                if name in arguments:
                    check_num_samples(arguments[name], name)
            return jitted(*args, **kwargs)

        return checked

    return decorate


def _check_last_axis(value: Array, dim: int) -> None:
    if value.ndim == 0 or value.shape[-1] != dim:
        raise ValueError(f"`value` must have shape (*batch, {dim}), got shape {value.shape}.")


class Uniform(eqx.Module):
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

    @jit_checking_counts("n")
    def sample(self, key: Key, n: int) -> Float[Array, "num_samples dim"]:
        """``n`` independent draws, shape ``(n, dim)``."""
        return jr.uniform(key, (n, self.dim), self.low.dtype, self.low, self.high)

    @eqx.filter_jit
    def log_prob(self, value: Float[Array, "*batch dim"]) -> Float[Array, "*batch"]:
        """Log-density at ``value`` (shape ``(*batch, dim)``); ``-inf`` outside the box."""
        _check_last_axis(value, self.dim)
        inside = jnp.all((value >= self.low) & (value <= self.high), axis=-1)
        log_volume = jnp.sum(jnp.log(self.high - self.low))
        return jnp.where(inside, -log_volume, -jnp.inf).astype(jnp.result_type(value, self.low))


class Normal(eqx.Module):
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

    @jit_checking_counts("n")
    def sample(self, key: Key, n: int) -> Float[Array, "num_samples dim"]:
        """``n`` independent draws, shape ``(n, dim)``."""
        eps = jr.normal(key, (n, self.dim), self.loc.dtype)
        return self.loc + eps @ self.cholesky.T

    @eqx.filter_jit
    def log_prob(self, value: Float[Array, "*batch dim"]) -> Float[Array, "*batch"]:
        """Log-density at ``value`` (shape ``(*batch, dim)``)."""
        _check_last_axis(value, self.dim)
        batch_shape = value.shape[:-1]
        diff = (value - self.loc).reshape(-1, self.dim)
        # Whitening with the triangular factor avoids forming the inverse covariance.
        z = jsl.solve_triangular(self.cholesky, diff.T, lower=True)
        mahalanobis = jnp.sum(z**2, axis=0)
        half_log_det = jnp.sum(jnp.log(jnp.diag(self.cholesky)))
        log_norm = 0.5 * self.dim * math.log(2 * math.pi) + half_log_det
        return (-0.5 * mahalanobis - log_norm).reshape(batch_shape)
