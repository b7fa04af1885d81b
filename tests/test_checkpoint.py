"""Checkpoints: a run killed at random moments and resumed ends bit-identical to one never
stopped; another run's checkpoint is refused; a crash while writing keeps the old checkpoint."""

import json
import os
import signal
import subprocess
import sys

import equinox as eqx
import jax
import jax.random as jr
import numpy as np
import pytest

import gensbi_eqx as gs

TINY = dict(dim_value=4, dim_id=4, dim_condition=2, num_heads=2, head_dim=4, depth=1, widening=2,
            dim_time=8)

# One run, as a script: 600 steps, a validation score every 20, a checkpoint every 40 (so at the
# even validations). argv: checkpoint path, where to save the estimator, and when the process
# kills itself with SIGKILL: "between" (at validation `at`, an odd one: the steps since the
# last checkpoint are lost), "during" (half-way through writing the checkpoint of validation
# `at`, an even one) or "never". Each kill spec is a global validation index, so it falls at
# the same step whichever process reaches it.
RUN = f"""
import os, signal, sys
import equinox as eqx
import jax
import jax.random as jr
import gensbi_eqx as gs
kind, at = sys.argv[3], int(sys.argv[4])
decide, serialise, armed = gs.EarlyStopping.decide, eqx.tree_serialise_leaves, []

def decide_then_maybe_die(self, losses):
    if len(losses) == at and kind == "between":
        os.kill(os.getpid(), signal.SIGKILL)
    armed.append(len(losses) == at and kind == "during")
    return decide(self, losses)

def serialise_or_die(f, tree):
    if armed and armed[-1]:
        f.write(b"half a checkpoint")
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    serialise(f, tree)

gs.EarlyStopping.decide = decide_then_maybe_die
eqx.tree_serialise_leaves = serialise_or_die
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


def _run(checkpoint, out, kind="never", at=0):
    # The processes share a compilation cache, so only the first one compiles.
    cache = {"JAX_COMPILATION_CACHE_DIR": str(checkpoint.parent / "jax-cache"),
             "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
             "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}
    return subprocess.run(
        [sys.executable, "-c", RUN, str(checkpoint), str(out), kind, str(at)],
        env={**os.environ, **cache}, capture_output=True, text=True, timeout=600,
    )


def test_a_run_killed_and_resumed_ends_bit_identical(tmp_path):
    reference = _run(tmp_path / "reference.ckpt", tmp_path / "reference.eqx")
    assert reference.returncode == 0, reference.stderr[-3000:]

    # Three SIGKILLs at random validations (of 30), each process resuming from what the previous
    # one left: between checkpoints, half-way through writing one, and between again.
    rng = np.random.default_rng(0)
    first = 2 * int(rng.integers(0, 4)) + 1
    second = first + 2 * int(rng.integers(1, 5)) + 1
    third = second + 2 * int(rng.integers(1, 5)) + 1
    checkpoint, out = tmp_path / "run.ckpt", tmp_path / "run.eqx"
    for kind, at in [("between", first), ("during", second), ("between", third)]:
        killed = _run(checkpoint, out, kind, at)
        assert killed.returncode == -signal.SIGKILL, (kind, at, killed.stderr[-3000:])
        assert not out.exists()
        if kind == "during":  # the half-written file never replaced the last checkpoint
            assert any(name.endswith(".tmp") for name in os.listdir(tmp_path))
    final = _run(checkpoint, out)
    assert final.returncode == 0, final.stderr[-3000:]

    # The last checkpoint holds the weights, EMA, optimizer state, losses and validation scores
    # of the whole run; its bytes equal the uninterrupted run's.
    assert checkpoint.read_bytes() == (tmp_path / "reference.ckpt").read_bytes()
    a, b = gs.load(out), gs.load(tmp_path / "reference.eqx")
    np.testing.assert_array_equal(a.history.train_loss, b.history.train_loss)
    np.testing.assert_array_equal(a.history.validation_loss, b.history.validation_loss)
    assert a.history.best_step == b.history.best_step
    leaves = [jax.tree.leaves(eqx.filter(e.model, eqx.is_array)) for e in (a, b)]
    assert all(np.array_equal(u, v) for u, v in zip(*leaves))


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
    header = json.dumps({"format": 1, "library_version": "0.1.0"}).encode()
    path.write_bytes(b"GENSBI_EQX_CHECKPOINT\n" + f"{len(header)}\n".encode() + header)
    with pytest.raises(ValueError, match=r"format 1 \(gensbi_eqx 0\.1\.0\); this version "
                       r"reads format 2\. Finish the run with the version that wrote it"):
        _fit(path, _data())
    with pytest.raises(ValueError, match="does not exist"):
        _fit(tmp_path / "missing" / "run.ckpt", _data())
    with pytest.raises(ValueError, match="`every`"):
        gs.Checkpoint(path, every=0)
    with pytest.raises(TypeError, match="checkpoint"):  # the type checker may answer first
        gs.Training(checkpoint=str(path))
