"""sbibm's GaussianMixture and SLCP tasks, and loading sbibm's reference posteriors.

Statistical checks use fixed keys and tolerances of 5 standard errors computed from the sample
size and the analytic moments. Reference loading is tested offline on a small wheel with sbibm's
layout; one test reads the real wheel, downloading it with pip the first time.
"""

import bz2
import hashlib
import math
import shutil
import subprocess
import sys
import zipfile

import jax.numpy as jnp
import numpy as np
import pytest

import gensbi_eqx as gs
from gensbi_eqx.tasks import (
    SLCP,
    GaussianLinear,
    GaussianMixture,
    Reference,
    TwoMoons,
    load_reference,
)
from gensbi_eqx.tasks import _references


def _num_se(estimate, truth, se):
    return np.max(np.abs(np.asarray(estimate) - np.asarray(truth)) / se)


# ---------------------------------------------------------------- simulators

# Shapes, dtypes, reproducibility and argument checks: tests/test_task_contract.py.


def test_names_and_dims():
    assert GaussianMixture.name == "gaussian_mixture"
    assert GaussianMixture.dim_theta == GaussianMixture.dim_x == 2
    assert SLCP.name == "slcp" and SLCP.dim_theta == 5 and SLCP.dim_x == 8


@pytest.mark.parametrize("task, bound", [(GaussianMixture(), 10.0), (SLCP(), 3.0)])
def test_prior_box(task, bound, getkey):
    n = 20_000
    theta, _ = task.simulate(getkey(), n)
    assert np.all(np.abs(theta) <= bound)
    # U(-b, b): mean 0, variance b^2 / 3.
    assert _num_se(theta.mean(0), 0.0, bound / math.sqrt(3 * n)) < 5
    assert _num_se((theta**2).mean(0), bound**2 / 3, bound**2 * math.sqrt(4 / 45 / n)) < 5


def test_gaussian_mixture_noise(getkey):
    """x - theta is 0.5 N(0, I) + 0.5 N(0, 0.01 I) with one component per simulation."""
    n = 20_000
    theta, x = GaussianMixture().simulate(getkey(), n)
    d = np.asarray(x, dtype=float) - np.asarray(theta, dtype=float)
    var = 0.5 * 1.0 + 0.5 * 0.01
    fourth = 0.5 * 3.0 + 0.5 * 3.0 * 0.01**2
    assert _num_se(d.mean(0), 0.0, math.sqrt(var / n)) < 5
    assert _num_se((d**2).mean(0), var, math.sqrt((fourth - var**2) / n)) < 5
    # A shared scale makes E[d_1^2 d_2^2] = 0.5 (1 + 1e-4), not var^2 = 0.255 as with one
    # component per coordinate; the coordinates stay uncorrelated.
    joint = 0.5 * (1.0 + 0.01**2)
    joint_fourth = 0.5 * 9.0 * (1.0 + 0.01**4)
    se_joint = math.sqrt((joint_fourth - joint**2) / n)
    assert _num_se((d[:, 0] ** 2 * d[:, 1] ** 2).mean(), joint, se_joint) < 5
    assert _num_se((d[:, 0] * d[:, 1]).mean(), 0.0, math.sqrt(joint / n)) < 5


def _slcp_covariance(theta):
    """S from the formula in Papamakarios et al. (2019) plus sbibm's 1e-6 jitter."""
    s_1, s_2, rho = theta[2] ** 2, theta[3] ** 2, math.tanh(theta[4])
    return np.array(
        [[s_1**2 + 1e-6, rho * s_1 * s_2], [rho * s_1 * s_2, s_2**2 + 1e-6]], dtype=float
    )


def test_slcp_moments_at_fixed_theta(getkey):
    n = 5_000
    theta = np.array([0.7, -1.2, 1.1, -0.9, 0.6])
    x = SLCP().simulator(getkey(), jnp.tile(jnp.asarray(theta, jnp.float32), (n, 1)))
    draws = np.asarray(x, dtype=float).reshape(n, 4, 2)
    mean, cov = theta[:2], _slcp_covariance(theta)
    # Each of the four draws is N(mean, cov).
    assert _num_se(draws.mean(0), mean[None], np.sqrt(np.diag(cov) / n)[None]) < 5
    centred = (draws - mean).reshape(4 * n, 2)
    sample_cov = centred.T @ centred / (4 * n)
    se_cov = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / (4 * n))
    assert _num_se(sample_cov, cov, se_cov) < 5
    # Draws are independent: for i != j, E[u_i v_j] = 0 with variance S_11 S_22.
    cross = np.einsum("ni,nj->ij", draws[:, 0] - mean, draws[:, 1] - mean) / n
    assert _num_se(cross, 0.0, np.sqrt(np.outer(np.diag(cov), np.diag(cov)) / n)) < 5


def test_slcp_graph_is_its_simulator(getkey):
    """SLCP's dependencies: each draw ``(u_k, v_k)`` on all of theta, ``v_k`` also on ``u_k``
    (they are correlated), and no edge between draws (independent given theta, as the moments
    test above checks on simulations); the moral graph keeps the draws apart too."""
    task = SLCP()
    theta, x = task.simulate(getkey(), 2)
    layout = gs.data.NodeLayout.from_data({"theta": theta, "x": x})
    base = np.asarray(task.dependencies.adjacency(layout))
    draw_of = np.repeat(np.arange(4), 2)  # x scalar -> its draw
    x_rows = base[5:]
    assert x_rows[:, :5].all() and not base[:5, 5:].any()
    for i in range(8):
        for j in range(8):
            expected = i == j or (draw_of[i] == draw_of[j] and i % 2 == 1 and j == i - 1)
            assert x_rows[i, 5 + j] == expected, (i, j)
    moral = np.asarray(gs.models.undirected_mask(base))[5:, 5:]
    assert (moral == (draw_of[:, None] == draw_of[None, :])).all()


def test_slcp_jitter(getkey):
    """With theta_3 = theta_4 = 0 only the 1e-6 jitter is left: every coordinate has sd 1e-3."""
    n = 5_000
    x = SLCP().simulator(getkey(), jnp.zeros((n, 5)))
    draws = np.asarray(x, dtype=float).reshape(4 * n, 2)
    sd = 1e-3
    assert _num_se(draws.std(0), sd, sd / math.sqrt(2 * 4 * n)) < 5
    assert _num_se(draws.mean(0), 0.0, sd / math.sqrt(4 * n)) < 5


# ---------------------------------------------------------------- references, offline

# (dim_theta, dim_x) of each task; the fake wheel holds observations 1 and 2 of each.
DIMS = {
    "gaussian_linear": (10, 10),
    "gaussian_mixture": (2, 2),
    "slcp": (5, 8),
    "two_moons": (2, 2),
}
FAKE_ROWS = 3
TASK_CLASSES = {
    "gaussian_linear": GaussianLinear,
    "gaussian_mixture": GaussianMixture,
    "slcp": SLCP,
    "two_moons": TwoMoons,
}


def _csv(prefix, rows):
    header = ",".join(f"{prefix}_{i + 1}" for i in range(rows.shape[1]))
    lines = [",".join(repr(float(v)) for v in row) for row in rows]
    return "\n".join([header, *lines]) + "\n"


@pytest.fixture
def fake_wheel(tmp_path):
    """A wheel with sbibm's file layout and a few rows per file; returns (path, arrays)."""
    rng = np.random.default_rng(0)
    path = tmp_path / "fake" / "sbibm-fake.whl"
    path.parent.mkdir()
    arrays = {}
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("sbibm/__init__.py", "")
        for task, (dim_theta, dim_x) in DIMS.items():
            for num in (1, 2):
                entry = {
                    "observation": rng.normal(size=dim_x).astype(np.float32),
                    "true_parameters": rng.normal(size=dim_theta).astype(np.float32),
                    "samples": rng.normal(size=(FAKE_ROWS, dim_theta)).astype(np.float32),
                }
                folder = f"sbibm/tasks/{task}/files/num_observation_{num}/"
                zf.writestr(folder + "observation.csv", _csv("data", entry["observation"][None]))
                zf.writestr(
                    folder + "true_parameters.csv",
                    _csv("parameter", entry["true_parameters"][None]),
                )
                zf.writestr(
                    folder + "reference_posterior_samples.csv.bz2",
                    bz2.compress(_csv("parameter", entry["samples"]).encode()),
                )
                arrays[task, num] = entry
    return path, arrays


def _sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def trusted_fake(fake_wheel, monkeypatch):
    """The fake wheel, offered through GENSBI_EQX_SBIBM_WHEEL with its sha256 pinned."""
    path, arrays = fake_wheel
    monkeypatch.setattr(_references, "SBIBM_WHEEL_SHA256", _sha256(path))
    monkeypatch.setenv("GENSBI_EQX_SBIBM_WHEEL", str(path))
    return path, arrays


def _check_equal(reference, expected):
    assert isinstance(reference, Reference)
    for name in ("observation", "true_parameters", "samples"):
        value = getattr(reference, name)
        assert isinstance(value, np.ndarray) and value.dtype == np.float32
        np.testing.assert_array_equal(value, expected[name])


def test_load_reference_parses_and_caches(trusted_fake, tmp_path, monkeypatch):
    path, arrays = trusted_fake
    cache = tmp_path / "cache"
    for task, (dim_theta, dim_x) in DIMS.items():
        reference = load_reference(task, 2, cache_dir=cache)
        assert reference.task == task and reference.num_observation == 2
        assert reference.observation.shape == (dim_x,)
        assert reference.true_parameters.shape == (dim_theta,)
        assert reference.samples.shape == (FAKE_ROWS, dim_theta)
        _check_equal(reference, arrays[task, 2])
    # The wheel was copied into the cache unchanged, next to one .npz per observation.
    assert (cache / _references.SBIBM_WHEEL).read_bytes() == path.read_bytes()
    npz = sorted(p.name for p in cache.glob("*.npz"))
    assert npz == sorted(f"sbibm-{_references.SBIBM_VERSION}-{task}-2.npz" for task in DIMS)
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]
    # Cached observations are read back without the wheel.
    monkeypatch.delenv("GENSBI_EQX_SBIBM_WHEEL")
    (cache / _references.SBIBM_WHEEL).unlink()
    _check_equal(load_reference("slcp", 2, cache_dir=cache), arrays["slcp", 2])


def test_load_reference_rebuilds_damaged_cache(trusted_fake, tmp_path):
    _, arrays = trusted_fake
    cache = tmp_path / "cache"
    load_reference("two_moons", 1, cache_dir=cache)
    npz = cache / f"sbibm-{_references.SBIBM_VERSION}-two_moons-1.npz"
    npz.write_bytes(b"not an npz")
    _check_equal(load_reference("two_moons", 1, cache_dir=cache), arrays["two_moons", 1])
    with np.load(npz) as data:
        np.testing.assert_array_equal(data["samples"], arrays["two_moons", 1]["samples"])


def test_task_reference_methods_use_env_cache(trusted_fake, tmp_path, monkeypatch):
    _, arrays = trusted_fake
    cache = tmp_path / "env_cache"
    monkeypatch.setenv("GENSBI_EQX_CACHE", str(cache))
    for name, cls in TASK_CLASSES.items():
        task = cls()
        reference = task.reference(1)
        assert reference.task == task.name == name and reference.num_observation == 1
        assert reference.observation.shape == (task.dim_x,)
        assert reference.samples.shape == (FAKE_ROWS, task.dim_theta)
        _check_equal(reference, arrays[name, 1])
    assert (cache / _references.SBIBM_WHEEL).is_file()


def _fake_pip(source, calls, returncode=0):
    """Stands in for ``subprocess.run``: "downloads" ``source`` into the ``--dest`` folder."""

    def run(command, **kwargs):
        calls.append(command)
        if returncode == 0:
            dest = command[command.index("--dest") + 1]
            shutil.copy(source, f"{dest}/{_references.SBIBM_WHEEL}")
            return subprocess.CompletedProcess(command, 0, "", "")
        return subprocess.CompletedProcess(command, returncode, "", "ERROR: no network")

    return run


def test_load_reference_downloads_with_pip(fake_wheel, tmp_path, monkeypatch):
    path, arrays = fake_wheel
    monkeypatch.delenv("GENSBI_EQX_SBIBM_WHEEL", raising=False)
    monkeypatch.setattr(_references, "SBIBM_WHEEL_SHA256", _sha256(path))
    calls = []
    monkeypatch.setattr(_references.subprocess, "run", _fake_pip(path, calls))
    cache = tmp_path / "cache"
    reference = load_reference("gaussian_mixture", 1, cache_dir=cache)
    _check_equal(reference, arrays["gaussian_mixture", 1])
    load_reference("gaussian_mixture", 2, cache_dir=cache)
    # Downloaded once, then served from the cache.
    assert len(calls) == 1
    command = calls[0]
    assert command[:5] == [sys.executable, "-m", "pip", "download", "sbibm==1.1.0"]
    assert "--no-deps" in command and "--only-binary=:all:" in command
    assert (cache / _references.SBIBM_WHEEL).read_bytes() == path.read_bytes()


def test_download_failure_says_how_to_provide_the_wheel(fake_wheel, tmp_path, monkeypatch):
    path, _ = fake_wheel
    monkeypatch.delenv("GENSBI_EQX_SBIBM_WHEEL", raising=False)
    monkeypatch.setattr(_references.subprocess, "run", _fake_pip(path, [], returncode=1))
    cache = tmp_path / "cache"
    with pytest.raises(RuntimeError, match="(?s)exit code 1.*no network.*GENSBI_EQX_SBIBM_WHEEL"):
        load_reference("slcp", 1, cache_dir=cache)
    assert list(cache.iterdir()) == []


@pytest.mark.parametrize("via", ["env", "pip"])
def test_sha_mismatch_is_refused_and_leaves_nothing(fake_wheel, tmp_path, monkeypatch, via):
    path, _ = fake_wheel
    if via == "env":
        monkeypatch.setenv("GENSBI_EQX_SBIBM_WHEEL", str(path))
    else:
        monkeypatch.delenv("GENSBI_EQX_SBIBM_WHEEL", raising=False)
        monkeypatch.setattr(_references.subprocess, "run", _fake_pip(path, []))
    cache = tmp_path / "cache"
    match = f"sha256 {_sha256(path)}, expected {_references.SBIBM_WHEEL_SHA256}"
    with pytest.raises(RuntimeError, match=match):
        load_reference("two_moons", 1, cache_dir=cache)
    assert list(cache.iterdir()) == []


def test_damaged_cached_wheel_is_refused(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / _references.SBIBM_WHEEL).write_bytes(b"truncated")
    with pytest.raises(RuntimeError, match="sha256.*delete it"):
        load_reference("two_moons", 1, cache_dir=cache)


def test_missing_env_wheel(tmp_path, monkeypatch):
    monkeypatch.setenv("GENSBI_EQX_SBIBM_WHEEL", str(tmp_path / "nowhere.whl"))
    with pytest.raises(FileNotFoundError, match="GENSBI_EQX_SBIBM_WHEEL.*nowhere.whl"):
        load_reference("two_moons", 1, cache_dir=tmp_path / "cache")


@pytest.mark.parametrize(
    "task, num, match",
    [
        ("sir", 1, r"`task`.*'gaussian_linear', 'gaussian_mixture', 'slcp', 'two_moons'.*'sir'"),
        ("two_moons", 0, r"`num_observation`.*1\.\.10.*got 0"),
        ("slcp", 11, r"`num_observation`.*1\.\.10.*got 11"),
        ("slcp", True, r"`num_observation`.*got True"),
    ],
)
def test_load_reference_bad_arguments(task, num, match, tmp_path):
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match=match):
        load_reference(task, num, cache_dir=cache)
    # Arguments are checked before anything is created or fetched.
    assert not cache.exists()


def test_gaussian_linear_reference_needs_dim_10():
    with pytest.raises(ValueError, match="dim_theta = 10 and dim_x = 10; .* dim_theta = 3 and"):
        GaussianLinear(3).reference(1)


# ---------------------------------------------------------------- references, sbibm's wheel


def test_sbibm_references():
    """sbibm's own files: observation 1 of every task, through the default cache (pip the first
    time)."""
    for name, cls in TASK_CLASSES.items():
        task = cls()
        reference = load_reference(name, 1)
        assert reference.task == name and reference.num_observation == 1
        assert reference.observation.shape == (task.dim_x,)
        assert reference.true_parameters.shape == (task.dim_theta,)
        assert reference.samples.shape == (10_000, task.dim_theta)
        assert reference.samples.dtype == np.float32
        assert np.all(np.isfinite(reference.samples)) and np.all(np.isfinite(reference.observation))
        # Inside the prior's support, which for the uniform priors is a box.
        assert np.all(np.isfinite(task.prior.log_prob(jnp.asarray(reference.samples))))
        assert np.isfinite(task.prior.log_prob(jnp.asarray(reference.true_parameters)))

    # gaussian_linear: the reference samples follow the closed-form posterior N(x_o / 2, 0.05 I).
    task = GaussianLinear()
    reference = task.reference(1)
    posterior = task.true_posterior(jnp.asarray(reference.observation))
    samples = reference.samples.astype(float)
    n = len(samples)
    mean, var = np.asarray(posterior.mean), np.diag(np.asarray(posterior.covariance))
    assert _num_se(samples.mean(0), mean, np.sqrt(var / n)) < 5
    assert _num_se(samples.var(0, ddof=1), var, var * math.sqrt(2 / (n - 1))) < 5

    # two_moons: the parameters that generated the observation lie among the posterior samples.
    reference = TwoMoons().reference(1)
    low, high = reference.samples.min(0), reference.samples.max(0)
    assert np.all((low <= reference.true_parameters) & (reference.true_parameters <= high))

    # slcp: the observation is four draws from N(m, S) at the true parameters, flattened draw by
    # draw; their squared Mahalanobis distances sum to a chi^2_8 draw, P(chi^2_8 > 30) < 3e-4.
    # Read coordinate by coordinate instead, the same numbers give about 5000 (rho = 0.995).
    reference = SLCP().reference(1)
    theta = reference.true_parameters.astype(float)
    draws = reference.observation.astype(float).reshape(4, 2) - theta[:2]
    distance = np.einsum("ni,ij,nj->", draws, np.linalg.inv(_slcp_covariance(theta)), draws)
    assert distance < 30
