"""Shared jaxtyping aliases, so every module speaks the same axis names.

Axis vocabulary: ``num_nodes`` (scalar tokens of one example), ``batch`` (examples),
``num_samples`` (draws), ``dim`` (a node's or a flat vector's width).
"""

from typing import TypeAlias

from jaxtyping import Array, ArrayLike, Bool, Float, Int, PRNGKeyArray

Key: TypeAlias = PRNGKeyArray
Scalar: TypeAlias = Float[Array, ""]
ScalarLike: TypeAlias = float | Float[ArrayLike, ""]
Tokens: TypeAlias = Float[Array, " num_nodes"]
ConditionMask: TypeAlias = Bool[Array, " num_nodes"]
EdgeMask: TypeAlias = Bool[Array, "num_nodes num_nodes"]
NodeIds: TypeAlias = Int[Array, " num_nodes"]

__all__ = [
    "Array",
    "ArrayLike",
    "Bool",
    "ConditionMask",
    "EdgeMask",
    "Float",
    "Int",
    "Key",
    "NodeIds",
    "Scalar",
    "ScalarLike",
    "Tokens",
]
