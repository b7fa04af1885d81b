"""Flux1: the scalable conditional model, ``p(obs tokens | cond tokens)``."""

from collections.abc import Mapping, Sequence
from typing import Any

import equinox as eqx
from jax.typing import DTypeLike
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .._custom_types import Array, ArrayLike, ConditionMask, EdgeMask, Float, Key, Scalar, Tokens
from ..data import NodeLayout
from ._base import AbstractModel, check_positive_ints, check_shapes
from ._flux_blocks import (
    DoubleStreamBlock,
    FinalLayer,
    SingleStreamBlock,
    TimeEmbedding,
    check_flux_hyperparameters,
)
from ._ids import IdEmbedding, rope_angles
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
    ``(height, width)``. ``theta`` is the RoPE base (default ``10 * dim_obs``). Defaults
    follow the GenSBI model card (about 10 features per head, twice as many single- as
    double-stream blocks).
    """

    obs_in: eqx.nn.Linear
    cond_in: eqx.nn.Linear
    obs_ids: IdEmbedding
    cond_ids: IdEmbedding
    time_embedding: TimeEmbedding
    double_blocks: DoubleStreamBlock | None
    single_blocks: SingleStreamBlock | None
    final_layer: FinalLayer
    conditioned: tuple[bool, ...] = eqx.field(static=True)
    hyperparameters: tuple[tuple[str, Any], ...] = eqx.field(static=True)

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
        compute_dtype: DTypeLike = "float32",
        key: Key,
    ):
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
        hyper = dict(
            dim_obs=dim_obs,
            dim_cond=dim_cond,
            in_channels=in_channels,
            context_in_dim=context_in_dim,
            mlp_ratio=float(mlp_ratio),
            num_heads=num_heads,
            depth=depth,
            depth_single_blocks=depth_single_blocks,
            axes_dim=tuple(int(a) for a in axes_dim),
            qkv_bias=bool(qkv_bias),
            theta=float(10 * dim_obs if theta is None else theta),
            id_embedding_strategy=tuple(id_embedding_strategy),
            obs_grid=None if obs_grid is None else tuple(obs_grid),
            cond_grid=None if cond_grid is None else tuple(cond_grid),
            compute_dtype=compute_dtype_name(compute_dtype),
        )
        hidden = check_flux_hyperparameters(**hyper)
        if depth + depth_single_blocks < 1:
            raise ValueError("`depth` + `depth_single_blocks` must be >= 1, got 0.")
        obs_kind, cond_kind = hyper["id_embedding_strategy"]
        k = jr.split(key, 8)
        self.obs_in = eqx.nn.Linear(in_channels, hidden, key=k[0])
        self.cond_in = eqx.nn.Linear(context_in_dim, hidden, key=k[1])
        self.obs_ids = IdEmbedding(
            obs_kind, dim_obs, hidden, axes_dim=hyper["axes_dim"], grid=hyper["obs_grid"], key=k[2]
        )
        self.cond_ids = IdEmbedding(
            cond_kind, dim_cond, hidden, axes_dim=hyper["axes_dim"], grid=hyper["cond_grid"], key=k[3]
        )
        self.time_embedding = TimeEmbedding(hidden, key=k[4])
        block_args = (hidden, num_heads, hyper["mlp_ratio"], hyper["qkv_bias"])
        self.double_blocks = (
            make_stack(lambda kk: DoubleStreamBlock(*block_args, key=kk), depth, key=k[5])
            if depth else None
        )
        self.single_blocks = (
            make_stack(lambda kk: SingleStreamBlock(*block_args, key=kk), depth_single_blocks, key=k[6])
            if depth_single_blocks else None
        )
        self.final_layer = FinalLayer(hidden, in_channels, key=k[7])
        self.conditioned = conditioned
        self.hyperparameters = tuple(hyper.items())

    @classmethod
    def for_data(
        cls,
        data: Mapping[str, ArrayLike],
        *,
        condition_on: str | Sequence[str],
        key: Key,
        **hyperparameters,
    ) -> "Flux1":
        """A Flux1 for ``p(other nodes | condition_on)`` on named data ``{name: (N, *shape)}``.

        Channels follow the data: a node shaped ``(N, tokens, channels)`` gives ``tokens``
        tokens of ``channels`` scalars; ``(N, d)`` gives ``d`` one-channel tokens. A single node
        shaped ``(N, height, width, channels)`` is a grid for the 2-D ID strategies.
        """
        layout = NodeLayout.from_data(data)
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
    def num_nodes(self) -> int:
        return len(self.conditioned)

    @property
    def fixed_condition_mask(self) -> tuple[bool, ...]:
        return self.conditioned

    @property
    def config(self) -> dict[str, Any]:
        return {**dict(self.hyperparameters), "conditioned": list(self.conditioned)}

    def _indices(self):
        """Static ``(dim_obs, in_channels)`` and ``(dim_cond, context_in_dim)`` positions of the
        obs and cond scalars in the flat token vector."""
        hyper = dict(self.hyperparameters)
        conditioned = np.asarray(self.conditioned)
        obs = np.flatnonzero(~conditioned).reshape(hyper["dim_obs"], hyper["in_channels"])
        cond = np.flatnonzero(conditioned).reshape(hyper["dim_cond"], hyper["context_in_dim"])
        return obs, cond

    def __call__(
        self,
        t: Scalar,
        x: Tokens,
        condition_mask: ConditionMask,
        *,
        edge_mask: EdgeMask | None = None,
        obs_ids: Float[Array, "dim_obs axes_obs"] | None = None,
        cond_ids: Float[Array, "dim_cond axes_cond"] | None = None,
    ) -> Tokens:
        """Returns ``(num_nodes,)``: the output at the obs scalars, zero at the cond scalars.

        ``obs_ids``/``cond_ids`` override the default token positions (e.g. real-valued
        observation times for ``rope1d``), shaped like ``IdEmbedding.default_ids()``.
        """
        n = self.num_nodes
        check_shapes(x=(x, (n,)), condition_mask=(condition_mask, (n,)))
        if edge_mask is not None:
            raise ValueError(
                "Flux1 does not take an `edge_mask` (its attention is dense); use Flux1Joint or "
                "the Simformer for attention masks."
            )
        hyper = dict(self.hyperparameters)
        dtype = hyper["compute_dtype"]
        obs_index, cond_index = self._indices()
        obs_default, cond_default = self.obs_ids.default_ids(), self.cond_ids.default_ids()
        check_shapes(obs_ids=(obs_ids, obs_default.shape), cond_ids=(cond_ids, cond_default.shape))
        obs_ids = obs_default if obs_ids is None else obs_ids
        cond_ids = cond_default if cond_ids is None else cond_ids
        obs = jax.vmap(self.obs_in)(x[obs_index]) + self.obs_ids.additive(obs_ids)
        cond = jax.vmap(self.cond_in)(x[cond_index]) + self.cond_ids.additive(cond_ids)
        positions = jnp.concatenate(
            [self.cond_ids.rope_positions(cond_ids), self.obs_ids.rope_positions(obs_ids)]
        )
        angles = rope_angles(positions, hyper["axes_dim"], hyper["theta"])
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
        out = self.final_layer(h[hyper["dim_cond"] :].astype(jnp.float32), vec)
        return jnp.zeros(n, out.dtype).at[obs_index.ravel()].set(out.ravel())
