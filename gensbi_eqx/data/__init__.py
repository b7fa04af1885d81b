"""Named nodes, their flat layout, validation and standardisation."""

from ._condition import condition_vector as condition_vector
from ._constraints import interval_bounds as interval_bounds
from ._dependencies import Dependencies as Dependencies
from ._layout import NodeLayout as NodeLayout
from ._layout import validate_data as validate_data
from ._standardiser import Standardiser as Standardiser

__all__ = [
    "Dependencies",
    "NodeLayout",
    "Standardiser",
    "condition_vector",
    "interval_bounds",
    "validate_data",
]
