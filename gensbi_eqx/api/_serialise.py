"""Saving and loading estimators: a JSON header, then ``eqx.tree_serialise_leaves``. No pickle.

File layout: the magic line ``GENSBI_EQX\\n``, the header's byte length as a decimal line, the
UTF-8 JSON header (classes, hyperparameters, layout, history, library version), then the arrays.
"""

import json
import os
from pathlib import Path

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr

from .._atomic import atomic_writer
from .._version import __version__
from ..data import Dependencies, NodeLayout, Standardiser
from ..methods import METHODS
from ..models import MODELS, DependencyMask
from ..training import History
from ._estimator import Estimator

MAGIC = b"GENSBI_EQX\n"
FORMAT_VERSION = 1


def save(path: str | os.PathLike, estimator: Estimator) -> None:
    """Write ``estimator`` to ``path``. The file appears whole or not at all: it is written to
    a temporary file in the same directory, flushed to disk, then renamed over ``path``."""
    if not isinstance(estimator, Estimator):
        raise TypeError(f"`estimator` must be an Estimator, got {type(estimator).__name__}.")
    header = {
        "format": FORMAT_VERSION,
        "library_version": __version__,
        "model": {"class": type(estimator.model).__name__, "config": estimator.model.config},
        "method": {"class": type(estimator.method).__name__, "config": estimator.method.config},
        "layout": estimator.layout.config(),
        "has_edge_mask": estimator.edge_mask is not None,
        "attention": _attention_config(estimator.edge_mask),
        "history": None if estimator.history is None else estimator.history.to_json(),
    }
    encoded = json.dumps(header).encode()
    with atomic_writer(path) as f:
        f.write(MAGIC)
        f.write(f"{len(encoded)}\n".encode())
        f.write(encoded)
        eqx.tree_serialise_leaves(f, _arrays(estimator))


def _attention_config(edge_mask) -> dict | None:
    """How the edge mask is rebuilt on loading: a fixed mask's values travel with the arrays;
    declared dependencies travel as their declaration and policy."""
    if edge_mask is None:
        return None
    if isinstance(edge_mask, DependencyMask):
        dependencies = edge_mask.dependencies
        return {
            "kind": "dependencies",
            "policy": edge_mask.policy,
            "dependencies": None if dependencies is None else dependencies.config(),
        }
    return {"kind": "fixed"}


def _edge_mask_like(header: dict, n: int):
    """A skeleton of the saved edge mask for ``tree_deserialise_leaves``. Files written before
    dependency masks existed carry only ``has_edge_mask``."""
    attention = header.get("attention")
    if attention is None:
        return jnp.zeros((n, n), dtype=bool) if header["has_edge_mask"] else None
    if attention["kind"] == "fixed":
        return jnp.zeros((n, n), dtype=bool)
    config = attention["dependencies"]
    dependencies = None if config is None else Dependencies.from_config(config)
    return DependencyMask(jnp.zeros((n, n), dtype=bool), attention["policy"], dependencies)


def _arrays(estimator: Estimator):
    # ``time_standardiser`` is None (no leaves) without nodes with times, so files written
    # before times existed read the same.
    return (estimator.model, estimator.standardiser, estimator.edge_mask, estimator.time_standardiser)


def _read_header(f, path) -> dict:
    not_ours = ValueError(f"`path` {str(path)!r} is not a saved gensbi_eqx estimator.")
    if f.read(len(MAGIC)) != MAGIC:
        raise not_ours
    try:
        length = int(f.readline())
        header = json.loads(f.read(length))
    except ValueError as error:
        raise not_ours from error
    if header.get("format") != FORMAT_VERSION:
        raise ValueError(
            f"`path` {str(path)!r} has format {header.get('format')!r}; this version reads "
            f"format {FORMAT_VERSION}."
        )
    return header


def load(path: str | os.PathLike) -> Estimator:
    """Read an estimator written by `save`; it samples bit-identically to the saved one."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"`path` {str(path)!r} is not a file.")
    with open(path, "rb") as f:
        header = _read_header(f, path)
        model_cls = MODELS.get(header["model"]["class"])
        method_cls = METHODS.get(header["method"]["class"])
        if model_cls is None or method_cls is None:
            raise ValueError(
                f"`path` {str(path)!r} holds a {header['model']['class']} trained with "
                f"{header['method']['class']}, which this version does not know."
            )
        layout = NodeLayout.from_config(header["layout"])
        model = eqx.filter_eval_shape(model_cls.from_config, header["model"]["config"], key=jr.key(0))
        n = layout.num_scalars
        times_like = Standardiser.identity(n) if layout.has_metadata else None
        like = (model, Standardiser.identity(n), _edge_mask_like(header, n), times_like)
        try:
            model, standardiser, edge_mask, time_standardiser = eqx.tree_deserialise_leaves(f, like)
        except Exception as error:
            raise ValueError(f"`path` {str(path)!r} is truncated or corrupt: {error}") from error
    history = None if header["history"] is None else History.from_json(header["history"])
    method = method_cls(**header["method"]["config"])
    return Estimator(model, method, layout, standardiser, edge_mask, history, time_standardiser)
