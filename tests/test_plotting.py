"""pairplot: it writes a real PNG and refuses inputs whose dimensions do not line up."""

import numpy as np
import pytest


pytest.importorskip("matplotlib")

from gensbi_eqx.plotting import pairplot  # noqa: E402


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def samples():
    rng = np.random.default_rng(0)
    return {"theta": rng.normal(size=(500, 2)), "s": rng.normal(size=500)}


def test_pairplot_writes_png(tmp_path, samples):
    rng = np.random.default_rng(1)
    # Keys in another order than `samples`: a reference dict is matched by name.
    reference = {"s": rng.normal(size=300), "theta": rng.normal(size=(300, 2)) + 0.5}
    true_values = {"theta": np.array([0.1, -0.2]), "s": 0.3}
    path = tmp_path / "pair.png"
    fig = pairplot(samples, reference=reference, true_values=true_values, bins=20, path=path)
    data = path.read_bytes()
    assert len(data) > len(PNG_MAGIC) and data.startswith(PNG_MAGIC)
    # No temporary file is left next to the result.
    assert [p.name for p in tmp_path.iterdir()] == ["pair.png"]
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 6  # 3 diagonal + 3 lower-triangle panels of a 3 x 3 grid
    assert fig.axes[6].get_xlabel() == "theta[0]" and fig.axes[8].get_xlabel() == "s"


def test_pairplot_plain_array_without_path(tmp_path):
    rng = np.random.default_rng(2)
    fig = pairplot(
        rng.normal(size=(200, 3)),
        labels=["a", "b", "c"],
        true_values=np.zeros(3),
        limits=[(-4, 4)] * 3,
        bins=10,
    )
    assert fig.axes[6].get_xlabel() == "a"
    assert list(tmp_path.iterdir()) == []
    single = pairplot(rng.normal(size=100))
    assert len(single.axes) == 1


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"reference": np.zeros((10, 2))}, "`reference`"),
        ({"reference": {"theta": np.zeros((10, 2))}}, "`reference`"),
        ({"true_values": np.zeros(4)}, "`true_values`"),
        ({"true_values": {"theta": np.zeros(3), "s": 0.0}}, "`true_values`"),
        ({"labels": ["a", "b"]}, "`labels`"),
        ({"limits": [(0, 1)] * 2}, "`limits`"),
        ({"limits": [(1, 0)] * 3}, "`limits`"),
        ({"bins": 0}, "`bins`"),
    ],
)
def test_pairplot_bad_input(samples, kwargs, match):
    with pytest.raises(ValueError, match=match):
        pairplot(samples, **kwargs)


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros((0, 2)), "`samples`"),
        ({}, "`samples`"),
        ({"theta": np.zeros((5, 2)), "s": np.zeros(4)}, "`samples`"),
        (np.zeros((5, 2, 2)), "`samples`"),
    ],
)
def test_pairplot_bad_samples(bad, match):
    with pytest.raises(ValueError, match=match):
        pairplot(bad)
