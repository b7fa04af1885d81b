"""Checkpoints: everything a training run needs to go on where it stopped, in one file.

File layout, as for saved estimators: the magic line ``GENSBI_EQX_CHECKPOINT\\n``, the header's
byte length as a decimal line, a UTF-8 JSON header (the run's fingerprint, its step, losses,
validation scores, best step and learning-rate scale), then ``eqx.tree_serialise_leaves`` of
``(model, ema, opt_state, best_ema)``. The file is replaced atomically (`atomic_writer`), so a
crash while writing leaves the previous checkpoint whole.
"""

import dataclasses
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import numpy as np

from .._atomic import atomic_writer
from .._version import __version__
from ._stopping import _positive_int

MAGIC = b"GENSBI_EQX_CHECKPOINT\n"
# 2: the default optimizer's state is one flat vector per moment (`optax.flatten`).
FORMAT_VERSION = 2


class Checkpoint(eqx.Module):
    """Write the state of a `gensbi_eqx.fit` run to ``path`` as it trains, and resume from it.

    **Arguments:**
    - `path`: the checkpoint file; its directory must exist.
    - `every`: write at the first validation point at or after every ``every`` steps since the
      last write, and when the run ends.

    Passed as ``gs.Training(checkpoint=gs.Checkpoint(path))``. If ``path`` holds a checkpoint
    of the same run (same key, data, model, method, masks, attention, settings and number of
    devices), `fit` resumes from it and ends with the same weights, EMA, optimizer state and
    losses, bit for bit, as a run that was never stopped; a checkpoint of another run is an
    error, never a silent restart. The optimizer cannot be compared: resuming with another
    optimizer is the caller's responsibility.
    """

    path: str = eqx.field(static=True)
    every: int = eqx.field(static=True)

    def __init__(self, path: str | os.PathLike, every: int = 1000):
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"`path` must be a str or path, got {type(path).__name__}.")
        _positive_int(every, "every")
        self.path = os.fspath(path)
        self.every = every


@dataclasses.dataclass
class RunState:
    """The host-side part of a run: where it is and what it has seen."""

    done: int = 0
    losses: list[float] = dataclasses.field(default_factory=list)
    validation_steps: list[int] = dataclasses.field(default_factory=list)
    validation_losses: list[float] = dataclasses.field(default_factory=list)
    best_loss: float = float("inf")
    best_step: int = 0
    lr_scale: float = 1.0
    stopped_early: bool = False


def digest(tree: Any) -> str:
    """A SHA-256 of a pytree's structure (static fields included) and of its leaves' bytes."""
    arrays, static = eqx.partition(tree, eqx.is_array)
    # Reprs of functions carry their address, which changes from process to process.
    structure = re.sub(r" at 0x[0-9a-f]+", "", str(jax.tree.structure(static)) + repr(static))
    h = hashlib.sha256(structure.encode())
    for leaf in jax.tree.leaves(arrays):
        leaf = np.asarray(jax.random.key_data(leaf) if _is_key(leaf) else leaf)
        h.update(f"{leaf.dtype}{leaf.shape}".encode())
        h.update(np.ascontiguousarray(leaf).tobytes())
    return h.hexdigest()


def _is_key(leaf) -> bool:
    return isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)


def write_checkpoint(path: str, fingerprint: dict[str, str], state: RunState, arrays) -> None:
    """Replace ``path`` with the run's ``state`` and ``arrays`` ``(model, ema, opt_state,
    best_ema)``, atomically."""
    header = {
        "format": FORMAT_VERSION,
        "library_version": __version__,
        "fingerprint": fingerprint,
        "state": dataclasses.asdict(state),
    }
    encoded = json.dumps(header).encode()
    with atomic_writer(path) as f:
        f.write(MAGIC)
        f.write(f"{len(encoded)}\n".encode())
        f.write(encoded)
        eqx.tree_serialise_leaves(f, arrays)


def read_checkpoint(path: str, fingerprint: dict[str, str], like) -> tuple[RunState, Any] | None:
    """``(state, arrays)`` from the checkpoint at ``path`` (arrays shaped like ``like``), or
    ``None`` if there is none. A file that is not a checkpoint, or one of another run, raises."""
    if not Path(path).exists():
        return None
    not_ours = ValueError(
        f"`checkpoint.path` {path!r} exists but is not a gensbi_eqx checkpoint (or is damaged); "
        "move it away or name another path."
    )
    with open(path, "rb") as f:
        if f.read(len(MAGIC)) != MAGIC:
            raise not_ours
        try:
            header = json.loads(f.read(int(f.readline())))
        except ValueError as error:
            raise not_ours from error
        if not isinstance(header, dict):
            raise not_ours
        if header.get("format") != FORMAT_VERSION:
            raise ValueError(
                f"`checkpoint.path` {path!r} has checkpoint format {header.get('format')!r} "
                f"(gensbi_eqx {header.get('library_version')}); this version reads format "
                f"{FORMAT_VERSION}. Finish the run with the version that wrote it, or start it "
                "again under another path."
            )
        try:
            state = RunState(**header["state"])
            saved = dict(header["fingerprint"])
        except (KeyError, TypeError, ValueError) as error:
            raise not_ours from error
        differ = sorted(k for k in fingerprint if saved.get(k) != fingerprint[k])
        if differ:
            raise ValueError(
                f"`checkpoint.path` {path!r} holds a checkpoint of another run: its "
                f"{', '.join(differ)} differ from this call's. Resume with the same key, data "
                "and settings, or name another path."
            )
        try:
            arrays = eqx.tree_deserialise_leaves(f, like)
        except Exception as error:
            raise not_ours from error
    return state, arrays
