"""Estimators of untrained models, built from data as `gs.fit` builds them but without a train
step: for tests of what an estimator does around its model, where training would only add
compile time."""

import gensbi_eqx as gs
from gensbi_eqx.data import NodeLayout, Standardiser, time_standardiser


def untrained_estimator(model, data, method=None, attention=None) -> gs.Estimator:
    """``gs.Estimator`` of ``model`` (untrained) with the layout and standardisers of ``data``;
    ``method`` defaults to ``gs.VESDE()``, ``attention`` to ``gs.DenseAttention()``."""
    layout = NodeLayout.from_data(data)
    groups, times = None, None
    if layout.has_metadata:  # as in fit: a series' points pool their statistics
        groups = layout.token_ids()
        times = time_standardiser(layout, layout.flatten_times(data))
    attention = gs.DenseAttention() if attention is None else attention
    return gs.Estimator(
        model, gs.VESDE() if method is None else method, layout,
        Standardiser.fit(layout.flatten(data), groups), attention.bind(layout),
        time_standardiser=times,
    )
