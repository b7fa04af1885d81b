"""Flux1Joint: the scalable joint model, one token per scalar in single-stream Flux blocks."""

from collections.abc import Mapping, Sequence
from typing import Any

import equinox as eqx
from jax.typing import DTypeLike
import jax
import jax.numpy as jnp
import jax.random as jr

from .._custom_types import Array, ArrayLike, ConditionMask, EdgeMask, Float, Key, Scalar, Tokens
from ..data import NodeLayout
from ._base import AbstractModel, check_positive_ints, check_shapes
from ._flux_blocks import FinalLayer, SingleStreamBlock, TimeEmbedding, check_flux_hyperparameters
from ._ids import IdEmbedding, rope_angles
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
    ``rope2d``, ``rope``; ``theta`` is the RoPE base (default ``10 * num_nodes``).
    """

    value_in: eqx.nn.Linear
    ids: IdEmbedding
    condition_embedding: Float[Array, "2 hidden"]
    time_embedding: TimeEmbedding
    single_blocks: SingleStreamBlock
    final_layer: FinalLayer
    num_nodes: int = eqx.field(static=True)
    hyperparameters: tuple[tuple[str, Any], ...] = eqx.field(static=True)

    def __init__(
        self,
        num_nodes: int,
        *,
        mlp_ratio: float | int = 4.0,
        num_heads: int = 4,
        depth_single_blocks: int = 16,
        axes_dim: Sequence[int] = (10,),
        qkv_bias: bool = True,
        theta: float | int | None = None,
        id_embedding_strategy: str = "absolute",
        grid: Sequence[int] | None = None,
        compute_dtype: DTypeLike = "float32",
        key: Key,
    ):
        check_positive_ints(num_nodes=num_nodes)
        hyper = dict(
            mlp_ratio=float(mlp_ratio),
            num_heads=num_heads,
            depth_single_blocks=depth_single_blocks,
            axes_dim=tuple(int(a) for a in axes_dim),
            qkv_bias=bool(qkv_bias),
            theta=float(10 * num_nodes if theta is None else theta),
            id_embedding_strategy=id_embedding_strategy,
            grid=None if grid is None else tuple(grid),
            compute_dtype=compute_dtype_name(compute_dtype),
        )
        hidden = check_flux_hyperparameters(**hyper)
        if depth_single_blocks < 1:
            raise ValueError(f"`depth_single_blocks` must be >= 1, got {depth_single_blocks}.")
        kv, ki, kc, kt, kb, kf = jr.split(key, 6)
        self.value_in = eqx.nn.Linear("scalar", hidden, key=kv)
        self.ids = IdEmbedding(
            id_embedding_strategy, num_nodes, hidden, axes_dim=hyper["axes_dim"],
            grid=hyper["grid"], key=ki,
        )
        self.condition_embedding = 0.5 * jr.normal(kc, (2, hidden))
        self.time_embedding = TimeEmbedding(hidden, key=kt)
        self.single_blocks = make_stack(
            lambda k: SingleStreamBlock(hidden, num_heads, hyper["mlp_ratio"], hyper["qkv_bias"], key=k),
            depth_single_blocks,
            key=kb,
        )
        self.final_layer = FinalLayer(hidden, 1, key=kf)
        self.num_nodes = num_nodes
        self.hyperparameters = tuple(hyper.items())

    @classmethod
    def for_data(cls, data: Mapping[str, ArrayLike], *, key: Key, **hyperparameters) -> "Flux1Joint":
        """A Flux1Joint with one token per scalar of the named data ``{name: (N, *shape)}``."""
        return cls(NodeLayout.from_data(data).num_nodes, key=key, **hyperparameters)

    @property
    def config(self) -> dict[str, Any]:
        return {"num_nodes": self.num_nodes, **dict(self.hyperparameters)}

    def __call__(
        self,
        t: Scalar,
        x: Tokens,
        condition_mask: ConditionMask,
        *,
        edge_mask: EdgeMask | None = None,
        ids: Float[Array, "num_nodes axes"] | None = None,
    ) -> Tokens:
        """See `AbstractModel`; ``ids`` overrides the default token positions, shaped like
        ``self.ids.default_ids()``."""
        n = self.num_nodes
        default = self.ids.default_ids()
        check_shapes(
            x=(x, (n,)), condition_mask=(condition_mask, (n,)), edge_mask=(edge_mask, (n, n)),
            ids=(ids, default.shape),
        )
        if edge_mask is not None:
            edge_mask = ensure_diagonal(edge_mask)
        ids = default if ids is None else ids
        hyper = dict(self.hyperparameters)
        dtype = hyper["compute_dtype"]
        h = (
            jax.vmap(self.value_in)(x)
            + self.ids.additive(ids)
            + self.condition_embedding[condition_mask.astype(jnp.int32)]
        )
        angles = rope_angles(self.ids.rope_positions(ids), hyper["axes_dim"], hyper["theta"])
        vec = self.time_embedding(t)
        low = vec.astype(dtype)
        h = run_stack(
            self.single_blocks, h.astype(dtype), lambda block, h: block(h, low, angles, edge_mask), dtype
        )
        return self.final_layer(h.astype(jnp.float32), vec)[:, 0]
