"""Named nodes, their flat layout, validation and standardisation."""

from ._bounds import log_abs_det_to_unbounded as log_abs_det_to_unbounded
from ._bounds import to_bounded as to_bounded
from ._bounds import to_unbounded as to_unbounded
from ._condition import condition_vector as condition_vector
from ._condition import query_vectors as query_vectors
from ._constraints import interval_bounds as interval_bounds
from ._dependencies import Dependencies as Dependencies
from ._layout import NodeLayout as NodeLayout
from ._layout import drop_invalid_rows as drop_invalid_rows
from ._layout import validate_data as validate_data
from ._node import Node as Node
from ._node import node_bounds as node_bounds
from ._series import NodeData as NodeData
from ._series import Series as Series
from ._series import time_standardiser as time_standardiser
from ._standardiser import Standardiser as Standardiser

__all__ = [
    "Dependencies",
    "NodeData",
    "Node",
    "NodeLayout",
    "Series",
    "Standardiser",
    "condition_vector",
    "drop_invalid_rows",
    "interval_bounds",
    "log_abs_det_to_unbounded",
    "node_bounds",
    "query_vectors",
    "time_standardiser",
    "to_bounded",
    "to_unbounded",
    "validate_data",
]
