"""Flux1Joint: the scalable joint model, one token per scalar in single-stream Flux blocks."""

from collections.abc import Mapping, Sequence
from typing import Any

import equinox as eqx
from jax.typing import DTypeLike
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .._custom_types import Array, ConditionMask, EdgeMask, Float, Key, Scalar, Flat
from ..data import NodeData
from ._base import (
    AbstractModel,
    check_metadata,
    check_positive_ints,
    check_shapes,
    one_token_per_scalar,
    rope_metadata_scale,
    token_config,
    token_metadata,
)
from ._embedded import EmbeddedModel, embed
from ._flux_blocks import FinalLayer, SingleStreamBlock, TimeEmbedding, check_flux_hyperparameters
from ._ids import IdEmbedding, check_metadata_strategy, metadata_rope_positions, rope_angles
from ._precision import compute_dtype_name
from ._stack import make_stack, run_stack
from ._transformer import ensure_diagonal


class Flux1Joint(AbstractModel):
    """Joint Flux transformer: every scalar is a token ``value embedding + ID embedding +
    condition embedding`` (a learned vector for "observed" and one for "latent"), then
    ``depth_single_blocks`` single-stream blocks whose attention honours ``edge_mask`` in every
    layer, then a modulated final layer. Trained with random condition masks like the
    Simformer, it answers any conditional.

    Width ``hidden = sum(axes_dim) * num_heads``. ``id_embedding_strategy`` is one of
    ``absolute`` (default: variables are unordered), ``pos1d``, ``pos2d``, ``rope1d``,
    ``rope2d``, ``rope``; ``theta`` is the RoPE base (default ``10 * num_scalars``, or ``10 *
    metadata_scale`` with metadata tokens).

    Tokens with metadata (``has_metadata``; e.g. the points of a series, each with its time)
    are rotated by RoPE at the real-valued position ``metadata * metadata_scale`` (axis 0),
    and share one ID per node and channel (``token_ids``), so they are told apart by their
    coordinate alone and the model is equivariant to reordering them. `Flux1Joint.for_data`
    sets both from `Series` nodes.

    The settings are the static fields below, named as the constructor's arguments (with
    defaults resolved: ``theta``, ``metadata_scale``); `config` gives them back as keyword
    arguments and `from_config` rebuilds the model.
    """

    value_in: eqx.nn.Linear
    ids: IdEmbedding
    condition_embedding: Float[Array, "2 hidden"]
    time_embedding: TimeEmbedding
    single_blocks: SingleStreamBlock
    final_layer: FinalLayer
    num_scalars: int = eqx.field(static=True)
    mlp_ratio: float = eqx.field(static=True)
    num_heads: int = eqx.field(static=True)
    depth_single_blocks: int = eqx.field(static=True)
    axes_dim: tuple[int, ...] = eqx.field(static=True)
    qkv_bias: bool = eqx.field(static=True)
    theta: float = eqx.field(static=True)
    id_embedding_strategy: str = eqx.field(static=True)
    grid: tuple[int, int] | None = eqx.field(static=True)
    compute_dtype: str = eqx.field(static=True)
    token_ids: tuple[int, ...] = eqx.field(static=True)
    has_metadata: tuple[bool, ...] = eqx.field(static=True)
    # None without metadata tokens (nothing reads it then).
    metadata_scale: float | None = eqx.field(static=True)

    def __init__(
        self,
        num_scalars: int,
        *,
        mlp_ratio: float | int = 4.0,
        num_heads: int = 4,
        depth_single_blocks: int = 16,
        axes_dim: Sequence[int] = (10,),
        qkv_bias: bool = True,
        theta: float | int | None = None,
        id_embedding_strategy: str = "absolute",
        grid: Sequence[int] | None = None,
        token_ids: Sequence[int] | None = None,
        has_metadata: Sequence[bool] | None = None,
        metadata_scale: float | int | None = None,
        compute_dtype: DTypeLike = "float32",
        key: Key,
    ):
        """**Arguments:**
        - `num_scalars`: tokens (scalars) per example.
        - `mlp_ratio`, `num_heads`, `depth_single_blocks`, `axes_dim`, `qkv_bias`: the widths;
          ``hidden = sum(axes_dim) * num_heads``.
        - `theta`, `id_embedding_strategy`, `grid`: see above.
        - `token_ids`: ``(num_scalars,)``, the ID (table row or ``pos1d`` index) of each token
          (default ``arange``).
        - `has_metadata`: ``(num_scalars,)`` bools, the tokens that take a coordinate in
          ``metadata`` (default none); needs ``id_embedding_strategy`` ``absolute`` or ``pos1d``.
        - `metadata_scale`: RoPE position per unit of coordinate (default ``num_scalars``:
          coordinates scaled to ``[0, 1]`` span as many positions as there are tokens).
        - `compute_dtype`: dtype of the blocks (parameters stay float32).
        - `key`: a `jax.random` key.
        """
        check_positive_ints(num_scalars=num_scalars)
        self.num_scalars = num_scalars
        self.mlp_ratio = float(mlp_ratio)
        self.num_heads = num_heads
        self.depth_single_blocks = depth_single_blocks
        self.axes_dim = tuple(int(a) for a in axes_dim)
        self.qkv_bias = bool(qkv_bias)
        self.id_embedding_strategy = id_embedding_strategy
        self.grid = None if grid is None else tuple(grid)
        self.compute_dtype = compute_dtype_name(compute_dtype)
        hidden = check_flux_hyperparameters(
            num_heads=num_heads,
            depth_single_blocks=depth_single_blocks,
            axes_dim=self.axes_dim,
            mlp_ratio=self.mlp_ratio,
            theta=float(10 * num_scalars if theta is None else theta),
        )
        if depth_single_blocks < 1:
            raise ValueError(f"`depth_single_blocks` must be >= 1, got {depth_single_blocks}.")
        self.token_ids, self.has_metadata = token_metadata(num_scalars, token_ids, has_metadata)
        if any(self.has_metadata):
            check_metadata_strategy(id_embedding_strategy)
        self.metadata_scale, self.theta = rope_metadata_scale(
            self.has_metadata, metadata_scale, num_scalars, theta, 10 * num_scalars
        )
        kv, ki, kc, kt, kb, kf = jr.split(key, 6)
        self.value_in = eqx.nn.Linear("scalar", hidden, key=kv)
        self.ids = IdEmbedding(
            id_embedding_strategy, num_scalars, hidden, axes_dim=self.axes_dim, grid=self.grid,
            key=ki,
        )
        self.condition_embedding = 0.5 * jr.normal(kc, (2, hidden))
        self.time_embedding = TimeEmbedding(hidden, key=kt)
        block_args = (hidden, num_heads, self.mlp_ratio, self.qkv_bias)
        self.single_blocks = make_stack(
            lambda k: SingleStreamBlock(*block_args, key=k), depth_single_blocks, key=kb
        )
        self.final_layer = FinalLayer(hidden, 1, key=kf)

    @classmethod
    def for_data(
        cls,
        data: Mapping[str, NodeData],
        *,
        key: Key,
        embeddings: Mapping[str, eqx.Module] | None = None,
        **hyperparameters,
    ) -> "Flux1Joint | EmbeddedModel":
        """A Flux1Joint with one token per scalar of the named data ``{name: (N, *shape)}``;
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
            "mlp_ratio": self.mlp_ratio,
            "num_heads": self.num_heads,
            "depth_single_blocks": self.depth_single_blocks,
            "axes_dim": self.axes_dim,
            "qkv_bias": self.qkv_bias,
            "theta": self.theta,
            "id_embedding_strategy": self.id_embedding_strategy,
            "grid": self.grid,
            "compute_dtype": self.compute_dtype,
            **token_config(self.token_ids, self.has_metadata, self.metadata_scale),
        }

    def __call__(
        self, t: Scalar, x: Flat, condition_mask: ConditionMask, *,
        edge_mask: EdgeMask | None = None,
        ids: Float[Array, "num_scalars axes"] | None = None,
        metadata: Float[Array, " num_scalars"] | None = None,
    ) -> Flat:
        """See `AbstractModel`; ``ids`` overrides the default token positions (those of
        ``token_ids`` in ``self.ids.default_ids()``), shaped like ``self.ids.default_ids()``;
        ``metadata (num_scalars,)`` is each token's coordinate, read where ``has_metadata``
        (required then) as its RoPE position ``metadata * metadata_scale``."""
        n = self.num_scalars
        default = self.ids.default_ids()
        check_shapes(
            x=(x, (n,)), condition_mask=(condition_mask, (n,)), edge_mask=(edge_mask, (n, n)),
            ids=(ids, default.shape), metadata=(metadata, (n,)),
        )
        check_metadata(self, metadata)
        if edge_mask is not None:
            edge_mask = ensure_diagonal(edge_mask)
        if ids is None and self.token_ids != tuple(range(n)):
            ids = default[np.asarray(self.token_ids)]  # tokens that share an ID share a row
        ids = default if ids is None else ids
        dtype = self.compute_dtype
        h = (
            jax.vmap(self.value_in)(x)
            + self.ids.additive(ids)
            + self.condition_embedding[condition_mask.astype(jnp.int32)]
        )
        positions = self.ids.rope_positions(ids)
        if any(self.has_metadata):
            positions = metadata_rope_positions(
                positions, self.has_metadata, metadata * self.metadata_scale
            )
        angles = rope_angles(positions, self.axes_dim, self.theta)
        vec = self.time_embedding(t)
        low = vec.astype(dtype)
        h = run_stack(
            self.single_blocks, h.astype(dtype), lambda block, h: block(h, low, angles, edge_mask), dtype
        )
        return self.final_layer(h.astype(jnp.float32), vec)[:, 0]
