"""Checkpoints: a run killed at random moments and resumed ends bit-identical to one never
stopped; another run's checkpoint is refused; a crash while writing keeps the old checkpoint."""

import json
import os
import signal
import subprocess
import sys
import time

import equinox as eqx
import jax.random as jr
import numpy as np
import pytest

import gensbi_eqx as gs

TINY = dict(dim_value=4, dim_id=4, dim_condition=2, num_heads=2, head_dim=4, depth=1, widening=2,
            dim_time=8)

# One run, as a script: 600 steps, a validation score every 20, a checkpoint every 40. The
# estimator it returns is saved to argv[2].
RUN = f"""
import sys
import jax.random as jr
import gensbi_eqx as gs
theta = jr.normal(jr.key(0), (64, 2))
data = {{"theta": theta, "x": theta + 0.1 * jr.normal(jr.key(1), (64, 2))}}
model = gs.Simformer(4, key=jr.key(2), **{TINY!r})
training = gs.Training(
    max_steps=600, batch_size=8, steps_per_call=5,
    stopping=gs.EarlyStopping(every=20, patience=1000),
    checkpoint=gs.Checkpoint(sys.argv[1], every=40),
)
est = gs.fit(jr.key(3), model, data, training=training, progress=False)
gs.save(sys.argv[2], est)
"""


def _start(checkpoint, out):
    # The processes share a compilation cache, so only the first one compiles.
    cache = {"JAX_COMPILATION_CACHE_DIR": str(checkpoint.parent / "jax-cache"),
             "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
             "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}
    return subprocess.Popen([sys.executable, "-c", RUN, str(checkpoint), str(out)],
                            env={**os.environ, **cache}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def test_a_run_killed_and_resumed_ends_bit_identical(tmp_path):
    reference = _start(tmp_path / "reference.ckpt", tmp_path / "reference.eqx")
    _, err = reference.communicate(timeout=600)
    assert reference.returncode == 0, err[-3000:]

    # Kill the same run with SIGKILL at random moments once it has written a checkpoint, three
    # times, each time resuming from what the previous process left.
    rng = np.random.default_rng(0)
    checkpoint, out, kills = tmp_path / "run.ckpt", tmp_path / "run.eqx", 0
    while True:
        process = _start(checkpoint, out)
        if kills < 3:
            seen = checkpoint.stat().st_mtime_ns if checkpoint.exists() else None
            while process.poll() is None and (
                not checkpoint.exists() or checkpoint.stat().st_mtime_ns == seen
            ):
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.3))
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
                process.communicate()
                kills += 1
                continue
        _, err = process.communicate(timeout=600)
        assert process.returncode == 0, err[-3000:]
        break
    assert kills == 3
    # The last checkpoint holds the weights, EMA, optimizer state, losses and validation scores
    # of the whole run; its bytes equal the uninterrupted run's.
    assert checkpoint.read_bytes() == (tmp_path / "reference.ckpt").read_bytes()
    a, b = gs.load(out), gs.load(tmp_path / "reference.eqx")
    np.testing.assert_array_equal(a.history.train_loss, b.history.train_loss)
    np.testing.assert_array_equal(a.history.validation_loss, b.history.validation_loss)
    assert a.history.best_step == b.history.best_step
    for x, y in zip(*(eqx.filter((e.model,), eqx.is_array) for e in (a, b))):
        assert all(np.array_equal(u, v) for u, v in zip(eqx.tree_flatten_one_level(x)[0],
                                                         eqx.tree_flatten_one_level(y)[0]))


def _data(key=0, n=32):
    theta = jr.normal(jr.key(key), (n, 2))
    return {"theta": theta, "x": theta + 0.1 * jr.normal(jr.key(key + 1), (n, 2))}


def _fit(path, data, **changes):
    settings = dict(max_steps=10, batch_size=8, stopping=gs.EarlyStopping(every=5),
                    checkpoint=gs.Checkpoint(path, every=5))
    model = gs.Simformer(4, key=jr.key(2), **TINY)
    return gs.fit(jr.key(3), model, data, training=gs.Training(**{**settings, **changes}),
                  progress=False)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """The final checkpoint of a short run that was never stopped."""
    path = tmp_path_factory.mktemp("finished") / "run.ckpt"
    _fit(path, _data())
    return path.read_bytes()


def test_another_runs_checkpoint_is_refused_not_restarted(finished, tmp_path):
    path = tmp_path / "run.ckpt"
    path.write_bytes(finished)
    with pytest.raises(ValueError, match=r"checkpoint of another run: its data differ"):
        _fit(path, _data(key=5))
    with pytest.raises(ValueError, match=r"its training differ"):
        _fit(path, _data(), batch_size=4)
    assert path.read_bytes() == finished
    # Resuming a finished run trains no further and gives its estimator.
    again = _fit(path, _data())
    assert path.read_bytes() == finished
    assert again.history.train_loss.shape == (10,)


def _checkpoint_step(path) -> int:
    with open(path, "rb") as f:
        f.readline()
        return json.loads(f.read(int(f.readline())))["state"]["done"]


def test_a_crash_while_writing_keeps_the_old_checkpoint(finished, tmp_path, monkeypatch):
    """The second write (step 10) fails half-way: the step-5 checkpoint stays whole, and the run
    resumed from it ends as an uninterrupted one."""
    path = tmp_path / "run.ckpt"
    serialise, calls = eqx.tree_serialise_leaves, []

    def crash_on_second_write(f, tree):
        calls.append(1)
        if len(calls) == 2:
            f.write(b"half an array")
            raise OSError("disk full")
        serialise(f, tree)

    monkeypatch.setattr(eqx, "tree_serialise_leaves", crash_on_second_write)
    with pytest.raises(OSError, match="disk full"):
        _fit(path, _data())
    assert sorted(os.listdir(tmp_path)) == ["run.ckpt"]
    assert _checkpoint_step(path) == 5
    monkeypatch.setattr(eqx, "tree_serialise_leaves", serialise)
    _fit(path, _data())
    assert path.read_bytes() == finished


def test_damaged_checkpoints_and_bad_settings_are_refused(finished, tmp_path):
    path = tmp_path / "run.ckpt"
    path.write_bytes(finished[:-100])  # as a copy cut short would be
    with pytest.raises(ValueError, match="not a gensbi_eqx checkpoint \\(or is damaged\\)"):
        _fit(path, _data())
    with pytest.raises(ValueError, match="does not exist"):
        _fit(tmp_path / "missing" / "run.ckpt", _data())
    with pytest.raises(ValueError, match="`every`"):
        gs.Checkpoint(path, every=0)
    with pytest.raises(TypeError, match="checkpoint"):  # the type checker may answer first
        gs.Training(checkpoint=str(path))
