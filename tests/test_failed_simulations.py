"""Simulations that fail (NaN or inf in any node): `fit` leaves them out with a warning and lists
them in ``history.dropped_rows``, or refuses them with ``gs.Training(drop_invalid=False)``."""

import warnings

import jax.random as jr
import numpy as np
import pytest

import gensbi_eqx as gs
from gensbi_eqx.data import drop_invalid_rows

TINY = dict(dim_value=4, dim_id=4, dim_condition=2, num_heads=2, head_dim=4, depth=1, widening=2,
            dim_time=8)
ONE_STEP = gs.Training(max_steps=1, batch_size=8, validation_fraction=0.0)
N = 40
FAILED = [3, 7, 11]


@pytest.fixture(scope="module")
def data():
    theta = np.array(jr.normal(jr.key(0), (N, 2)))
    x = theta + 0.1 * np.asarray(jr.normal(jr.key(1), (N, 2)))
    x[FAILED[0], 0], x[FAILED[1], 1] = np.nan, np.inf
    theta[FAILED[2], 1] = -np.inf  # a failure in any node counts
    return {"theta": theta, "x": x}


def _fit(data, training=ONE_STEP):
    model = gs.Simformer(4, key=jr.key(2), **TINY)
    return gs.fit(jr.key(3), model, data, method=gs.VESDE(), training=training, progress=False)


def test_fit_drops_failed_simulations_by_default_and_lists_them(data, tmp_path):
    with pytest.warns(UserWarning, match=r"left out 3 of 40 simulations \(7\.5%\).*first at row 3"):
        est = _fit(data)
    np.testing.assert_array_equal(est.history.dropped_rows, FAILED)
    # What a user looks at to see where the simulator breaks.
    np.testing.assert_array_equal(data["theta"][est.history.dropped_rows], data["theta"][FAILED])
    # The standardiser saw only the valid rows (so it is finite) and the list is saved.
    valid = np.delete(data["x"], FAILED, axis=0)
    np.testing.assert_allclose(est.standardiser.mean[2:], valid.mean(0), rtol=1e-5, atol=1e-6)
    gs.save(tmp_path / "est.eqx", est)
    np.testing.assert_array_equal(gs.load(tmp_path / "est.eqx").history.dropped_rows, FAILED)


def test_fit_with_valid_data_drops_nothing_and_says_nothing(data):
    valid = {name: np.delete(a, FAILED, axis=0) for name, a in data.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est = _fit(valid)
    assert est.history.dropped_rows.shape == (0,)


def test_fit_refuses_failed_simulations_when_told_to(data):
    training = gs.Training(max_steps=1, batch_size=8, validation_fraction=0.0, drop_invalid=False)
    with pytest.raises(ValueError, match=r"3 of 40 rows with NaN or inf \(first at row 3\)"):
        _fit(data, training)
    with pytest.raises(TypeError, match="drop_invalid"):  # the type checker may answer first
        gs.Training(drop_invalid="drop")


def test_data_with_no_valid_row_is_refused(data):
    nothing = {"theta": data["theta"], "x": np.full_like(data["x"], np.nan)}
    with pytest.raises(ValueError, match="Every one of the 40 rows of `data` has NaN or inf"):
        _fit(nothing)


def test_dropping_keeps_series_times_aligned_with_their_rows():
    values = np.arange(12, dtype=np.float32).reshape(4, 3)
    times = 10 * values + 1
    values[1, 2] = np.nan
    per_row = gs.Series(values, times)
    shared = gs.Series(values, np.array([0.0, 1.0, 2.0]))
    for series in (per_row, shared):
        kept, invalid = drop_invalid_rows({"theta": np.arange(4.0), "x": series})
        np.testing.assert_array_equal(invalid, [False, True, False, False])
        np.testing.assert_array_equal(kept["theta"], [0.0, 2.0, 3.0])
        np.testing.assert_array_equal(kept["x"].values, values[[0, 2, 3]])
    np.testing.assert_array_equal(kept["x"].times, [0.0, 1.0, 2.0])
    kept, _ = drop_invalid_rows({"theta": np.arange(4.0), "x": per_row})
    np.testing.assert_array_equal(kept["x"].times, times[[0, 2, 3]])
