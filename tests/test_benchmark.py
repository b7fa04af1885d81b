"""The benchmark runner end to end at toy size, and its table handling."""

import argparse
import csv

import diffrax
import jax.random as jr
import pytest

import gensbi_eqx as gs
from gensbi_eqx.benchmark import append_rows, read_table, run, summarise
from gensbi_eqx.benchmark.__main__ import main, parse_observations
from gensbi_eqx.benchmark._runner import COLUMNS, parse_sampler, sampler_label


def test_parse_observations():
    assert parse_observations("1-10") == tuple(range(1, 11))
    assert parse_observations("3") == (3,)
    assert parse_observations("1,4,7-9") == (1, 4, 7, 8, 9)
    for bad in ("0", "11", "a", "2-x", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_observations(bad)


@pytest.mark.parametrize(
    "text, sampler, label",
    [
        ("sde", gs.SDE(), ("sde", 500)),
        ("sde:50", gs.SDE(steps=50), ("sde", 50)),
        ("adaptive-sde", gs.AdaptiveSDE(), ("adaptive-sde", "")),
        ("ode", gs.ODE(), ("ode", "")),
        ("ODE-Heun:50", gs.ODE(diffrax.Heun(), steps=50), ("ode-heun", 50)),
        ("ode-heun", gs.ODE(diffrax.Heun()), ("ode-heun", "")),
        ("ode-tsit5:20", gs.ODE(diffrax.Tsit5(), steps=20), ("ode-tsit5", 20)),
        ("edm", gs.EDMSampler(), ("edm", 18)),
        ("edm:18", gs.EDMSampler(steps=18), ("edm", 18)),
    ],
)
def test_parse_sampler(text, sampler, label):
    """Command-line spellings become sampler objects; the table records them in the same
    spelling, which parses back to the same sampler."""
    assert parse_sampler(text) == sampler
    assert sampler_label(sampler) == label
    name, steps = label
    assert parse_sampler(f"{name}:{steps}" if steps != "" else name) == sampler


@pytest.mark.parametrize("bad", ["euler", "ode:50", "sde:x", "sde:0", "ode-rk4:5", "adaptive-sde:5", ""])
def test_parse_sampler_refuses_other_spellings(bad):
    with pytest.raises(ValueError, match="sampler|steps"):
        parse_sampler(bad)
    with pytest.raises(SystemExit):
        main(["--task", "two_moons", "--sampler", bad])


def test_run_refuses_a_bad_sampler_before_training():
    """A sampler given as a string, or one that cannot drive the method, is refused before any
    simulation or training."""
    with pytest.raises(TypeError, match="sampler"):  # the type checker may answer first
        run(jr.key(0), "two_moons", simulations=10, sampler="sde")
    with pytest.raises(ValueError, match="EDM"):
        run(jr.key(0), "two_moons", simulations=10, method="ve", sampler=gs.EDMSampler())
    with pytest.raises(ValueError, match="alpha = 0"):
        run(jr.key(0), "two_moons", simulations=10, method="fm", sampler=gs.SDE())
    # C2ST compares as many reference draws as samples: no more than the reference holds.
    with pytest.raises(ValueError, match=r"`num_samples` must be an integer in 1\.\.10000"):
        run(jr.key(0), "two_moons", simulations=10, observations=(1,), num_samples=20_000)


def _row(**values):
    row = {k: "" for k in COLUMNS}
    row.update(task="two_moons", simulations=1000, model="simformer", method="ve", sampler="sde",
               classifier="sklearn", seed=0, train_seconds=1.0, machine="m", date="d")
    row.update(values)
    return row


def test_table_appends_and_summarises(tmp_path):
    path = tmp_path / "results.csv"
    append_rows(path, [_row(observation=1, c2st=0.6, sample_seconds=9.0)])
    table = append_rows(path, [_row(observation=2, c2st=0.8, sample_seconds=3.0),
                               _row(observation=1, c2st=0.55, sample_seconds=2.0, method="vp")])
    assert [r["c2st"] for r in read_table(path)] == ["0.6", "0.8", "0.55"]
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind
    lines = summarise(table).splitlines()
    assert len(lines) == 4  # header, rule, one line per configuration
    ve = next(line for line in lines if "| ve |" in line)
    assert "0.700 (0.141)" in ve and "| 2 |" in ve and "| 6.0 |" in ve  # mean (sd), obs, median s


def test_cli_trains_samples_and_scores(tmp_path, capsys):
    out = tmp_path / "results"
    argv = ["--task", "two_moons", "--simulations", "300", "--max-steps", "5",
            "--observations", "1,2", "--num-samples", "200", "--sampler", "ode-heun:3",
            "--classifier", "jax", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["observation"] for r in rows] == ["1", "2"]
    for row in rows:
        # A barely trained model: far from the reference, so C2ST is high but a valid accuracy.
        assert 0.5 <= float(row["c2st"]) <= 1.0
        assert row["task"] == "two_moons" and row["train_steps"] == "5"
        assert row["sampler"] == "ode-heun" and row["steps"] == "3"
        assert float(row["train_seconds"]) > 0 and float(row["sample_seconds"]) >= 0
    assert "two_moons" in (out / "results.md").read_text()
    assert "C2ST by observation" in capsys.readouterr().out
