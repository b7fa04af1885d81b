"""Per-scalar maps between a bounded support and the real line, where models learn.

For a scalar with support ``(lower, upper)`` (either side may be infinite):

- both bounds: ``y = log(x - lower) - log(upper - x)``, the logit of ``(x - lower) / width``;
- lower only: ``y = log(x - lower)``; upper only: ``y = -log(upper - x)``;
- neither: ``y = x``.

Every map is increasing, so an interval maps to an interval. In float32 a logit saturates:
``sigmoid(17) == 1``. So values are clipped to the open support, one float away from each
bound, on both sides of the map: a draw is never exactly on a bound, and the log-Jacobian at
any draw is finite.
"""

import jax
import jax.numpy as jnp

from .._custom_types import Array, Bool, Float

Vector = Float[Array, "*batch num_scalars"]
Bound = Float[Array, " num_scalars"]


def _open_support(x: Vector, lower: Bound, upper: Bound) -> Vector:
    """``x`` clipped to one float inside each finite bound; the open side of a one-sided
    support stops at the largest float. Unbounded scalars (and NaN) are left alone."""
    has_lower, has_upper = jnp.isfinite(lower), jnp.isfinite(upper)
    info = jnp.finfo(jnp.result_type(x, lower))
    open_side = jnp.where(has_lower | has_upper, info.max, jnp.inf)
    # At a bound of 0 the next float is subnormal, which the CPU flushes to 0: the smallest
    # normal float is the nearest that stays apart from it.
    next_up = jnp.maximum(jnp.nextafter(lower, jnp.inf), lower + info.tiny)
    next_down = jnp.minimum(jnp.nextafter(upper, -jnp.inf), upper - info.tiny)
    inner_lower = jnp.where(has_lower, next_up, -open_side)
    inner_upper = jnp.where(has_upper, next_down, open_side)
    return jnp.clip(x, inner_lower, inner_upper)


def _gaps(x: Vector, lower: Bound, upper: Bound) -> tuple[Vector, Vector]:
    """``(x - lower, upper - x)`` where the bound is finite, 1 elsewhere (so logs are 0 and
    gradients stay finite in the branch that is not taken)."""
    x = _open_support(x, lower, upper)
    below = jnp.where(jnp.isfinite(lower), x - jnp.where(jnp.isfinite(lower), lower, 0.0), 1.0)
    above = jnp.where(jnp.isfinite(upper), jnp.where(jnp.isfinite(upper), upper, 0.0) - x, 1.0)
    return below, above


def to_unbounded(x: Vector, lower: Bound, upper: Bound) -> Vector:
    """The support ``(lower, upper)`` onto the real line, per scalar (values on or beyond a
    bound are first moved one float inside)."""
    below, above = _gaps(x, lower, upper)
    free = ~jnp.isfinite(lower) & ~jnp.isfinite(upper)
    return jnp.where(free, x, jnp.log(below) - jnp.log(above))


def to_bounded(y: Vector, lower: Bound, upper: Bound) -> Vector:
    """The inverse of `to_unbounded`: the real line into the open support, per scalar."""
    has_lower, has_upper = jnp.isfinite(lower), jnp.isfinite(upper)
    low = jnp.where(has_lower, lower, 0.0)
    high = jnp.where(has_upper, upper, 0.0)
    width = high - low
    # Each side of the logistic computed from the bound it is near, for precision there.
    two_sided = jnp.where(y > 0, high - width * jax.nn.sigmoid(-y), low + width * jax.nn.sigmoid(y))
    # exp of a large y is inf; clipping below brings it back to the largest float.
    one_sided = jnp.where(has_lower, low + jnp.exp(y), high - jnp.exp(-y))
    x = jnp.where(has_lower & has_upper, two_sided, jnp.where(has_lower | has_upper, one_sided, y))
    return _open_support(x, lower, upper)


def log_abs_det_to_unbounded(x: Vector, lower: Bound, upper: Bound) -> Vector:
    """``log |d to_unbounded(x) / dx|`` per scalar (0 for unbounded scalars)."""
    below, above = _gaps(x, lower, upper)
    both = jnp.isfinite(lower) & jnp.isfinite(upper)
    log_width = jnp.log(jnp.where(both, upper - jnp.where(both, lower, 0.0), 1.0))
    return log_width - jnp.log(below) - jnp.log(above)


def outside(x: Vector, lower: Bound, upper: Bound) -> Bool[Array, "*batch num_scalars"]:
    """Where ``x`` lies outside the closed support ``[lower, upper]`` (NaN is not outside)."""
    return (x < lower) | (x > upper)
