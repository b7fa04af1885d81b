"""Queries in the user's terms (named nodes, NaN for "not observed", `Series` with times) as
the flat, standardised vectors that samplers and densities take, and checks on them."""

from collections.abc import Mapping

import jax.numpy as jnp
import numpy as np

from ..data import NodeData, NodeLayout, Standardiser, query_vectors
from ..models import AbstractModel


def flat_query(
    layout: NodeLayout,
    model: AbstractModel,
    time_standardiser: Standardiser | None,
    condition: Mapping[str, NodeData],
    predict: Mapping | None = None,
    argument: str = "condition",
    free: bool = True,
) -> tuple[np.ndarray, np.ndarray | None, dict[str, np.ndarray]]:
    """``(given, metadata, predicted)`` of a query (`gensbi_eqx.data.query_vectors`): given
    values ``(*batch, num_scalars)`` (NaN: latent), each scalar's time in the model's units
    (``None`` without nodes with times) and the flat indices of the points to predict. With
    ``free``, the free points of nodes with times are spread over their training range."""
    ranges = None
    if time_standardiser is not None and free:
        low, width = np.asarray(time_standardiser.mean), np.asarray(time_standardiser.std)
        ranges = {}
        for name in layout.metadata_nodes:
            first = layout.slices[name].start
            ranges[name] = (float(low[first]), float(low[first] + width[first]))
    given, times, predicted = query_vectors(layout, condition, predict, argument, ranges)
    model.check_data(condition, layout, argument)
    metadata = None if time_standardiser is None else np.asarray(time_standardiser(jnp.asarray(times)))
    return given, metadata, predicted


def entries(layout: NodeLayout, which: np.ndarray) -> list[str]:
    """Labels ``name[index]`` of the scalars flagged in any row of ``which``."""
    flagged = which.reshape(-1, layout.num_scalars).any(axis=0)
    return [
        f"{name}[{k}]"
        for name in layout.names
        for k, hit in enumerate(flagged[layout.slices[name]])
        if hit
    ]


def check_inside(
    layout: NodeLayout, values: np.ndarray, lower: np.ndarray, upper: np.ndarray, argument: str
) -> None:
    """Values ``(*batch, num_scalars)`` must lie in the declared supports (NaN: not given)."""
    beyond = (values < lower) | (values > upper)
    if beyond.any():
        first = tuple(np.argwhere(beyond)[0])
        raise ValueError(
            f"`{argument}` has {int(beyond.sum())} value(s) outside the bounds declared in "
            f"`fit(..., nodes=...)`, at {entries(layout, beyond)}; the first is "
            f"{values[first]}, outside [{lower[first[-1]]}, {upper[first[-1]]}]."
        )


def check_support(
    layout: NodeLayout, standardiser: Standardiser, values: np.ndarray, argument: str
) -> None:
    """A query's given values must lie in the supports declared to `fit` (none: no check)."""
    if standardiser.bounded:
        lower, upper = np.asarray(standardiser.lower), np.asarray(standardiser.upper)
        check_inside(layout, values, lower, upper, argument)


def check_conditional(model: AbstractModel, layout: NodeLayout, observed: np.ndarray) -> None:
    """A conditional model answers only the conditional it was trained for; a node read
    through an embedding network must be given."""
    always = model.observed_always
    if always is not None and not observed[..., np.asarray(always)].all():
        embedded = [n for n in layout.names if np.asarray(always)[layout.slices[n]].all()]
        raise ValueError(
            f"Node(s) {embedded} are read through an embedding network: they can be conditioned "
            "on but not sampled or left out; `condition` must give every entry of them."
        )
    fixed = model.fixed_condition_mask
    if fixed is None or (observed == np.asarray(fixed)).all():
        return
    given = [n for n in layout.names if np.asarray(fixed)[layout.slices[n]].all()]
    inferred = [n for n in layout.names if n not in given]
    raise ValueError(
        f"This {type(model).__name__} answers only p({', '.join(inferred)} | "
        f"{', '.join(given)}): `condition` must give every entry of {given} and nothing of "
        f"{inferred}. Train a joint model (Simformer, Flux1Joint) for other conditionals."
    )


def density_query(
    layout: NodeLayout,
    model: AbstractModel,
    time_standardiser: Standardiser | None,
    values: Mapping[str, NodeData],
    condition: Mapping[str, NodeData],
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(point, observed, metadata)`` of a density query: the point ``(*batch, num_scalars)``
    with the condition's values where ``observed``; every scalar must be in exactly one of
    ``values`` and ``condition``."""
    if isinstance(values, Mapping) and isinstance(condition, Mapping):
        split = [n for n in layout.metadata_nodes if n in values and n in condition]
        if split:
            raise ValueError(
                f"Node(s) {split} have times: give each wholly in `values` or in `condition`, "
                "not split between them."
            )
    point, point_times, _ = flat_query(
        layout, model, time_standardiser, values, None, "values", free=False
    )
    given, given_times, _ = flat_query(
        layout, model, time_standardiser, condition, None, "condition", free=False
    )
    point, given = np.broadcast_arrays(point, given)
    metadata = None
    if point_times is not None:
        # A node with times sits in one of the two; the other holds NaN times for it.
        metadata = np.where(np.isnan(point_times), given_times, point_times)
        metadata = np.broadcast_to(metadata, point.shape)
    observed = ~np.isnan(given)
    valued = ~np.isnan(point)
    if (observed & valued).any():
        raise ValueError(
            f"Entries {entries(layout, observed & valued)} are in both `values` and "
            "`condition`; each entry belongs to one of them."
        )
    if not (observed | valued).all():
        raise ValueError(
            f"Entries {entries(layout, ~(observed | valued))} are in neither `values` nor "
            "`condition`; give each scalar a value or a condition (marginals are not available "
            "from a density of all latent scalars)."
        )
    check_conditional(model, layout, observed)
    return np.where(observed, given, point), observed, metadata
