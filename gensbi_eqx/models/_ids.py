"""Token-ID embeddings for the Flux transformers: where each token sits, as learned vectors,
fixed sinusoidal features added to the tokens, or rotary embeddings (RoPE) of queries and keys.

Token positions ("ids") are float32 arrays ``(num_tokens, axes)``, one column per position axis,
so that continuous coordinates (observation times, pixel centres) work as well as indices.

RoPE follows Su et al. (RoFormer, 2021) in Flux's multi-axis form: a head's features are split
into blocks of ``axes_dim[a]`` features, one block per position axis, and each block is rotated
in consecutive pairs by ``pos_a * theta^(-2k / axes_dim[a])``. Attention scores then depend on
positions only through their differences.
"""

import numbers

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from .._custom_types import Array, Float, Key


STRATEGIES = ("absolute", "pos1d", "pos2d", "rope1d", "rope2d", "rope")
_ROPE = ("rope1d", "rope2d", "rope")
_TWO_D = ("pos2d", "rope2d")
METADATA_STRATEGIES = ("absolute", "pos1d")  # those that leave RoPE free for coordinates
_SINUSOID_BASE = 10000.0


def _check_strategy(strategy: str) -> None:
    if strategy not in STRATEGIES:
        raise ValueError(f"`strategy` must be one of {STRATEGIES}, got {strategy!r}.")


def _check_axes_dim(axes_dim: tuple[int, ...], min_axes: int = 1) -> None:
    if (
        len(axes_dim) < min_axes
        or any(not isinstance(a, int) or isinstance(a, bool) or a < 2 or a % 2 for a in axes_dim)
    ):
        raise ValueError(
            f"`axes_dim` must be a tuple of at least {min_axes} positive even ints (features "
            f"per position axis, rotated in pairs), got {axes_dim!r}."
        )


def _check_grid(strategy: str, grid: tuple[int, int] | None, num_tokens: int) -> None:
    if grid is None:
        raise ValueError(
            f"`grid` (height, width) is required for the 2-D strategy {strategy!r}, got None."
        )
    if len(grid) != 2 or any(not isinstance(g, numbers.Integral) or g < 1 for g in grid):
        raise ValueError(f"`grid` must be a pair (height, width) of positive ints, got {grid!r}.")
    if grid[0] * grid[1] != num_tokens:
        raise ValueError(
            f"`grid` must have height * width == num_tokens == {num_tokens}, got {grid!r} "
            f"({grid[0] * grid[1]} tokens)."
        )


def sequence_ids(length: int) -> Float[Array, "length 1"]:
    """Positions ``0., 1., ..., length - 1`` of a sequence, shape ``(length, 1)``."""
    return jnp.arange(length, dtype=jnp.float32)[:, None]


def grid_ids(height: int, width: int) -> Float[Array, "num_tokens 2"]:
    """Row-major positions on a ``height x width`` grid, shape ``(height * width, 2)``: row
    ``i * width + j`` is ``(i, j)``."""
    rows, cols = jnp.meshgrid(
        jnp.arange(height, dtype=jnp.float32), jnp.arange(width, dtype=jnp.float32), indexing="ij"
    )
    return jnp.stack([rows.ravel(), cols.ravel()], axis=1)


def num_id_axes(strategy: str, axes_dim: tuple[int, ...]) -> int:
    """Number of position columns a strategy's ids have: 1 for ``absolute``/``pos1d``/
    ``rope1d``, 2 for ``pos2d``/``rope2d``, ``len(axes_dim)`` for ``rope``."""
    _check_strategy(strategy)
    if strategy == "rope":
        return len(axes_dim)
    return 2 if strategy in _TWO_D else 1


def default_ids(
    strategy: str, num_tokens: int, grid: tuple[int, int] | None, axes_dim: tuple[int, ...]
) -> Float[Array, "num_tokens axes"]:
    """Default positions ``(num_tokens, num_id_axes(strategy, axes_dim))``: `grid_ids` of
    ``grid`` for the 2-D strategies (``grid`` required, ``height * width == num_tokens``),
    `sequence_ids` otherwise (zero-padded to ``len(axes_dim)`` columns for ``rope``)."""
    axes = num_id_axes(strategy, axes_dim)
    if strategy == "rope":
        _check_axes_dim(axes_dim)
    if strategy in _TWO_D:
        _check_grid(strategy, grid, num_tokens)
        return grid_ids(int(grid[0]), int(grid[1]))
    ids = sequence_ids(num_tokens)
    return jnp.pad(ids, ((0, 0), (0, axes - 1)))


def rope_angles(
    positions: Float[Array, "num_tokens axes"], axes_dim: tuple[int, ...], theta: float
) -> Float[Array, "num_tokens half_head_dim"]:
    """Rotation angles ``(num_tokens, sum(axes_dim) // 2)`` for `apply_rope`.

    Axis ``a`` contributes ``axes_dim[a] // 2`` angles ``positions[:, a] * theta^(-2k /
    axes_dim[a])``. Positions with fewer columns than ``len(axes_dim)`` are zero-padded (those
    features are not rotated); more columns are an error.
    """
    _check_axes_dim(axes_dim)
    if positions.ndim != 2 or positions.shape[1] > len(axes_dim):
        raise ValueError(
            f"`positions` must have shape (num_tokens, <= {len(axes_dim)}) (one column per "
            f"entry of axes_dim at most), got {positions.shape}."
        )
    positions = positions.astype(jnp.float32)
    angles = []
    for a, d in enumerate(axes_dim):
        if a >= positions.shape[1]:
            angles.append(jnp.zeros((positions.shape[0], d // 2), jnp.float32))
            continue
        frequencies = np.float32(theta) ** (-np.arange(0, d, 2, dtype=np.float32) / np.float32(d))
        angles.append(positions[:, a, None] * jnp.asarray(frequencies, jnp.float32))
    return jnp.concatenate(angles, axis=1)


def apply_rope(
    x: Float[Array, "num_tokens heads head_dim"], angles: Float[Array, "num_tokens half_head_dim"]
) -> Float[Array, "num_tokens heads head_dim"]:
    """Rotate each consecutive feature pair ``(2k, 2k + 1)`` of every head by ``angles[:, k]``.

    Computed in (at least) float32 and cast back to ``x``'s dtype, so bf16 inputs keep accurate
    rotations.
    """
    n, heads, head_dim = x.shape
    if angles.shape != (n, head_dim // 2) or head_dim % 2:
        raise ValueError(
            f"`angles` must have shape (num_tokens, head_dim // 2) = ({n}, {head_dim / 2:g}) for "
            f"`x` of shape {x.shape}, got {angles.shape}."
        )
    compute = jnp.promote_types(x.dtype, jnp.float32)
    pairs = x.astype(compute).reshape(n, heads, head_dim // 2, 2)
    cos = jnp.cos(angles).astype(compute)[:, None, :]
    sin = jnp.sin(angles).astype(compute)[:, None, :]
    even, odd = pairs[..., 0], pairs[..., 1]
    rotated = jnp.stack([even * cos - odd * sin, even * sin + odd * cos], axis=-1)
    return rotated.reshape(x.shape).astype(x.dtype)


def check_metadata_strategy(strategy: str, argument: str = "id_embedding_strategy") -> None:
    """Tokens with metadata take their RoPE positions from their coordinates, so their stream
    must use an ID strategy without RoPE or 2-D positions (`METADATA_STRATEGIES`)."""
    if strategy not in METADATA_STRATEGIES:
        raise ValueError(
            f"`{argument}` must be 'absolute' or 'pos1d' where tokens have metadata, got "
            f"{strategy!r}: tokens with metadata take their RoPE positions from their "
            "coordinates, which the positions of a RoPE or 2-D strategy would clash with."
        )


def metadata_rope_positions(
    positions: Float[Array, "num_tokens axes"],
    has_metadata,
    coordinates: Float[Array, " num_tokens"],
) -> Float[Array, "num_tokens axes"]:
    """RoPE ``positions`` with the rows of tokens with metadata (``has_metadata``, static
    bools) replaced by ``(coordinate, 0, ..., 0)``: real-valued positions on axis 0."""
    at_coordinate = jnp.zeros_like(positions).at[:, 0].set(coordinates.astype(positions.dtype))
    return jnp.where(np.asarray(has_metadata)[:, None], at_coordinate, positions)


def _sinusoid(positions: Float[Array, " num_tokens"], dim: int) -> Float[Array, "num_tokens dim"]:
    """``[sin(p w_k), cos(p w_k)]`` with ``w_k = base^(-2k / dim)``, ``k < dim / 2``."""
    frequencies = _SINUSOID_BASE ** (-np.arange(0, dim, 2, dtype=np.float32) / np.float32(dim))
    angles = positions[:, None] * jnp.asarray(frequencies, jnp.float32)
    return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=1)


class IdEmbedding(eqx.Module):
    """The ID embedding of ONE stream of tokens: an additive part (learned vectors for
    ``absolute``, sinusoids for ``pos1d``/``pos2d``, zero for RoPE) and RoPE positions
    (the ids for ``rope1d``/``rope2d``/``rope``, zero otherwise, which rotates nothing, so a
    non-RoPE stream can share one joint attention with a RoPE stream).

    Args:
        strategy: one of `STRATEGIES`.
        num_tokens: tokens in the stream.
        dim: token width (the additive part's width).
        axes_dim: RoPE features per position axis (the head dim is ``sum(axes_dim)``).
        grid: ``(height, width)`` with ``height * width == num_tokens``; needed by ``pos2d``
            and ``rope2d``, ignored by the others.
        key: initialises the ``absolute`` table.
    """

    table: Float[Array, "num_tokens dim"] | None
    strategy: str = eqx.field(static=True)
    num_tokens: int = eqx.field(static=True)
    dim: int = eqx.field(static=True)
    axes_dim: tuple[int, ...] = eqx.field(static=True)
    grid: tuple[int, int] | None = eqx.field(static=True)

    def __init__(
        self,
        strategy: str,
        num_tokens: int,
        dim: int,
        *,
        axes_dim: tuple[int, ...],
        grid: tuple[int, int] | None = None,
        key: Key,
    ):
        _check_strategy(strategy)
        if not isinstance(num_tokens, int) or num_tokens < 1:
            raise ValueError(f"`num_tokens` must be a positive int, got {num_tokens!r}.")
        if not isinstance(dim, int) or dim < 1:
            raise ValueError(f"`dim` must be a positive int, got {dim!r}.")
        axes_dim = tuple(axes_dim)
        if strategy == "pos1d" and dim % 2:
            raise ValueError(f"`dim` must be even for 'pos1d' (sin/cos pairs), got {dim}.")
        if strategy == "pos2d" and dim % 4:
            raise ValueError(
                f"`dim` must be a multiple of 4 for 'pos2d' (sin/cos pairs on each of 2 axes), "
                f"got {dim}."
            )
        if strategy in _ROPE:
            _check_axes_dim(axes_dim, {"rope1d": 1, "rope2d": 2, "rope": 1}[strategy])
        if strategy in _TWO_D:
            _check_grid(strategy, grid, num_tokens)
        self.strategy = strategy
        self.num_tokens = num_tokens
        self.dim = dim
        self.axes_dim = axes_dim
        self.grid = None if grid is None else tuple(int(g) for g in grid)
        # Unit-scale rows, like the values they are added to: at 0.02 (a common transformer
        # init) the tokens start indistinguishable, and a small Flux1Joint failed to learn the
        # Gaussian-linear conditionals in 1,500 steps (mean error 0.13 vs 0.01 at unit scale).
        self.table = jr.normal(key, (num_tokens, dim)) if strategy == "absolute" else None

    @property
    def uses_rope(self) -> bool:
        """Whether this stream's positions rotate queries and keys."""
        return self.strategy in _ROPE

    def default_ids(self) -> Float[Array, "num_tokens axes"]:
        """The default positions of this stream; see `default_ids`."""
        return default_ids(self.strategy, self.num_tokens, self.grid, self.axes_dim)

    def _check_ids(self, ids: Array) -> None:
        expected = (self.num_tokens, num_id_axes(self.strategy, self.axes_dim))
        if ids.shape != expected:
            raise ValueError(
                f"`ids` must have shape {expected} for strategy {self.strategy!r}, got {ids.shape}."
            )

    def additive(self, ids: Float[Array, "num_tokens axes"]) -> Float[Array, "num_tokens dim"]:
        """What to add to the tokens, ``(num_tokens, dim)``.

        ``absolute``: row ``round(ids[:, 0])`` of the learned table, clamped to
        ``[0, num_tokens - 1]``; ``pos1d``/``pos2d``: sinusoids of the ids (for ``pos2d`` the
        first ``dim / 2`` features encode ``ids[:, 0]``, the rest ``ids[:, 1]``); RoPE: zeros.
        """
        self._check_ids(ids)
        if self.strategy == "absolute":
            index = jnp.clip(jnp.round(ids[:, 0]), 0, self.num_tokens - 1).astype(jnp.int32)
            return self.table[index]
        if self.strategy == "pos1d":
            return _sinusoid(ids[:, 0], self.dim)
        if self.strategy == "pos2d":
            half = self.dim // 2
            return jnp.concatenate([_sinusoid(ids[:, 0], half), _sinusoid(ids[:, 1], half)], axis=1)
        return jnp.zeros((self.num_tokens, self.dim), jnp.float32)

    def rope_positions(self, ids: Float[Array, "num_tokens axes"]) -> Float[Array, "num_tokens rope_axes"]:
        """RoPE positions ``(num_tokens, len(axes_dim))``: the ids zero-padded to
        ``len(axes_dim)`` columns for RoPE strategies, zeros otherwise."""
        self._check_ids(ids)
        rope_axes = len(self.axes_dim)
        if not self.uses_rope:
            return jnp.zeros((self.num_tokens, rope_axes), jnp.float32)
        return jnp.pad(ids.astype(jnp.float32), ((0, 0), (0, rope_axes - ids.shape[1])))
