"""Constraints on draws, in the user's units: a box on named nodes, or linear inequalities.

Each one turns the model's denoiser into a guided one (`gensbi_eqx.guidance`), after mapping
its bounds through the standardiser (and the bounds of nodes declared bounded in `fit`).
"""

import abc
from collections.abc import Mapping

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .._custom_types import ArrayLike
from ..data import NodeLayout, Standardiser, interval_bounds
from ..guidance import AbstractVariance, SlabGuidance, TweedieVariance, interval, linear
from ..guidance._guidance import DEFAULT_MAX_SHARPNESS, DEFAULT_SCALE
from ..methods import AbstractDenoiser
from ._query import entries


class AbstractConstraint(eqx.Module):
    """A constraint on the draws of `Estimator.sample`, in user units, met by guided
    diffusion: ``scale`` is the guidance's sharpness (1 is calibrated) and ``variance`` how it
    estimates the spread of ``x0`` (`gensbi_eqx.guidance.TweedieVariance` or ``UnitVariance``).
    """

    scale: eqx.AbstractVar[float]
    variance: eqx.AbstractVar[AbstractVariance]

    @abc.abstractmethod
    def rows(
        self, layout: NodeLayout, standardiser: Standardiser
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(directions, lower, upper)`` in standardised units: the constraint is
        ``lower_j <= directions_j . z <= upper_j`` for every row ``j`` (infinite bounds: no
        bound on that side)."""

    @abc.abstractmethod
    def guide(
        self, denoiser: AbstractDenoiser, layout: NodeLayout, standardiser: Standardiser
    ) -> AbstractDenoiser:
        """``denoiser`` (in standardised units over ``layout``) guided towards this constraint."""


class Box(AbstractConstraint):
    """``lower <= node <= upper`` for named nodes: ``Box({"theta": (0.0, None)})``.

    Each bound is a number or an array broadcasting to the node's shape; ``None``, ``-inf`` and
    ``inf`` mean no bound on that side. Works on parameters and on data nodes alike ("the
    joint given that x lies in this box").
    """

    bounds: Mapping[str, tuple]
    scale: float = 1.0
    variance: AbstractVariance = TweedieVariance()

    def model_interval(
        self, layout: NodeLayout, standardiser: Standardiser
    ) -> tuple[np.ndarray, np.ndarray]:
        """Flat ``(lower, upper)`` in the model's units. The map from user units is increasing
        per entry, so bounds map to bounds; a bound at or beyond a declared support's edge
        binds nothing and becomes infinite."""
        lower, upper = interval_bounds(layout, self.bounds)
        empty = standardiser.empty_intervals(lower, upper)
        if empty.any():
            raise ValueError(
                f"`Box` bounds of {entries(layout, empty)} lie outside the bounds declared for "
                "them in `fit(..., nodes=...)`: no draw can meet them."
            )
        return standardiser.interval(lower, upper)

    def rows(self, layout, standardiser):
        lower, upper = self.model_interval(layout, standardiser)
        bounded = np.flatnonzero(np.isfinite(lower) | np.isfinite(upper))
        directions = np.eye(layout.num_scalars, dtype=np.float32)[bounded]
        return directions, lower[bounded], upper[bounded]

    def guide(self, denoiser, layout, standardiser):
        lower, upper = self.model_interval(layout, standardiser)
        return interval(denoiser, lower, upper, scale=self.scale, variance=self.variance)


class LinearInequality(AbstractConstraint):
    """``A @ z <= b`` over the flat vector ``z`` of all nodes in layout order (user units):
    ``A (num_constraints, num_scalars)``, ``b (num_constraints,)``.

    Entries of nodes declared bounded in `fit` are learned through a nonlinear map, in whose
    coordinates ``A @ z <= b`` is no longer linear: a row that touches them is refused (a
    `Box` takes their bounds)."""

    A: np.ndarray
    b: np.ndarray
    scale: float = 1.0
    variance: AbstractVariance = TweedieVariance()

    def __init__(self, A: ArrayLike, b: ArrayLike, scale: float = 1.0,
                 variance: AbstractVariance = TweedieVariance()):
        self.A = np.asarray(A, dtype=np.float32)
        self.b = np.asarray(b, dtype=np.float32)
        self.scale = scale
        self.variance = variance

    def rows(self, layout, standardiser):
        n = layout.num_scalars
        if self.A.ndim != 2 or self.A.shape[1] != n:
            raise ValueError(
                f"`A` must have shape (num_constraints, {n}) over the flat nodes "
                f"{dict(zip(layout.names, layout.shapes))}, got {self.A.shape}."
            )
        if standardiser.bounded:
            mapped = ~(np.isinf(np.asarray(standardiser.lower)) & np.isinf(np.asarray(standardiser.upper)))
            touched = (self.A != 0).any(axis=0) & mapped
            if touched.any():
                raise ValueError(
                    f"`A` weighs {entries(layout, touched)}, which are declared bounded in "
                    "`fit(..., nodes=...)`: the model learns them through a nonlinear map, "
                    "where a linear inequality is not linear. Bound single entries with "
                    "gs.Box, or train without bounds on those nodes."
                )
        mean, std = np.asarray(standardiser.mean), np.asarray(standardiser.std)
        # A z <= b with z = mean + std * u  <=>  (A diag(std)) u <= b - A mean.
        upper = self.b - self.A @ mean
        return self.A * std, np.full_like(upper, -np.inf), upper

    def guide(self, denoiser, layout, standardiser):
        directions, _, upper = self.rows(layout, standardiser)
        return linear(denoiser, directions, upper, scale=self.scale, variance=self.variance)


def as_tuple(
    constraints: AbstractConstraint | tuple | list | None,
) -> tuple[AbstractConstraint, ...]:
    """``constraints`` (None, one, or a sequence) as a checked tuple."""
    if constraints is None:
        return ()
    if isinstance(constraints, AbstractConstraint):
        return (constraints,)
    if not isinstance(constraints, (tuple, list)):
        constraints = (constraints,)
    for constraint in constraints:
        if not isinstance(constraint, AbstractConstraint):
            raise TypeError(
                "`constraints` must be gs.Box({...}), gs.LinearInequality(A, b) or a list of "
                f"them, got {constraint!r}."
            )
    return tuple(constraints)


def constrained(
    denoiser: AbstractDenoiser,
    constraints: AbstractConstraint | tuple | list | None,
    layout: NodeLayout,
    standardiser: Standardiser,
) -> AbstractDenoiser:
    """``denoiser`` guided towards every constraint in ``constraints`` (one or a sequence)."""
    for constraint in as_tuple(constraints):
        denoiser = constraint.guide(denoiser, layout, standardiser)
    return denoiser


def stacked(
    denoiser: AbstractDenoiser,
    constraints: tuple[AbstractConstraint, ...],
    layout: NodeLayout,
    standardiser: Standardiser,
    variance: AbstractVariance = TweedieVariance(),
) -> SlabGuidance:
    """All ``constraints`` as the rows of one `SlabGuidance` of ``denoiser`` at the calibrated
    scale: the twist of `gs.SMC` and the test of `gs.Rejection`."""
    rows = [c.rows(layout, standardiser) for c in constraints]
    directions, lower, upper = (np.concatenate(parts).astype(np.float32) for parts in zip(*rows))
    return SlabGuidance(
        denoiser, jnp.asarray(directions), jnp.asarray(lower), jnp.asarray(upper),
        jnp.asarray(DEFAULT_SCALE), variance, jnp.asarray(DEFAULT_MAX_SHARPNESS),
    )
