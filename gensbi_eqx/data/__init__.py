"""Named nodes, their flat layout, validation and standardisation."""

from ._condition import condition_vector as condition_vector
from ._condition import query_vectors as query_vectors
from ._constraints import interval_bounds as interval_bounds
from ._dependencies import Dependencies as Dependencies
from ._layout import NodeLayout as NodeLayout
from ._layout import drop_invalid_rows as drop_invalid_rows
from ._layout import validate_data as validate_data
from ._series import NodeData as NodeData
from ._series import Series as Series
from ._series import time_standardiser as time_standardiser
from ._standardiser import Standardiser as Standardiser

__all__ = [
    "Dependencies",
    "NodeData",
    "NodeLayout",
    "Series",
    "Standardiser",
    "condition_vector",
    "drop_invalid_rows",
    "interval_bounds",
    "query_vectors",
    "time_standardiser",
    "validate_data",
]
