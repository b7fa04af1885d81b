"""Saving and loading estimators: a JSON header, then ``eqx.tree_serialise_leaves``. No pickle.

File layout: the magic line ``GENSBI_EQX\\n``, the header's byte length as a decimal line, the
UTF-8 JSON header (the configs of the model, method, layout, attention policy and history,
whether the standardiser holds bounds, and the library version), then the arrays of the model
and the standardisers (the bounds of bounded nodes among them).
"""

import functools
import json
import os
from collections.abc import Mapping
from pathlib import Path

import equinox as eqx
import jax.random as jr

from .._atomic import atomic_writer
from .._version import __version__
from ..data import NodeLayout, Standardiser
from ..methods import AbstractMethod
from ..models import AbstractAttention
from ..models import MODELS, EmbeddedModel
from ..training import History
from ._estimator import Estimator

MAGIC = b"GENSBI_EQX\n"
FORMAT_VERSION = 2


def save(path: str | os.PathLike, estimator: Estimator) -> None:
    """Write ``estimator`` to ``path``. The file appears whole or not at all: it is written to
    a temporary file in the same directory, flushed to disk, then renamed over ``path``."""
    if not isinstance(estimator, Estimator):
        raise TypeError(f"`estimator` must be an Estimator, got {type(estimator).__name__}.")
    header = {
        "format": FORMAT_VERSION,
        "library_version": __version__,
        "model": {"class": type(estimator.model).__name__, "config": estimator.model.config},
        "method": estimator.method.config,
        "layout": estimator.layout.config,
        "bounded": estimator.standardiser.bounded,
        "attention": estimator.attention.config,
        "history": None if estimator.history is None else estimator.history.config,
    }
    encoded = json.dumps(header).encode()
    with atomic_writer(path) as f:
        f.write(MAGIC)
        f.write(f"{len(encoded)}\n".encode())
        f.write(encoded)
        eqx.tree_serialise_leaves(f, _arrays(estimator))


def _arrays(estimator: Estimator):
    # ``time_standardiser`` is None (no leaves) without nodes with times.
    return (estimator.model, estimator.standardiser, estimator.time_standardiser)


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
            f"`path` {str(path)!r} has format {header.get('format')!r} (written by gensbi_eqx "
            f"{header.get('library_version')}); this version reads format {FORMAT_VERSION}. "
            "Load it with the version that wrote it, or train again."
        )
    return header


def load(
    path: str | os.PathLike, *, embeddings: Mapping[str, eqx.Module] | None = None
) -> Estimator:
    """Read an estimator written by `save`; it samples bit-identically to the saved one.

    ``embeddings``: for a model that reads nodes through embedding networks of the user's own
    (not from `gensbi_eqx.embeddings`), ``{name: net}`` with a network of the same structure
    for each (any weights: the file's replace them)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"`path` {str(path)!r} is not a file.")
    with open(path, "rb") as f:
        header = _read_header(f, path)
        model_cls = MODELS.get(header["model"]["class"])
        if model_cls is None:
            raise ValueError(
                f"`path` {str(path)!r} holds a {header['model']['class']}, which this version "
                "does not know."
            )
        layout = NodeLayout.from_config(header["layout"])
        method = AbstractMethod.from_config(header["method"])
        attention = AbstractAttention.from_config(header["attention"]).bind(layout)
        config = header["model"]["config"]
        build = model_cls.from_config
        if model_cls is EmbeddedModel:
            build = functools.partial(build, embeddings=embeddings)
        elif embeddings is not None:
            raise ValueError(
                f"`embeddings`: the {header['model']['class']} in {str(path)!r} reads no node "
                "through an embedding network; leave `embeddings` unset."
            )
        model = eqx.filter_eval_shape(build, config, key=jr.key(0))
        n = layout.num_scalars
        times_like = Standardiser.identity(n) if layout.has_metadata else None
        # Files without bounded nodes (and those written before bounds existed) have no bounds.
        bounded = bool(header.get("bounded", False))
        like = (model, Standardiser.identity(n, bounded), times_like)
        try:
            model, standardiser, time_standardiser = eqx.tree_deserialise_leaves(f, like)
        except Exception as error:
            raise ValueError(f"`path` {str(path)!r} is truncated or corrupt: {error}") from error
    history = None if header["history"] is None else History.from_config(header["history"])
    return Estimator(model, method, layout, standardiser, attention, history, time_standardiser)
