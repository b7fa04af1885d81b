"""``fit``: from named simulations to an Estimator."""

from collections.abc import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .._custom_types import ArrayLike, EdgeMask, Key
from ..data import Dependencies, NodeData, NodeLayout, Standardiser, time_standardiser
from ..methods import AbstractMethod
from ..models import MASK_POLICIES, AbstractModel, DependencyMask
from ..training import PosteriorMasks, StructuredMasks, train
from ._estimator import Estimator, _positive_int

MASK_SAMPLERS = {"structured": StructuredMasks, "posterior": PosteriorMasks}


def _mask_sampler(condition_masks, layout: NodeLayout, parameters, model: AbstractModel) -> Callable:
    fixed = model.fixed_condition_mask
    if fixed is not None:
        # A conditional model learns the one conditional it was built for.
        if condition_masks is not None:
            raise ValueError(
                f"{type(model).__name__} is trained on its own conditional only; leave "
                f"`condition_masks` unset (got {condition_masks!r})."
            )
        return PosteriorMasks(tuple(not c for c in fixed))
    if condition_masks is None:
        condition_masks = "structured"
    if callable(condition_masks):
        sampler = condition_masks
        try:
            probe = jnp.asarray(sampler(jr.key(0), layout.num_scalars))
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
        return sampler
    if condition_masks not in MASK_SAMPLERS:
        raise ValueError(
            f"`condition_masks` must be one of {sorted(MASK_SAMPLERS)} or a callable "
            f"(key, num_scalars) -> bool mask, got {condition_masks!r}."
        )
    if parameters is None:
        parameters = ("theta",) if "theta" in layout.names else layout.names[:1]
    if isinstance(parameters, str):
        parameters = (parameters,)
    layout.check_names(parameters, "parameters")
    return MASK_SAMPLERS[condition_masks](tuple(layout.node_mask(parameters).tolist()))


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


def _attention(
    edge_mask, dependencies, mask_policy, layout: NodeLayout, model: AbstractModel
) -> EdgeMask | DependencyMask | None:
    """What the model attends through: a fixed mask, declared dependencies under a policy, or
    nothing (dense)."""
    if edge_mask is not None and dependencies is not None:
        raise ValueError(
            "Give `edge_mask` (a fixed mask) or `dependencies` (masks derived per condition), "
            "not both."
        )
    if mask_policy is not None and mask_policy not in MASK_POLICIES:
        raise ValueError(f"`mask_policy` must be one of {MASK_POLICIES}, got {mask_policy!r}.")
    if dependencies is None and mask_policy not in (None, "dense"):
        raise ValueError(
            f"`mask_policy={mask_policy!r}` needs `dependencies`, e.g. "
            "gs.Dependencies({'x': ['theta']})."
        )
    if edge_mask is None and dependencies is None:
        return None
    if model.fixed_condition_mask is not None:
        given = "`edge_mask`" if edge_mask is not None else "`dependencies`"
        raise ValueError(
            f"{given}: {type(model).__name__} attends densely and takes no attention mask; "
            "use a joint model (Simformer, Flux1Joint) for attention masks."
        )
    if dependencies is not None:
        policy = "undirected" if mask_policy is None else mask_policy
        return DependencyMask.from_dependencies(dependencies, layout, policy)
    edge_mask = jnp.asarray(edge_mask)
    n = layout.num_scalars
    if edge_mask.shape != (n, n) or edge_mask.dtype != jnp.bool_:
        raise ValueError(
            f"`edge_mask` must be a bool array of shape ({n}, {n}), "
            f"got {edge_mask.dtype} {edge_mask.shape}."
        )
    return edge_mask


def fit(
    key: Key,
    model: AbstractModel,
    data: Mapping[str, NodeData],
    *,
    method: AbstractMethod,
    condition_masks: str | Callable | None = None,
    parameters: str | tuple[str, ...] | None = None,
    edge_mask: ArrayLike | None = None,
    dependencies: Dependencies | None = None,
    mask_policy: str | None = None,
    max_steps: int = 10_000,
    batch_size: int = 256,
    learning_rate: float = 1e-3,
    gradient_clip: float = 1.0,
    ema_decay: float = 0.999,
    validation_fraction: float = 0.1,
    validation_every: int | None = None,
    patience: int = 20,
    standardise: bool = True,
    steps_per_call: int = 100,
    devices: Sequence[jax.Device] | int | None = None,
    progress: bool = True,
) -> Estimator:
    """Train ``model`` on simulations ``data = {name: (N, d)}`` with ``method``.

    **Arguments:**
    - `key`: a `jax.random` key; the same key and data give the same estimator.
    - `model`: e.g. ``Simformer.for_data(data, key=...)``, ``Flux1Joint.for_data(data, key=...)``
      (joint: any conditional) or ``Flux1.for_data(data, condition_on=("x",), key=...)``
      (conditional: ``p(rest | x)`` only).
    - `data`: named arrays with a shared leading ``N``: ``(N, d)``, ``(N, tokens, channels)``, or
      ``(N,)`` read as ``(N, 1)``. Rows with NaN or inf are refused (and counted). A node
      given as ``gs.Series(values, times)`` (values ``(N, T)`` or ``(N, T, channels)``) is
      ``T`` points, each with its time; rows may have different times.
    - `method`: ``VESDE()``, ``VPSDE()``, ``FlowMatching()`` or ``EDM()``.
    - `condition_masks`: for joint models, ``"structured"`` (default; the Simformer paper's
      mixture: any conditional), ``"posterior"`` (only ``p(parameters | rest)``), or a callable
      ``(key, num_scalars) -> bool``. A conditional model (Flux1) trains on its own conditional;
      leave this unset.
    - `parameters`: node names that are parameters, for the mask samplers (default ``"theta"``
      if present, else the first node).
    - `edge_mask`: optional fixed ``(num_scalars, num_scalars)`` bool, ``[i, j]``: token i attends
      to j, for every condition.
    - `dependencies`: optional ``gs.Dependencies`` (what depends on what in the simulator), from
      which attention masks are derived under `mask_policy`: ``"undirected"`` (default with
      dependencies; the moral graph), ``"directed"`` (the Simformer's minimal faithful mask,
      recomputed for every example's condition mask) or ``"dense"`` (no mask).
    - `max_steps`, `batch_size`, `learning_rate` (Adam; constant, then linear decay from half-way),
      `gradient_clip` (global norm), `ema_decay` (the returned weights are the EMA ones).
    - `validation_fraction`: share of rows held out; the EMA weights are scored on all of them
      every `validation_every` steps and training stops after `patience` scores without
      improvement, keeping the best weights. ``0`` trains for ``max_steps`` without validation.
    - `standardise`: learn per-token mean and std from the training rows (default on).
    - `steps_per_call`: train steps fused into one device call (``lax.fori_loop``); the host
      only sees the losses between calls, which removes per-step dispatch overhead.
    - `devices`: data-parallel training: ``None`` (all local devices), a count of local
      devices, or a list of jax devices. Each batch is split over them (`batch_size` must be
      divisible by their number); weights and data are replicated. One device is plain
      single-device training.
    - `progress`: show a tqdm bar with the loss and validation loss.

    **Returns:** an `Estimator`; ``estimator.history`` holds the losses.
    """
    if not isinstance(model, AbstractModel):
        raise TypeError(f"`model` must be a gensbi_eqx model, got {type(model).__name__}.")
    if not isinstance(method, AbstractMethod):
        raise TypeError(
            f"`method` must be a method such as gs.VESDE(), got {type(method).__name__}."
        )
    layout = NodeLayout.from_data(data)
    if model.num_scalars != layout.num_scalars:
        raise ValueError(
            f"`model` has {model.num_scalars} scalars but `data` has {layout.num_scalars} "
            f"scalars ({dict(zip(layout.names, layout.shapes))}); build it with "
            f"{type(model).__name__}.for_data(data, ...)."
        )
    max_steps = _positive_int(max_steps, "max_steps")
    batch_size = _positive_int(batch_size, "batch_size")
    patience = _positive_int(patience, "patience")
    steps_per_call = _positive_int(steps_per_call, "steps_per_call")
    if validation_every is None:
        validation_every = max(1, min(200, max_steps // 20))
    validation_every = _positive_int(validation_every, "validation_every")
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError(f"`validation_fraction` must lie in [0, 1), got {validation_fraction}.")
    _check_metadata_tokens(model, layout)
    edge_mask = _attention(edge_mask, dependencies, mask_policy, layout, model)
    sampler = _mask_sampler(condition_masks, layout, parameters, model)

    x = layout.flatten(data)
    k_split, k_train = jr.split(key)
    n_val = int(round(validation_fraction * x.shape[0]))
    if x.shape[0] - n_val < 1:
        raise ValueError(f"`data` has {x.shape[0]} rows: too few to hold out a validation set.")
    order = jr.permutation(k_split, x.shape[0])
    x = x[order]
    x_train, x_val = x[n_val:], x[:n_val]
    if standardise:
        # The points of a node with times pool their statistics: they are exchangeable.
        groups = layout.token_ids() if layout.has_metadata else None
        standardiser = Standardiser.fit(x_train, groups)
    else:
        standardiser = Standardiser.identity(x.shape[1])
    train_data, val_data = standardiser(x_train), standardiser(x_val) if n_val else None
    times_scaler = None
    if layout.has_metadata:
        times = layout.flatten_times(data)[np.asarray(order)]
        times_scaler = time_standardiser(layout, times[n_val:])
        scaled = times_scaler(jnp.asarray(times))
        train_data = (train_data, scaled[n_val:])
        val_data = (val_data, scaled[:n_val]) if n_val else None
    trained, history = train(
        k_train,
        model,
        method,
        train_data,
        val_data,
        sampler,
        edge_mask=edge_mask,
        max_steps=max_steps,
        batch_size=batch_size,
        learning_rate=learning_rate,
        gradient_clip=gradient_clip,
        ema_decay=ema_decay,
        validation_every=validation_every,
        patience=patience,
        steps_per_call=steps_per_call,
        devices=devices,
        progress=progress,
    )
    return Estimator(trained, method, layout, standardiser, edge_mask, history, times_scaler)
