"""Per-scalar map from user units to the model's: bounded supports onto the real line, then
standardisation; learned from training data and stored with the estimator."""

from collections.abc import Sequence

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .._custom_types import Array, ArrayLike, Bool, Float
from ._bounds import log_abs_det_to_unbounded, outside, to_bounded, to_unbounded


class Standardiser(eqx.Module):
    """``z = (f(x) - mean) / std`` per scalar, where ``f`` maps a bounded scalar's support
    ``(lower, upper)`` onto the real line (`gensbi_eqx.data.to_unbounded`: a logit, or a log
    for one-sided bounds) and is the identity elsewhere. Constant scalars keep ``std = 1`` so
    they stay finite. ``lower`` and ``upper`` are ``None`` when no scalar is bounded."""

    mean: Float[Array, " num_scalars"]
    std: Float[Array, " num_scalars"]
    lower: Float[Array, " num_scalars"] | None = None
    upper: Float[Array, " num_scalars"] | None = None

    @classmethod
    def fit(
        cls,
        x: Float[Array, "N num_scalars"],
        groups: Sequence[int] | None = None,
        lower: Float[ArrayLike, " num_scalars"] | None = None,
        upper: Float[ArrayLike, " num_scalars"] | None = None,
    ) -> "Standardiser":
        """Mean and std of each scalar over the rows of ``x`` (after the bounds' map, when
        ``lower`` and ``upper`` are given); scalars with the same entry in ``groups`` (e.g. the
        points of a series, `NodeLayout.token_ids`) pool their statistics, so that exchangeable
        scalars stay exchangeable."""
        if (lower is None) != (upper is None):
            raise ValueError("`lower` and `upper` must be given together.")
        if lower is not None:
            lower, upper = jnp.asarray(lower, jnp.float32), jnp.asarray(upper, jnp.float32)
            x = to_unbounded(x, lower, upper)
        if groups is None:
            mean, std = jnp.mean(x, axis=0), jnp.std(x, axis=0)
        else:
            groups = jnp.asarray(groups)
            count = jnp.zeros(x.shape[1]).at[groups].add(x.shape[0])
            total = jnp.zeros(x.shape[1]).at[groups].add(jnp.sum(x, axis=0))
            mean = (total / jnp.maximum(count, 1))[groups]
            squares = jnp.zeros(x.shape[1]).at[groups].add(jnp.sum((x - mean) ** 2, axis=0))
            std = jnp.sqrt(squares / jnp.maximum(count, 1))[groups]
        return cls(mean, jnp.where(std > 1e-8, std, 1.0), lower, upper)

    @classmethod
    def identity(cls, num_scalars: int, bounded: bool = False) -> "Standardiser":
        """The identity (with unbounded ``lower`` and ``upper`` arrays when ``bounded``: the
        structure a saved bounded standardiser is read into)."""
        inf = jnp.full(num_scalars, jnp.inf)
        bounds = (-inf, inf) if bounded else (None, None)
        return cls(jnp.zeros(num_scalars), jnp.ones(num_scalars), *bounds)

    @property
    def bounded(self) -> bool:
        return self.lower is not None

    def __call__(self, x: Float[Array, "*batch num_scalars"]) -> Float[Array, "*batch num_scalars"]:
        if self.bounded:
            x = to_unbounded(x, self.lower, self.upper)
        return (x - self.mean) / self.std

    def inverse(self, z: Float[Array, "*batch num_scalars"]) -> Float[Array, "*batch num_scalars"]:
        x = z * self.std + self.mean
        return to_bounded(x, self.lower, self.upper) if self.bounded else x

    def log_abs_det_jacobian(
        self, x: Float[Array, "*batch num_scalars"]
    ) -> Float[Array, "*batch num_scalars"]:
        """``log |dz / dx|`` per scalar at ``x`` (user units): what a density in the model's
        units gains per latent scalar when read in the user's."""
        log_det = jnp.broadcast_to(-jnp.log(self.std), jnp.shape(x))
        if self.bounded:
            log_det = log_det + log_abs_det_to_unbounded(x, self.lower, self.upper)
        return log_det

    def outside(self, x: Float[Array, "*batch num_scalars"]) -> Bool[Array, "*batch num_scalars"]:
        """Where ``x`` lies outside the closed support (never, for unbounded scalars)."""
        if not self.bounded:
            return jnp.zeros(jnp.shape(x), bool)
        return outside(x, self.lower, self.upper)

    def interval(self, lower: np.ndarray, upper: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """An interval per scalar in user units (``(num_scalars,)`` each, infinite: no bound)
        in the model's units. Every map is increasing, so bounds stay bounds; a bound at or
        beyond the support's edge binds nothing there and becomes infinite. (An interval
        wholly outside the support maps to an empty one; see `empty_intervals`.)"""
        lower, upper = np.asarray(lower, np.float32), np.asarray(upper, np.float32)
        if self.bounded:
            support_lower, support_upper = np.asarray(self.lower), np.asarray(self.upper)
            free_lower, free_upper = lower <= support_lower, upper >= support_upper
            mapped = [np.asarray(to_unbounded(jnp.asarray(b), self.lower, self.upper)) for b in (lower, upper)]
            lower = np.where(free_lower, -np.inf, mapped[0])
            upper = np.where(free_upper, np.inf, mapped[1])
        mean, std = np.asarray(self.mean), np.asarray(self.std)
        return (lower - mean) / std, (upper - mean) / std

    def empty_intervals(self, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
        """Where an interval per scalar in user units misses the open support altogether."""
        if not self.bounded:
            return np.zeros(np.shape(lower), bool)
        return (np.asarray(lower) >= np.asarray(self.upper)) | (
            np.asarray(upper) <= np.asarray(self.lower)
        )
