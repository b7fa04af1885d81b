"""What the ready embedding networks share: a config that rebuilds them, like the models'."""

from collections.abc import Mapping
from typing import Any, TypeVar

import abc

import equinox as eqx

from .._custom_types import Array, Float, Key

_Embedding = TypeVar("_Embedding", bound="AbstractEmbedding")


class AbstractEmbedding(eqx.Module):
    """A network from one node's values (its per-example shape) to ``(num_summaries,)``
    summaries. Any `equinox.Module` with that signature serves as an embedding; subclasses of
    this one also give their constructor's arguments back (`config`), so `gs.load` rebuilds
    them without being handed a skeleton."""

    num_summaries: eqx.AbstractVar[int]

    @abc.abstractmethod
    def __call__(self, values: Float[Array, "..."]) -> Float[Array, " num_summaries"]:
        ...

    @property
    @abc.abstractmethod
    def config(self) -> dict[str, Any]:
        """The constructor's keyword arguments (JSON-serialisable, without ``key``)."""

    @classmethod
    def from_config(cls: type[_Embedding], config: Mapping[str, Any], *, key: Key) -> _Embedding:
        return cls(**config, key=key)
