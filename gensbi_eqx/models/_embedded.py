"""A model that reads some nodes through embedding networks: each such node's values become a
few summary scalars, trained end to end with the model, so a node of thousands of numbers costs
a few tokens instead of one per number."""

from collections.abc import Callable, Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .._custom_types import Array, ConditionMask, EdgeMask, Float, Key, Scalar, Flat
from ..data import NodeData, NodeLayout, Series
from ..embeddings import EMBEDDINGS, AbstractEmbedding
from ._base import AbstractModel


def summary_shape(embedding: Callable, shape: tuple[int, ...], name: str) -> tuple[int, ...]:
    """The shape ``(k,)`` or ``(k, c)`` that ``embedding`` gives for values of ``shape``."""
    if not isinstance(embedding, eqx.Module):
        raise TypeError(
            f"`embeddings[{name!r}]` must be an equinox.Module (e.g. "
            f"gs.embeddings.SeriesEmbedding(...)), got {type(embedding).__name__}."
        )
    try:
        out = eqx.filter_eval_shape(embedding, jax.ShapeDtypeStruct(shape, jnp.float32))
    except Exception as error:
        raise ValueError(
            f"`embeddings[{name!r}]` must take node {name!r}'s values of shape {shape}; calling "
            f"it failed: {error}"
        ) from error
    if (not isinstance(out, jax.ShapeDtypeStruct) or out.ndim not in (1, 2)
            or not jnp.issubdtype(out.dtype, jnp.floating)):
        raise ValueError(
            f"`embeddings[{name!r}]` must return float summaries of shape (k,) or (k, c), got "
            f"{out}."
        )
    return tuple(int(s) for s in out.shape)


class EmbeddedModel(AbstractModel):
    """``model`` over the scalars of the nodes read directly plus the summaries of the nodes
    read through ``embeddings`` (in the layout's order, each node's summaries where its values
    were). Its flat vector is the data's: ``num_scalars`` counts the embedded nodes' values,
    which are always observed (`observed_always`) and get output 0.

    Built by a model's ``for_data(data, embeddings={name: net}, key=...)``. The attention mask
    and metadata of a summary are those of its node's first scalar; a node with times
    (`Series`) cannot be embedded.
    """

    model: AbstractModel
    embeddings: tuple[eqx.Module, ...]
    names: tuple[str, ...] = eqx.field(static=True)
    shapes: tuple[tuple[int, ...], ...] = eqx.field(static=True)
    embedded: tuple[str, ...] = eqx.field(static=True)
    summary_shapes: tuple[tuple[int, ...], ...] = eqx.field(static=True)
    num_scalars: int = eqx.field(static=True)
    # The summaries of one condition's embedded nodes (`given`); None: computed per call.
    cached: Float[Array, " inner_scalars"] | None

    def __init__(
        self,
        model: AbstractModel,
        embeddings: Mapping[str, eqx.Module],
        names: tuple[str, ...],
        shapes: tuple[tuple[int, ...], ...],
    ):
        """``model`` must be built over the layout of ``names`` / ``shapes`` with each embedded
        node's shape replaced by its summaries'; `embed` builds both."""
        self.model = model
        self.names = tuple(names)
        self.shapes = tuple(tuple(s) for s in shapes)
        self.embedded = tuple(n for n in self.names if n in embeddings)
        self.embeddings = tuple(embeddings[n] for n in self.embedded)
        self.summary_shapes = tuple(
            summary_shape(embeddings[n], self.shapes[self.names.index(n)], n)
            for n in self.embedded
        )
        self.num_scalars = NodeLayout(self.names, self.shapes).num_scalars
        self.cached = None
        if model.num_scalars != self._inner_layout.num_scalars:
            raise ValueError(
                f"`model` must have {self._inner_layout.num_scalars} scalars (the nodes read "
                f"directly and the summaries), got {model.num_scalars}."
            )

    @property
    def _layout(self) -> NodeLayout:
        return NodeLayout(self.names, self.shapes)

    @property
    def _inner_layout(self) -> NodeLayout:
        summaries = dict(zip(self.embedded, self.summary_shapes))
        return NodeLayout(self.names, tuple(summaries.get(n, s) for n, s in zip(self.names, self.shapes)))

    @property
    def _source(self) -> np.ndarray:
        """For each scalar of the inner model, the data scalar whose attention and metadata it
        takes: itself, or its node's first scalar for a summary."""
        outer, inner = self._layout.slices, self._inner_layout.slices
        source = np.zeros(self.model.num_scalars, dtype=np.int32)
        for name in self.names:
            start = outer[name].start
            direct = np.arange(start, outer[name].stop)
            source[inner[name]] = start if name in self.embedded else direct
        return source

    @property
    def _direct(self) -> tuple[np.ndarray, np.ndarray]:
        """``(data scalars, inner scalars)`` of the nodes read directly."""
        outer, inner = self._layout.slices, self._inner_layout.slices
        kept = [n for n in self.names if n not in self.embedded]
        if not kept:
            return np.zeros(0, np.int32), np.zeros(0, np.int32)
        return (np.concatenate([np.arange(outer[n].start, outer[n].stop) for n in kept]),
                np.concatenate([np.arange(inner[n].start, inner[n].stop) for n in kept]))

    @property
    def observed_always(self) -> tuple[bool, ...]:
        return tuple(self._layout.node_mask(self.embedded).tolist())

    @property
    def fixed_condition_mask(self) -> tuple[bool, ...] | None:
        inner = self.model.fixed_condition_mask
        if inner is None:
            return None
        fixed = np.asarray(self.observed_always)
        outer_idx, inner_idx = self._direct
        fixed[outer_idx] = np.asarray(inner)[inner_idx]
        return tuple(fixed.tolist())

    @property
    def has_metadata(self) -> tuple[bool, ...]:
        inner = getattr(self.model, "has_metadata", None)
        mask = np.zeros(self.num_scalars, dtype=bool)
        if inner is not None:
            outer_idx, inner_idx = self._direct
            mask[outer_idx] = np.asarray(inner)[inner_idx]
        return tuple(mask.tolist())

    def check_data(self, data, layout, argument: str = "data") -> None:
        inner = {n: v for n, v in data.items() if n not in self.embedded}
        self.model.check_data(inner, layout, argument)

    def summaries(self, x: Flat) -> Float[Array, " inner_scalars"]:
        """The inner model's values: the direct scalars of ``x (num_scalars,)`` and each
        embedded node's summaries, in layout order."""
        outer = self._layout.slices
        pieces = []
        for name, shape in zip(self.names, self.shapes):
            values = x[outer[name]]
            if name in self.embedded:
                embedding = self.embeddings[self.embedded.index(name)]
                values = embedding(values.reshape(shape)).reshape(-1)
            pieces.append(values)
        return jnp.concatenate(pieces)

    def given(self, y_cond: Flat) -> "EmbeddedModel":
        """This model with the embedded nodes' summaries of ``y_cond`` computed once: calls
        then read the embedded nodes from them, not from their ``x``."""
        return eqx.tree_at(lambda m: m.cached, self, self.summaries(y_cond),
                           is_leaf=lambda node: node is None)

    def __call__(
        self, t: Scalar, x: Flat, condition_mask: ConditionMask, *,
        edge_mask: EdgeMask | None = None,
        metadata: Float[Array, " num_scalars"] | None = None,
    ) -> Flat:
        """See `AbstractModel`; the embedded nodes' entries of ``condition_mask`` are taken as
        observed whatever they say (and their values from `given`'s condition, if any)."""
        source = jnp.asarray(self._source)
        inner_mask = condition_mask[source] | jnp.asarray(self._embedded_inner)
        extra = {}
        if edge_mask is not None:
            extra["edge_mask"] = edge_mask[source][:, source]
        if metadata is not None:
            extra["metadata"] = metadata[source]
        outer_idx, inner_idx = self._direct
        if self.cached is None:
            values = self.summaries(x)
        else:
            values = self.cached.at[inner_idx].set(x[outer_idx])
        output = self.model(t, values, inner_mask, **extra)
        return jnp.zeros(self.num_scalars, output.dtype).at[outer_idx].set(output[inner_idx])

    @property
    def _embedded_inner(self) -> np.ndarray:
        return self._inner_layout.node_mask(self.embedded)

    @property
    def config(self) -> dict[str, Any]:
        return {
            "model": {"class": type(self.model).__name__, "config": self.model.config},
            "embeddings": {
                name: {"class": type(e).__name__, "config": e.config}
                if isinstance(e, AbstractEmbedding) and type(e).__name__ in EMBEDDINGS
                else {"class": type(e).__name__, "config": None}
                for name, e in zip(self.embedded, self.embeddings)
            },
            "names": list(self.names),
            "shapes": [list(s) for s in self.shapes],
        }

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any], *, key: Key,
        embeddings: Mapping[str, eqx.Module] | None = None,
    ) -> "EmbeddedModel":
        """As `AbstractModel.from_config`; the user's own embedding networks (not in
        `gensbi_eqx.embeddings`) cannot be rebuilt from a config: pass them (any weights, the
        same structure) as ``embeddings``."""
        from . import MODELS  # the package's registry, which lists this class too

        embeddings = dict(embeddings or {})
        k_model, k_embed = jr.split(key)
        built = {}
        for k, (name, spec) in zip(jr.split(k_embed, len(config["embeddings"])),
                                   config["embeddings"].items()):
            if name in embeddings:
                built[name] = embeddings[name]
            elif spec["config"] is not None:
                built[name] = EMBEDDINGS[spec["class"]].from_config(spec["config"], key=k)
            else:
                raise ValueError(
                    f"Node {name!r} is read through a {spec['class']}, a network of the user's "
                    f"that cannot be rebuilt from the file: pass one like it, "
                    f"`embeddings={{{name!r}: {spec['class']}(...)}}`."
                )
        model = MODELS[config["model"]["class"]].from_config(config["model"]["config"],
                                                             key=k_model)
        shapes = tuple(tuple(s) for s in config["shapes"])
        return cls(model, built, tuple(config["names"]), shapes)


def embed(
    for_data: Callable[..., AbstractModel],
    data: Mapping[str, NodeData],
    embeddings: Mapping[str, eqx.Module],
    **arguments,
) -> EmbeddedModel:
    """``for_data(data', **arguments)`` wrapped in an `EmbeddedModel`, where ``data'`` is
    ``data`` with each node of ``embeddings`` replaced by its summaries (only shapes are
    read)."""
    if not isinstance(embeddings, Mapping) or not embeddings:
        raise TypeError(
            "`embeddings` must be a non-empty dict {node: equinox.Module}, got "
            f"{embeddings!r}."
        )
    layout = NodeLayout.from_data(data)
    layout.check_names(tuple(embeddings), "embeddings")
    timed = [n for n in embeddings if n in layout.metadata_nodes]
    if timed:
        raise ValueError(
            f"`embeddings`: node(s) {timed} have times (gs.Series); an embedding reads a "
            "node's values only, so give them as plain arrays (fixed times) to embed them."
        )
    if len(embeddings) == len(layout.names):
        raise ValueError(
            "`embeddings`: every node would be read through an embedding, leaving nothing to "
            "infer; embed only the nodes you condition on."
        )
    rows = next(iter(data.values()))
    rows = len(rows.values if isinstance(rows, Series) else rows)
    summaries = {}
    for name, shape in zip(layout.names, layout.shapes):
        if name in embeddings:
            summaries[name] = np.zeros((rows, *summary_shape(embeddings[name], shape, name)),
                                       np.float32)
        else:
            summaries[name] = data[name]
    return EmbeddedModel(for_data(summaries, **arguments), embeddings, layout.names,
                         layout.shapes)
