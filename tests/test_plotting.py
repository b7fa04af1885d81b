"""Plots: each writes a real PNG atomically and refuses inputs that do not line up."""

import math
import types

import numpy as np
import pytest


pytest.importorskip("matplotlib")

from matplotlib.image import imread  # noqa: E402

from gensbi_eqx.plotting import coverage_plot, pairplot, plot_loss, sbc_rank_plot  # noqa: E402
from gensbi_eqx.plotting._sbc import _binomial_interval, _default_bins  # noqa: E402
from gensbi_eqx.training import History  # noqa: E402


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_only_png(directory, name):
    """``directory`` holds just ``name``, a decodable, non-blank PNG (no temporary file left)."""
    assert [p.name for p in directory.iterdir()] == [name]
    path = directory / name
    data = path.read_bytes()
    assert len(data) > len(PNG_MAGIC) and data.startswith(PNG_MAGIC)
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert image[..., :3].std() > 0.01


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
    assert_only_png(tmp_path, "pair.png")
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


# --- plot_loss --------------------------------------------------------------------------------


def make_history(num_steps=600, *, validation=True, offset=0.2):
    rng = np.random.default_rng(3)
    steps = np.arange(1, num_steps + 1)
    train = (1 / np.sqrt(steps) + offset) * np.exp(rng.normal(0.0, 0.3, num_steps))
    if not validation:
        return History(train.astype(np.float32), np.zeros(0, np.int64),
                       np.zeros(0, np.float32), num_steps, False, 1.0)
    val_steps = np.arange(100, num_steps + 1, 100)
    val_loss = 1 / np.sqrt(val_steps) + offset + 1e-4 * np.abs(val_steps - 300)
    return History(train.astype(np.float32), val_steps.astype(np.int64),
                   val_loss.astype(np.float32), 300, True, 2.5)


def test_plot_loss_writes_png(tmp_path):
    fig = plot_loss(make_history(), path=tmp_path / "loss.png")
    assert_only_png(tmp_path, "loss.png")
    (ax,) = fig.axes
    assert ax.get_yscale() == "log"  # every loss is positive
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "validation" in legend and "best (step 300)" in legend
    assert any(text.startswith("training (mean of") for text in legend)
    assert "stopped early" in ax.get_title()


def test_plot_loss_estimator_like_and_linear_scale():
    # Anything with a `.history` that is a History is accepted, like an Estimator.
    owner = types.SimpleNamespace(history=make_history(50, validation=False, offset=-1.0))
    fig = plot_loss(owner)
    (ax,) = fig.axes
    assert ax.get_yscale() == "linear"  # negative losses cannot go on a log axis
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["training"]  # 50 steps: no running mean, no validation, no best step
    assert plot_loss(make_history(), log_scale=False, window=7).axes[0].get_yscale() == "linear"


def test_failed_write_leaves_nothing_behind(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    def fail(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", fail)
    with pytest.raises(OSError, match="disk full"):
        plot_loss(make_history(), path=tmp_path / "loss.png")
    assert list(tmp_path.iterdir()) == []


def empty_history():
    empty = np.zeros(0, np.float32)
    return History(empty, np.zeros(0, np.int64), empty, 0, False, 0.0)


@pytest.mark.parametrize(
    "history, kwargs, match",
    [
        (empty_history(), {}, "`history.train_loss`"),
        (
            History(np.ones(10, np.float32), np.array([5, 10]), np.ones(1, np.float32), 5,
                    False, 0.0),
            {}, "`history.validation_steps`",
        ),
        (
            History(np.array([1.0, np.nan], np.float32), np.zeros(0, np.int64),
                    np.zeros(0, np.float32), 2, False, 0.0),
            {}, "`history.train_loss`",
        ),
        (make_history(), {"window": 0}, "`window`"),
        (make_history(), {"window": 601}, "`window`"),
        (make_history(offset=-1.0), {"log_scale": True}, "`log_scale"),
        (types.SimpleNamespace(history=None), {}, "`history`"),
        (np.ones(10), {}, "`history`"),
    ],
)
def test_plot_loss_bad_input(history, kwargs, match):
    with pytest.raises(ValueError, match=match):
        plot_loss(history, **kwargs)


# --- sbc_rank_plot ----------------------------------------------------------------------------


def test_sbc_rank_plot_writes_png(tmp_path):
    rng = np.random.default_rng(4)
    ranks = rng.integers(0, 100, size=(400, 5))
    fig = sbc_rank_plot(ranks, 99, labels=list("abcde"), path=tmp_path / "sbc.png")
    assert_only_png(tmp_path, "sbc.png")
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == list("abcde")  # 2 x 4 grid, 3 hidden
    assert len(fig.axes) == 8
    single = sbc_rank_plot(rng.integers(0, 11, size=50).astype(float), 10, bins=11)
    assert [ax.get_title() for ax in single.axes] == ["dim 0"]


@pytest.mark.parametrize(
    "num_sims, num_ranks, expected",
    [
        (1000, 100, 25),  # N / 20 = 50 capped at 30; 25 is the largest divisor of 100 below
        (400, 100, 20),  # N / 20 = 20 divides 100
        (1000, 101, 30),  # 101 is prime: uneven bins rather than one
        (10, 5, 1),
        (1000, 12, 12),  # never more bins than ranks
    ],
)
def test_sbc_default_bins(num_sims, num_ranks, expected):
    assert _default_bins(num_sims, num_ranks) == expected


@pytest.mark.parametrize("n, p", [(50, 0.2), (400, 0.04), (1000, 1 / 3)])
def test_sbc_band_is_the_central_binomial_interval(n, p):
    lower, upper = _binomial_interval(n, p, 0.99)
    pmf = [math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(n + 1)]
    # At most 0.5% below and above, and neither end could move inward.
    assert sum(pmf[:lower]) <= 0.005 < sum(pmf[: lower + 1])
    assert sum(pmf[upper + 1 :]) <= 0.005 < sum(pmf[upper:])
    assert _binomial_interval(n, 1.0, 0.99) == (n, n)


@pytest.mark.parametrize(
    "ranks, kwargs, match",
    [
        (np.array([[0, 11], [3, 4]]), {}, r"`ranks` must lie in \[0, num_samples\]"),
        (np.array([[-1, 2], [3, 4]]), {}, "`ranks`"),
        (np.array([0.5, 2.0]), {}, "`ranks`"),
        (np.array([True, False]), {}, "`ranks`"),
        (np.zeros((0, 2), int), {}, "`ranks`"),
        (np.zeros((3, 2, 2), int), {}, "`ranks`"),
        (np.zeros((3, 2), int), {"labels": ["a"]}, "`labels` must have 2 entries"),
        (np.zeros((3, 2), int), {"bins": 0}, "`bins`"),
        (np.zeros((3, 2), int), {"bins": 12}, "`bins`"),
        (np.zeros((3, 2), int), {"num_samples": 0}, "`num_samples`"),
    ],
)
def test_sbc_rank_plot_bad_input(ranks, kwargs, match):
    kwargs = {"num_samples": 10} | kwargs
    with pytest.raises(ValueError, match=match):
        sbc_rank_plot(ranks, **kwargs)


# --- coverage_plot ----------------------------------------------------------------------------


LEVELS = np.linspace(0.0, 1.0, 11)


def test_coverage_plot_writes_png(tmp_path):
    tarp, hpd = LEVELS**0.8, LEVELS**1.3
    band = {"TARP": (0.9 * tarp, np.minimum(1.1 * tarp, 1.0))}
    fig = coverage_plot(LEVELS, {"TARP": tarp, "HPD": hpd}, band=band, path=tmp_path / "c.png")
    assert_only_png(tmp_path, "c.png")
    (ax,) = fig.axes
    assert ax.get_xlim() == (0.0, 1.0) and ax.get_ylim() == (0.0, 1.0)
    assert ax.get_aspect() == 1.0
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["ideal", "TARP", "HPD"]
    texts = " ".join(t.get_text() for t in ax.texts)
    assert "above the diagonal: conservative" in texts and "below: overconfident" in texts


def test_coverage_plot_array_forms():
    single = coverage_plot(LEVELS, LEVELS, band=np.stack([0.9 * LEVELS, LEVELS]))
    assert [t.get_text() for t in single.axes[0].get_legend().get_texts()] == [
        "ideal", "coverage"
    ]
    several = coverage_plot(LEVELS, np.stack([LEVELS, LEVELS**2]), labels=["a", "b"])
    assert [t.get_text() for t in several.axes[0].get_legend().get_texts()] == [
        "ideal", "a", "b"
    ]


@pytest.mark.parametrize(
    "levels, coverage, kwargs, match",
    [
        (LEVELS, LEVELS[:-1], {}, "`coverage`"),
        (LEVELS, {"a": LEVELS, "b": LEVELS[1:]}, {}, r"`coverage\['b'\]`"),
        (LEVELS, {}, {}, "`coverage`"),
        (LEVELS, np.zeros((2, 3, 11)), {}, "`coverage`"),
        (LEVELS + 0.5, LEVELS, {}, r"`levels` must lie in \[0, 1\]"),
        (LEVELS, LEVELS * 2, {}, "`coverage`"),
        (np.zeros(0), np.zeros(0), {}, "`levels`"),
        (LEVELS, {"a": LEVELS}, {"labels": ["a"]}, "`labels`"),
        (LEVELS, np.stack([LEVELS, LEVELS]), {"labels": ["a"]}, "`labels` must have 2"),
        (LEVELS, np.stack([LEVELS, LEVELS]), {"band": (LEVELS, LEVELS)}, "`band`"),
        (LEVELS, {"a": LEVELS}, {"band": {"b": (LEVELS, LEVELS)}}, "`band`"),
        (LEVELS, LEVELS, {"band": (LEVELS, LEVELS, LEVELS)}, "`band`"),
        (LEVELS, LEVELS, {"band": (LEVELS, LEVELS[1:])}, r"`band\[1\]`"),
        (LEVELS, LEVELS, {"band": (LEVELS, 0.5 * LEVELS)}, "lower <= upper"),
    ],
)
def test_coverage_plot_bad_input(levels, coverage, kwargs, match):
    with pytest.raises(ValueError, match=match):
        coverage_plot(levels, coverage, **kwargs)
