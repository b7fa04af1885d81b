"""The Simformer (Gloeckler et al., "All-in-one simulation-based inference", ICML 2024)."""

from collections.abc import Mapping, Sequence
from typing import Any

import equinox as eqx
from jax.typing import DTypeLike
import jax
import jax.numpy as jnp
import jax.random as jr

from .._custom_types import Array, ConditionMask, EdgeMask, Float, Key, TokenIds, Scalar, Flat
from ..data import NodeData
from ._base import (
    AbstractModel,
    check_metadata,
    check_positive_ints,
    check_shapes,
    one_token_per_scalar,
    token_config,
    token_metadata,
)
from ._embedded import EmbeddedModel, embed
from ._embeddings import GaussianFourierEmbedding, MetadataEmbedding
from ._precision import compute_dtype_name
from ._transformer import Transformer, ensure_diagonal


class Simformer(AbstractModel):
    """One token per scalar variable: ``concat[value embedding, node-ID embedding,
    condition embedding * condition_mask]``, a pre-LN transformer whose attention honours an
    ``edge_mask``, and a linear head giving one number per token.

    Tokens with metadata (``has_metadata``; e.g. the points of a series, each with its time)
    add a `MetadataEmbedding` of their coordinate to their ID embedding, and share one ID per
    node and channel (``token_ids``), so they are told apart by their coordinate alone and the
    model is equivariant to reordering them. `Simformer.for_data` sets both from `Series`
    nodes.

    The settings are the static fields below, named as the constructor's arguments; `config`
    gives them back as keyword arguments and `from_config` rebuilds the model.

    The defaults are the paper's "small" configuration (about 180k parameters on two moons).
    ``compute_dtype="bfloat16"`` runs the transformer blocks in bfloat16; parameters and the
    embeddings stay float32.
    """

    value_embedding: eqx.nn.Linear
    id_embedding: eqx.nn.Embedding
    condition_embedding: Float[Array, " dim_condition"]
    time_embedding: GaussianFourierEmbedding
    metadata_embedding: MetadataEmbedding | None
    transformer: Transformer
    head: eqx.nn.Linear
    num_scalars: int = eqx.field(static=True)
    dim_value: int = eqx.field(static=True)
    dim_id: int = eqx.field(static=True)
    dim_condition: int = eqx.field(static=True)
    num_heads: int = eqx.field(static=True)
    head_dim: int = eqx.field(static=True)
    depth: int = eqx.field(static=True)
    widening: int = eqx.field(static=True)
    dim_time: int = eqx.field(static=True)
    compute_dtype: str = eqx.field(static=True)
    token_ids: tuple[int, ...] = eqx.field(static=True)
    has_metadata: tuple[bool, ...] = eqx.field(static=True)
    # None without metadata tokens (nothing reads it then).
    metadata_scale: float | None = eqx.field(static=True)

    def __init__(
        self,
        num_scalars: int,
        *,
        dim_value: int = 20,
        dim_id: int = 20,
        dim_condition: int = 10,
        num_heads: int = 4,
        head_dim: int = 10,
        depth: int = 6,
        widening: int = 3,
        dim_time: int = 128,
        token_ids: Sequence[int] | None = None,
        has_metadata: Sequence[bool] | None = None,
        metadata_scale: float = 4.0,
        compute_dtype: DTypeLike = "float32",
        key: Key,
    ):
        """**Arguments** beyond the widths: `token_ids` ``(num_scalars,)``, the learned ID of each
        token (default ``arange``); `has_metadata` ``(num_scalars,)`` bools, the tokens that
        take a coordinate in ``metadata`` (default none); `metadata_scale`, the standard
        deviation of the coordinate's Fourier frequencies (coordinates are scaled to ``[0, 1]``
        over the training range, so 4 resolves a few dozen distinct points)."""
        check_positive_ints(
            num_scalars=num_scalars,
            dim_value=dim_value,
            dim_id=dim_id,
            dim_condition=dim_condition,
            num_heads=num_heads,
            head_dim=head_dim,
            depth=depth,
            widening=widening,
            dim_time=dim_time,
        )
        if dim_time % 2:
            raise ValueError(f"`dim_time` must be even (sin and cos pairs), got {dim_time}.")
        self.num_scalars = num_scalars
        self.dim_value = dim_value
        self.dim_id = dim_id
        self.dim_condition = dim_condition
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.depth = depth
        self.widening = widening
        self.dim_time = dim_time
        self.compute_dtype = compute_dtype_name(compute_dtype)
        self.token_ids, self.has_metadata = token_metadata(num_scalars, token_ids, has_metadata)
        self.metadata_scale = float(metadata_scale) if any(self.has_metadata) else None
        kv, ki, kc, kt, kf, kh, km = jr.split(key, 7)
        dim = dim_value + dim_id + dim_condition
        self.value_embedding = eqx.nn.Linear("scalar", dim_value, key=kv)
        self.id_embedding = eqx.nn.Embedding(num_scalars, dim_id, key=ki)
        self.condition_embedding = 0.5 * jr.normal(kc, (dim_condition,))
        self.time_embedding = GaussianFourierEmbedding(dim_time, key=kt)
        self.metadata_embedding = (
            MetadataEmbedding(dim_id, scale=metadata_scale, key=km)
            if self.metadata_scale is not None else None
        )
        self.transformer = Transformer(
            dim, dim_time, depth, num_heads, head_dim, widening,
            compute_dtype=self.compute_dtype, key=kf,
        )
        self.head = eqx.nn.Linear(dim, "scalar", key=kh)

    @classmethod
    def for_data(
        cls,
        data: Mapping[str, NodeData],
        *,
        key: Key,
        embeddings: Mapping[str, eqx.Module] | None = None,
        **hyperparameters,
    ) -> "Simformer | EmbeddedModel":
        """A Simformer with one token per scalar of the named data ``{name: (N, d) or (N,)}``;
        the scalars of `Series` nodes take their times as metadata. ``embeddings = {name:
        net}`` reads those nodes through embedding networks (`EmbeddedModel`): one token per
        summary, and the node can only be conditioned on."""
        if embeddings is not None:
            return embed(cls.for_data, data, embeddings, key=key, **hyperparameters)
        return one_token_per_scalar(cls, data, key, hyperparameters)

    @property
    def config(self) -> dict[str, Any]:
        return {
            "num_scalars": self.num_scalars,
            "dim_value": self.dim_value,
            "dim_id": self.dim_id,
            "dim_condition": self.dim_condition,
            "num_heads": self.num_heads,
            "head_dim": self.head_dim,
            "depth": self.depth,
            "widening": self.widening,
            "dim_time": self.dim_time,
            "compute_dtype": self.compute_dtype,
            **token_config(self.token_ids, self.has_metadata, self.metadata_scale),
        }

    def __call__(
        self, t: Scalar, x: Flat, condition_mask: ConditionMask, *,
        node_ids: TokenIds | None = None,
        edge_mask: EdgeMask | None = None,
        metadata: Float[Array, " num_scalars"] | None = None,
    ) -> Flat:
        """See `AbstractModel`; ``node_ids (num_scalars,)`` selects each token's learned ID
        (default ``token_ids``; out-of-range ids are clamped by the lookup, not caught);
        ``metadata (num_scalars,)`` is each token's coordinate, read where ``has_metadata``
        (required then)."""
        n = self.num_scalars
        check_shapes(
            x=(x, (n,)), condition_mask=(condition_mask, (n,)), node_ids=(node_ids, (n,)),
            edge_mask=(edge_mask, (n, n)), metadata=(metadata, (n,)),
        )
        check_metadata(self, metadata)
        if node_ids is None:
            node_ids = jnp.asarray(self.token_ids)
        if edge_mask is not None:
            edge_mask = ensure_diagonal(edge_mask)
        values = jax.vmap(self.value_embedding)(x)
        ids = jax.vmap(self.id_embedding)(node_ids)
        if self.metadata_embedding is not None:
            where = jnp.asarray(self.has_metadata)[:, None]
            ids = ids + jnp.where(where, self.metadata_embedding(metadata), 0.0)
        conditions = condition_mask[:, None] * self.condition_embedding
        tokens = jnp.concatenate([values, ids, conditions], axis=-1)
        h = self.transformer(tokens, self.time_embedding(t), edge_mask)  # float32 out
        return jax.vmap(self.head)(h)
