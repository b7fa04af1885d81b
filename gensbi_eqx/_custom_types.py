"""Shared jaxtyping aliases, so every module speaks the same axis names.

Axis vocabulary: ``num_scalars`` (the scalars of one example, all nodes flattened), ``batch`` (examples),
``num_samples`` (draws), ``dim`` (a node's or a flat vector's width).
"""

from typing import TypeAlias

from jaxtyping import Array, ArrayLike, Bool, Float, Int, PRNGKeyArray

Key: TypeAlias = PRNGKeyArray
Scalar: TypeAlias = Float[Array, ""]
ScalarLike: TypeAlias = float | Float[ArrayLike, ""]
Flat: TypeAlias = Float[Array, " num_scalars"]
ConditionMask: TypeAlias = Bool[Array, " num_scalars"]
EdgeMask: TypeAlias = Bool[Array, "num_scalars num_scalars"]
TokenIds: TypeAlias = Int[Array, " num_scalars"]

__all__ = [
    "Array",
    "ArrayLike",
    "Bool",
    "ConditionMask",
    "EdgeMask",
    "Flat",
    "Float",
    "Int",
    "Key",
    "TokenIds",
    "Scalar",
    "ScalarLike",
]
