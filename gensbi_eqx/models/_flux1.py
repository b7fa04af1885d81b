"""Flux1: the scalable conditional model, ``p(obs tokens | cond tokens)``."""

from collections.abc import Mapping, Sequence
from typing import Any

import equinox as eqx
from jax.typing import DTypeLike
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .._custom_types import Array, ConditionMask, EdgeMask, Float, Key, Scalar, Flat
from ..data import NodeData, NodeLayout, Series
from ._base import (
    AbstractModel,
    check_metadata,
    check_positive_ints,
    check_shapes,
    layout_metadata,
    rope_metadata_scale,
    token_config,
    token_metadata,
)
from ._embedded import EmbeddedModel, embed
from ._flux_blocks import (
    DoubleStreamBlock,
    FinalLayer,
    SingleStreamBlock,
    TimeEmbedding,
    check_flux_hyperparameters,
)
from ._ids import IdEmbedding, check_metadata_strategy, metadata_rope_positions, rope_angles
from ._precision import compute_dtype_name
from ._stack import make_stack, run_stack


def _channels_of(layout: NodeLayout, names, role: str) -> int:
    channels = {name: layout.channels(name) for name in names}
    if len(set(channels.values())) != 1:
        raise ValueError(
            f"The {role} nodes must share one number of channels per token, got {channels}."
        )
    return next(iter(channels.values()))


def _grid_of(layout: NodeLayout, names) -> tuple[int, int] | None:
    """A single ``(height, width, channels)`` node is a grid of tokens."""
    shapes = [layout.shapes[layout.names.index(n)] for n in names]
    return tuple(shapes[0][:2]) if len(shapes) == 1 and len(shapes[0]) == 3 else None


def check_one_time_per_token(
    data: Mapping[str, NodeData], layout: NodeLayout, argument: str = "data"
) -> None:
    """A Flux1 token is a row of channels with one RoPE position: refuse per-channel times in
    the `Series` nodes of ``data`` (training data, or a query's condition)."""
    for name in layout.metadata_nodes:
        shape = layout.shapes[layout.names.index(name)]
        node = data.get(name)
        if len(shape) != 2 or not isinstance(node, Series):
            continue
        _, times = node.aligned(f"{argument}[{name!r}]", len(shape))
        if not (times == times[..., :1]).all():
            raise ValueError(
                f"`{argument}[{name!r}].times` differ between the channels of a point; Flux1 "
                "reads one time per token (a row of channels), so values (..., T, C) need times "
                "(T,) or (..., T). Use Flux1Joint or the Simformer for a time per channel."
            )


def _local_ids(index: np.ndarray, token_ids: tuple[int, ...], stream: str) -> np.ndarray:
    """Stream-local ID of each token of a stream (``index``: its ``(tokens, channels)`` flat
    positions): the position in the stream of the token whose first scalar is
    ``token_ids[first scalar]``."""
    position = {int(first): k for k, first in enumerate(index[:, 0])}
    shared = [token_ids[first] for first in index[:, 0]]
    unknown = sorted({s for s in shared if s not in position})
    if unknown:
        raise ValueError(
            f"`token_ids` must map the first scalar of each {stream} token to the first scalar "
            f"of a {stream} token (Flux1 has one ID per token), got ids {unknown} for the "
            f"{stream} tokens starting at {index[:, 0].tolist()}."
        )
    return np.array([position[s] for s in shared], dtype=np.int32)


def _shared(default: Array, local: np.ndarray) -> Array:
    """The default ids of the tokens whose IDs the stream's tokens use."""
    return default if (local == np.arange(len(local))).all() else default[local]


class Flux1(AbstractModel):
    """Conditional Flux transformer: obs tokens (what is inferred, e.g. ``theta``) and cond
    tokens (what is conditioned on, e.g. ``x``) get their own input projections and ID
    embeddings; ``depth`` double-stream (MMDiT) blocks keep separate weights per stream with
    joint attention, then ``depth_single_blocks`` single-stream blocks run over
    ``concat[cond, obs]``; a modulated final layer maps obs tokens back to values.

    It answers ONE conditional, the one it was built for: ``conditioned[i]`` is True for the
    scalars it conditions on. The condition mask passed to it is not read; `gensbi_eqx.fit`
    trains it on that conditional only and `Estimator.sample` refuses any other.

    Tokens have channels: ``dim_obs`` obs tokens of ``in_channels`` scalars and ``dim_cond``
    cond tokens of ``context_in_dim`` scalars (a node shaped ``(tokens, channels)`` is one
    token per row). Width ``hidden = sum(axes_dim) * num_heads``.

    ``id_embedding_strategy = (obs_kind, cond_kind)``, each one of ``absolute``, ``pos1d``,
    ``pos2d``, ``rope1d``, ``rope2d``, ``rope``; 2-D kinds need ``obs_grid``/``cond_grid``
    ``(height, width)``. ``theta`` is the RoPE base (default ``10 * dim_obs``, or ``10 *
    metadata_scale`` with metadata tokens). Defaults
    follow the GenSBI model card (about 10 features per head, twice as many single- as
    double-stream blocks).

    Tokens with metadata (``has_metadata``; e.g. the points of a series, each with its time)
    are rotated by RoPE at the real-valued position ``metadata * metadata_scale`` (axis 0, in
    either stream), and share one ID per node (``token_ids``), so they are told apart by their
    coordinate alone and the model is equivariant to reordering them. A token reads the
    metadata and ID of its first scalar. `Flux1.for_data` sets both from `Series` nodes.

    The settings are the static fields below, named as the constructor's arguments (with
    defaults resolved: ``theta``, ``metadata_scale``); `config` gives them back as keyword
    arguments and `from_config` rebuilds the model.
    """

    obs_in: eqx.nn.Linear
    cond_in: eqx.nn.Linear
    obs_ids: IdEmbedding
    cond_ids: IdEmbedding
    time_embedding: TimeEmbedding
    double_blocks: DoubleStreamBlock | None
    single_blocks: SingleStreamBlock | None
    final_layer: FinalLayer
    dim_obs: int = eqx.field(static=True)
    dim_cond: int = eqx.field(static=True)
    in_channels: int = eqx.field(static=True)
    context_in_dim: int = eqx.field(static=True)
    mlp_ratio: float = eqx.field(static=True)
    num_heads: int = eqx.field(static=True)
    depth: int = eqx.field(static=True)
    depth_single_blocks: int = eqx.field(static=True)
    axes_dim: tuple[int, ...] = eqx.field(static=True)
    qkv_bias: bool = eqx.field(static=True)
    theta: float = eqx.field(static=True)
    id_embedding_strategy: tuple[str, str] = eqx.field(static=True)
    obs_grid: tuple[int, int] | None = eqx.field(static=True)
    cond_grid: tuple[int, int] | None = eqx.field(static=True)
    compute_dtype: str = eqx.field(static=True)
    conditioned: tuple[bool, ...] = eqx.field(static=True)
    token_ids: tuple[int, ...] = eqx.field(static=True)
    has_metadata: tuple[bool, ...] = eqx.field(static=True)
    # None without metadata tokens (nothing reads it then).
    metadata_scale: float | None = eqx.field(static=True)

    def __init__(
        self,
        dim_obs: int,
        dim_cond: int,
        *,
        in_channels: int = 1,
        context_in_dim: int = 1,
        mlp_ratio: float | int = 4.0,
        num_heads: int = 4,
        depth: int = 8,
        depth_single_blocks: int = 16,
        axes_dim: Sequence[int] = (10,),
        qkv_bias: bool = True,
        theta: float | int | None = None,
        id_embedding_strategy: Sequence[str] = ("absolute", "absolute"),
        obs_grid: Sequence[int] | None = None,
        cond_grid: Sequence[int] | None = None,
        conditioned: Sequence[bool] | None = None,
        token_ids: Sequence[int] | None = None,
        has_metadata: Sequence[bool] | None = None,
        metadata_scale: float | int | None = None,
        compute_dtype: DTypeLike = "float32",
        key: Key,
    ):
        """**Arguments:**
        - `dim_obs`, `dim_cond`: obs and cond tokens per example.
        - `in_channels`, `context_in_dim`: scalars per obs and per cond token.
        - `mlp_ratio`, `num_heads`, `depth`, `depth_single_blocks`, `axes_dim`, `qkv_bias`: the
          widths; ``hidden = sum(axes_dim) * num_heads``.
        - `theta`, `id_embedding_strategy`, `obs_grid`, `cond_grid`: see above.
        - `conditioned`: ``(num_scalars,)`` bools, the scalars conditioned on (default: the obs
          scalars first, then the cond scalars).
        - `token_ids`: ``(num_scalars,)``, per scalar; a token's ID (table row or ``pos1d``
          index in its stream) is that of the token whose first scalar is
          ``token_ids[its first scalar]`` (default ``arange``: its own).
        - `has_metadata`: ``(num_scalars,)`` bools, the scalars that take a coordinate in
          ``metadata`` (default none), the same for the channels of a token; a stream with such
          tokens needs the ID strategy ``absolute`` or ``pos1d``.
        - `metadata_scale`: RoPE position per unit of coordinate (default
          ``dim_obs + dim_cond``: coordinates scaled to ``[0, 1]`` span as many positions as
          there are tokens).
        - `compute_dtype`: dtype of the blocks (parameters stay float32).
        - `key`: a `jax.random` key.
        """
        check_positive_ints(
            dim_obs=dim_obs, dim_cond=dim_cond, in_channels=in_channels, context_in_dim=context_in_dim
        )
        if len(id_embedding_strategy) != 2:
            raise ValueError(
                "`id_embedding_strategy` must be a pair (obs_kind, cond_kind), got "
                f"{id_embedding_strategy!r}."
            )
        num_obs, num_cond = dim_obs * in_channels, dim_cond * context_in_dim
        if conditioned is None:
            conditioned = (False,) * num_obs + (True,) * num_cond
        conditioned = tuple(bool(c) for c in conditioned)
        if len(conditioned) != num_obs + num_cond or sum(conditioned) != num_cond:
            raise ValueError(
                f"`conditioned` must mark {num_cond} of {num_obs + num_cond} scalars "
                f"(dim_cond * context_in_dim of dim_obs * in_channels + dim_cond * "
                f"context_in_dim), got {sum(conditioned)} of {len(conditioned)}."
            )
        self.dim_obs = dim_obs
        self.dim_cond = dim_cond
        self.in_channels = in_channels
        self.context_in_dim = context_in_dim
        self.mlp_ratio = float(mlp_ratio)
        self.num_heads = num_heads
        self.depth = depth
        self.depth_single_blocks = depth_single_blocks
        self.axes_dim = tuple(int(a) for a in axes_dim)
        self.qkv_bias = bool(qkv_bias)
        self.id_embedding_strategy = tuple(id_embedding_strategy)
        self.obs_grid = None if obs_grid is None else tuple(obs_grid)
        self.cond_grid = None if cond_grid is None else tuple(cond_grid)
        self.compute_dtype = compute_dtype_name(compute_dtype)
        hidden = check_flux_hyperparameters(
            num_heads=num_heads,
            depth=depth,
            depth_single_blocks=depth_single_blocks,
            axes_dim=self.axes_dim,
            mlp_ratio=self.mlp_ratio,
            theta=float(10 * dim_obs if theta is None else theta),
        )
        if depth + depth_single_blocks < 1:
            raise ValueError("`depth` + `depth_single_blocks` must be >= 1, got 0.")
        obs_kind, cond_kind = self.id_embedding_strategy
        num_scalars = num_obs + num_cond
        token_ids, has_metadata = token_metadata(num_scalars, token_ids, has_metadata)
        flags = np.asarray(has_metadata)
        is_cond = np.asarray(conditioned)
        obs_index = np.flatnonzero(~is_cond).reshape(dim_obs, in_channels)
        cond_index = np.flatnonzero(is_cond).reshape(dim_cond, context_in_dim)
        for stream, index, kind in (("obs", obs_index, obs_kind), ("cond", cond_index, cond_kind)):
            token_flags = flags[index]
            if (token_flags != token_flags[:, :1]).any():
                raise ValueError(
                    f"`has_metadata` must be the same for the channels of each {stream} token "
                    "(a token has one coordinate)."
                )
            _local_ids(index, token_ids, stream)
            if token_flags.any():
                check_metadata_strategy(kind, f"id_embedding_strategy ({stream} stream)")
        self.conditioned = conditioned
        self.token_ids = token_ids
        self.has_metadata = has_metadata
        self.metadata_scale, self.theta = rope_metadata_scale(
            has_metadata, metadata_scale, dim_obs + dim_cond, theta, 10 * dim_obs
        )
        k = jr.split(key, 8)
        self.obs_in = eqx.nn.Linear(in_channels, hidden, key=k[0])
        self.cond_in = eqx.nn.Linear(context_in_dim, hidden, key=k[1])
        self.obs_ids = IdEmbedding(
            obs_kind, dim_obs, hidden, axes_dim=self.axes_dim, grid=self.obs_grid, key=k[2]
        )
        self.cond_ids = IdEmbedding(
            cond_kind, dim_cond, hidden, axes_dim=self.axes_dim, grid=self.cond_grid, key=k[3]
        )
        self.time_embedding = TimeEmbedding(hidden, key=k[4])
        block_args = (hidden, num_heads, self.mlp_ratio, self.qkv_bias)
        self.double_blocks = (
            make_stack(lambda kk: DoubleStreamBlock(*block_args, key=kk), depth, key=k[5])
            if depth else None
        )
        self.single_blocks = (
            make_stack(lambda kk: SingleStreamBlock(*block_args, key=kk), depth_single_blocks, key=k[6])
            if depth_single_blocks else None
        )
        self.final_layer = FinalLayer(hidden, in_channels, key=k[7])

    @classmethod
    def for_data(
        cls,
        data: Mapping[str, NodeData],
        *,
        condition_on: str | Sequence[str],
        key: Key,
        embeddings: Mapping[str, eqx.Module] | None = None,
        **hyperparameters,
    ) -> "Flux1 | EmbeddedModel":
        """A Flux1 for ``p(other nodes | condition_on)`` on named data ``{name: (N, *shape)}``.

        Channels follow the data: a node shaped ``(N, tokens, channels)`` gives ``tokens``
        tokens of ``channels`` scalars; ``(N, d)`` gives ``d`` one-channel tokens. A single node
        shaped ``(N, height, width, channels)`` is a grid for the 2-D ID strategies. The tokens
        of `Series` nodes take their times as metadata, one time per token: values
        ``(N, T, C)`` need times ``(T,)`` or ``(N, T)`` (or the same for every channel).
        ``embeddings = {name: net}`` reads nodes of ``condition_on`` through embedding networks
        (`EmbeddedModel`): one cond token per summary (or per row of ``(k, c)`` summaries).
        """
        if embeddings is not None:
            names = (condition_on,) if isinstance(condition_on, str) else tuple(condition_on)
            inferred = [n for n in embeddings if n not in names]
            if inferred:
                raise ValueError(
                    f"`embeddings`: node(s) {inferred} are inferred, not in `condition_on`; "
                    "an embedded node can only be conditioned on."
                )
            return embed(cls.for_data, data, embeddings, condition_on=condition_on, key=key,
                         **hyperparameters)
        layout = NodeLayout.from_data(data)
        if layout.has_metadata:
            check_one_time_per_token(data, layout)
        hyperparameters = {**layout_metadata(layout), **hyperparameters}
        condition_on = (condition_on,) if isinstance(condition_on, str) else tuple(condition_on)
        layout.check_names(condition_on, "condition_on")
        inferred = tuple(n for n in layout.names if n not in condition_on)
        if not condition_on or not inferred:
            raise ValueError(
                "`condition_on` must name some but not all nodes of `data`; got "
                f"{list(condition_on)} of {list(layout.names)}."
            )
        in_channels = _channels_of(layout, inferred, "inferred")
        context_in_dim = _channels_of(layout, condition_on, "conditioning")
        conditioned = layout.node_mask(condition_on)
        hyperparameters.setdefault("obs_grid", _grid_of(layout, inferred))
        hyperparameters.setdefault("cond_grid", _grid_of(layout, condition_on))
        return cls(
            int((~conditioned).sum()) // in_channels,
            int(conditioned.sum()) // context_in_dim,
            in_channels=in_channels,
            context_in_dim=context_in_dim,
            conditioned=tuple(conditioned.tolist()),
            key=key,
            **hyperparameters,
        )

    @property
    def num_scalars(self) -> int:
        return len(self.conditioned)

    def check_data(self, data, layout, argument: str = "data") -> None:
        check_one_time_per_token(data, layout, argument)

    @property
    def fixed_condition_mask(self) -> tuple[bool, ...]:
        return self.conditioned

    @property
    def config(self) -> dict[str, Any]:
        return {
            "dim_obs": self.dim_obs,
            "dim_cond": self.dim_cond,
            "in_channels": self.in_channels,
            "context_in_dim": self.context_in_dim,
            "mlp_ratio": self.mlp_ratio,
            "num_heads": self.num_heads,
            "depth": self.depth,
            "depth_single_blocks": self.depth_single_blocks,
            "axes_dim": self.axes_dim,
            "qkv_bias": self.qkv_bias,
            "theta": self.theta,
            "id_embedding_strategy": self.id_embedding_strategy,
            "obs_grid": self.obs_grid,
            "cond_grid": self.cond_grid,
            "compute_dtype": self.compute_dtype,
            **token_config(self.token_ids, self.has_metadata, self.metadata_scale),
            "conditioned": list(self.conditioned),
        }

    def _indices(self):
        """Static ``(dim_obs, in_channels)`` and ``(dim_cond, context_in_dim)`` positions of the
        obs and cond scalars in the flat token vector."""
        conditioned = np.asarray(self.conditioned)
        obs = np.flatnonzero(~conditioned).reshape(self.dim_obs, self.in_channels)
        cond = np.flatnonzero(conditioned).reshape(self.dim_cond, self.context_in_dim)
        return obs, cond

    def __call__(
        self, t: Scalar, x: Flat, condition_mask: ConditionMask, *,
        edge_mask: EdgeMask | None = None,
        obs_ids: Float[Array, "dim_obs axes_obs"] | None = None,
        cond_ids: Float[Array, "dim_cond axes_cond"] | None = None,
        metadata: Float[Array, " num_scalars"] | None = None,
    ) -> Flat:
        """Returns ``(num_scalars,)``: the output at the obs scalars, zero at the cond scalars.

        ``obs_ids``/``cond_ids`` override the default token positions (e.g. real-valued
        observation times for ``rope1d``), shaped like ``IdEmbedding.default_ids()``;
        ``metadata (num_scalars,)`` is each scalar's coordinate, read at the first scalar of
        each token with metadata (required then) as its RoPE position
        ``metadata * metadata_scale``, also when ids are given.
        """
        n = self.num_scalars
        check_shapes(x=(x, (n,)), condition_mask=(condition_mask, (n,)), metadata=(metadata, (n,)))
        check_metadata(self, metadata)
        if edge_mask is not None:
            raise ValueError(
                "Flux1 does not take an `edge_mask` (its attention is dense); use Flux1Joint or "
                "the Simformer for attention masks."
            )
        dtype = self.compute_dtype
        obs_index, cond_index = self._indices()
        obs_default, cond_default = self.obs_ids.default_ids(), self.cond_ids.default_ids()
        check_shapes(obs_ids=(obs_ids, obs_default.shape), cond_ids=(cond_ids, cond_default.shape))
        if obs_ids is None:
            obs_ids = _shared(obs_default, _local_ids(obs_index, self.token_ids, "obs"))
        if cond_ids is None:
            cond_ids = _shared(cond_default, _local_ids(cond_index, self.token_ids, "cond"))
        obs = jax.vmap(self.obs_in)(x[obs_index]) + self.obs_ids.additive(obs_ids)
        cond = jax.vmap(self.cond_in)(x[cond_index]) + self.cond_ids.additive(cond_ids)
        positions = jnp.concatenate(
            [self.cond_ids.rope_positions(cond_ids), self.obs_ids.rope_positions(obs_ids)]
        )
        if any(self.has_metadata):
            first = np.concatenate([cond_index[:, 0], obs_index[:, 0]])  # joint order
            positions = metadata_rope_positions(
                positions,
                np.asarray(self.has_metadata)[first],
                metadata[first] * self.metadata_scale,
            )
        angles = rope_angles(positions, self.axes_dim, self.theta)
        vec = self.time_embedding(t)
        low = vec.astype(dtype)
        streams = (cond.astype(dtype), obs.astype(dtype))
        if self.double_blocks is not None:
            streams = run_stack(
                self.double_blocks, streams, lambda block, s: block(s, low, angles), dtype
            )
        h = jnp.concatenate(streams)
        if self.single_blocks is not None:
            h = run_stack(self.single_blocks, h, lambda block, h: block(h, low, angles), dtype)
        out = self.final_layer(h[self.dim_cond :].astype(jnp.float32), vec)
        return jnp.zeros(n, out.dtype).at[obs_index.ravel()].set(out.ravel())
