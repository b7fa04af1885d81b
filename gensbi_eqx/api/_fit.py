"""``fit``: from named simulations to an Estimator."""

import dataclasses
import warnings
from collections.abc import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .._custom_types import Key
from ..data import (
    Node,
    NodeData,
    NodeLayout,
    Standardiser,
    drop_invalid_rows,
    node_bounds,
    time_standardiser,
)
from ..methods import VESDE, AbstractMethod
from ..models import AbstractAttention, AbstractModel, DenseAttention
from ..training import (
    AbstractConditionMasks,
    ObservedAlways,
    PosteriorMasks,
    StructuredMasks,
    Training,
    train,
)
from ._estimator import Estimator
from ._query import check_inside


def _mask_sampler(condition_masks, layout: NodeLayout, model: AbstractModel) -> Callable:
    fixed = model.fixed_condition_mask
    if fixed is not None:
        # A conditional model learns the one conditional it was built for.
        if condition_masks is not None:
            raise ValueError(
                f"{type(model).__name__} is trained on its own conditional only; leave "
                f"`condition_masks` unset (got {condition_masks!r})."
            )
        return PosteriorMasks(is_parameter=tuple(not c for c in fixed))
    if condition_masks is None:
        condition_masks = StructuredMasks()
    if isinstance(condition_masks, AbstractConditionMasks):
        return condition_masks.bind(layout)
    if not callable(condition_masks):
        raise TypeError(
            "`condition_masks` must be a gs.StructuredMasks(), gs.PosteriorMasks(), "
            f"gs.BernoulliMasks(rate) or a callable (key, num_scalars) -> bool mask, got "
            f"{condition_masks!r}."
        )
    try:
        probe = jnp.asarray(condition_masks(jr.key(0), layout.num_scalars))
    except Exception as error:
        raise TypeError(
            "`condition_masks` must be callable as (key, num_scalars) -> bool mask; calling it "
            f"failed: {error}"
        ) from error
    if probe.shape != (layout.num_scalars,) or probe.dtype != jnp.bool_:
        raise ValueError(
            f"`condition_masks` must return a bool array of shape ({layout.num_scalars},), "
            f"got {probe.dtype} {probe.shape}."
        )
    return condition_masks


def _check_metadata_tokens(model: AbstractModel, layout: NodeLayout) -> None:
    """The model must embed times on exactly the scalars of the data's `Series` nodes."""
    model_mask = tuple(getattr(model, "has_metadata", ()))
    if layout.has_metadata and model_mask != layout.metadata_mask():
        raise ValueError(
            f"`data` gives times for {list(layout.metadata_nodes)}, but `model` was not built "
            f"to read them there; build it with {type(model).__name__}.for_data(data, ...)."
        )
    if not layout.has_metadata and any(model_mask):
        raise ValueError(
            f"`model` reads times on {sum(model_mask)} tokens, but `data` has no gs.Series "
            "node; give those nodes as gs.Series(values, times)."
        )


def _attention(attention, layout: NodeLayout, model: AbstractModel) -> AbstractAttention:
    """The attention policy bound to ``layout`` (dense when none is given)."""
    if attention is None:
        return DenseAttention()
    if not isinstance(attention, AbstractAttention):
        raise TypeError(
            "`attention` must be gs.UndirectedAttention(deps), gs.DirectedAttention(deps), "
            f"gs.FixedAttention(edge_mask) or gs.DenseAttention(), got {attention!r}."
        )
    if model.fixed_condition_mask is not None and not isinstance(attention, DenseAttention):
        raise ValueError(
            f"`attention`: {type(model).__name__} attends densely and takes no attention mask; "
            "use a joint model (Simformer, Flux1Joint) for attention masks."
        )
    return attention.bind(layout)


def fit(
    key: Key,
    model: AbstractModel,
    data: Mapping[str, NodeData],
    *,
    nodes: Mapping[str, Node] | None = None,
    method: AbstractMethod | None = None,
    condition_masks: AbstractConditionMasks | Callable | None = None,
    attention: AbstractAttention | None = None,
    training: Training = Training(),
    devices: Sequence[jax.Device] | int | None = None,
    progress: bool = True,
) -> Estimator:
    """Train ``model`` on simulations ``data = {name: (N, d)}``.

    **Arguments:**
    - `key`: a `jax.random` key; the same key and data give the same estimator.
    - `model`: e.g. ``Simformer.for_data(data, key=...)``, ``Flux1Joint.for_data(data, key=...)``
      (joint: any conditional) or ``Flux1.for_data(data, condition_on=("x",), key=...)``
      (conditional: ``p(rest | x)`` only).
    - `data`: named arrays with a shared leading ``N``: ``(N, d)``, ``(N, tokens, channels)``, or
      ``(N,)`` read as ``(N, 1)``. Rows with NaN or inf (failed simulations) are left out with
      a warning and listed in ``history.dropped_rows``, or refused with
      ``gs.Training(drop_invalid=False)``. A node
      given as ``gs.Series(values, times)`` (values ``(N, T)`` or ``(N, T, channels)``) is
      ``T`` points, each with its time; rows may have different times.
    - `nodes`: per-node specifications, ``{name: gs.Node(...)}``: ``gs.Node(bounds=(lower,
      upper))`` declares a node's support (per entry, one-sided allowed;
      ``bounds=task.prior.support`` for a task's prior). The model learns such a node through
      a map of its support onto the real line, so every draw lies strictly inside; data on a
      bound are moved one float inside, data beyond one are an error.
    - `method`: ``gs.VESDE()`` (default), ``gs.VPSDE()``, ``gs.FlowMatching()`` or ``gs.EDM()``.
    - `condition_masks`: for joint models, the conditionals trained on:
      ``gs.StructuredMasks()`` (default; the Simformer paper's mixture: any conditional),
      ``gs.PosteriorMasks()`` (only ``p(parameters | rest)``), ``gs.BernoulliMasks(rate)``, or a
      callable ``(key, num_scalars) -> bool``. A conditional model (Flux1) trains on its own
      conditional; leave this unset.
    - `attention`: what a joint model attends through: ``gs.UndirectedAttention(deps)`` (the
      moral graph of declared ``gs.Dependencies``), ``gs.DirectedAttention(deps)`` (the
      Simformer's minimal faithful mask, per condition mask), ``gs.FixedAttention(edge_mask)``;
      default dense.
    - `training`: ``gs.Training(...)``: optimizer, batch size, step budget, EMA, validation
      split, stopping rule, what to do with failed simulations, and a checkpoint to resume
      from.
    - `devices`: data-parallel training: ``None`` (all local devices), a count of local
      devices, or a list of jax devices. Each batch is split over them (the batch size must be
      divisible by their number); weights and data are replicated.
    - `progress`: show a tqdm bar with the loss and validation loss.

    **Returns:** an `Estimator`; ``estimator.history`` holds the losses.
    """
    if not isinstance(model, AbstractModel):
        raise TypeError(f"`model` must be a gensbi_eqx model, got {type(model).__name__}.")
    method = VESDE() if method is None else method
    if not isinstance(method, AbstractMethod):
        raise TypeError(
            f"`method` must be a method such as gs.VESDE(), got {type(method).__name__}."
        )
    if not isinstance(training, Training):
        raise TypeError(f"`training` must be a gs.Training(...), got {type(training).__name__}.")
    dropped = None
    if training.drop_invalid:
        data, dropped = _dropped_rows(data)
    layout = NodeLayout.from_data(data)
    if model.num_scalars != layout.num_scalars:
        raise ValueError(
            f"`model` has {model.num_scalars} scalars but `data` has {layout.num_scalars} "
            f"scalars ({dict(zip(layout.names, layout.shapes))}); build it with "
            f"{type(model).__name__}.for_data(data, ...)."
        )
    model.check_data(data, layout)
    _check_metadata_tokens(model, layout)
    attention = _attention(attention, layout, model)
    sampler = _mask_sampler(condition_masks, layout, model)
    if model.observed_always is not None:
        sampler = ObservedAlways(sampler, model.observed_always)
    bounds = node_bounds(layout, nodes)

    x = layout.flatten(data)
    if bounds is not None:
        check_inside(layout, np.asarray(x), *bounds, "data")
    k_split, k_train = jr.split(key)
    n_val = int(round(training.validation_fraction * x.shape[0]))
    if x.shape[0] - n_val < 1:
        raise ValueError(f"`data` has {x.shape[0]} rows: too few to hold out a validation set.")
    order = jr.permutation(k_split, x.shape[0])
    x = x[order]
    x_train, x_val = x[n_val:], x[:n_val]
    # The points of a node with times pool their statistics: they are exchangeable.
    groups = layout.token_ids() if layout.has_metadata else None
    standardiser = Standardiser.fit(x_train, groups, *(bounds or (None, None)))
    train_data, val_data = standardiser(x_train), standardiser(x_val) if n_val else None
    times_scaler = None
    if layout.has_metadata:
        times = layout.flatten_times(data)[np.asarray(order)]
        times_scaler = time_standardiser(layout, times[n_val:])
        scaled = times_scaler(jnp.asarray(times))
        train_data = (train_data, scaled[n_val:])
        val_data = (val_data, scaled[:n_val]) if n_val else None
    trained, history = train(
        k_train, model, method, train_data, val_data, sampler,
        attention=attention, training=training, devices=devices, progress=progress,
    )
    if dropped is not None:
        history = dataclasses.replace(history, dropped_rows=dropped)
    return Estimator(trained, method, layout, standardiser, attention, history, times_scaler)


def _dropped_rows(data: Mapping[str, NodeData]) -> tuple[dict[str, NodeData], np.ndarray]:
    """``data`` without its failed simulations, and their indices; warns when there are any."""
    kept, invalid = drop_invalid_rows(data)
    dropped, total = np.flatnonzero(invalid), invalid.size
    if dropped.size:
        warnings.warn(
            f"fit: left out {dropped.size} of {total} simulations ({dropped.size / total:.1%}) "
            f"with NaN or inf (first at row {int(dropped[0])}); their indices are in "
            "`estimator.history.dropped_rows`. The estimator learns the joint restricted to "
            "parameters whose simulations succeed. gs.Training(drop_invalid=False) refuses "
            "such data instead.",
            stacklevel=3,
        )
    return kept, dropped
