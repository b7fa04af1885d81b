"""sbibm's published reference posteriors, read as data.

sbibm (Lueckmann et al., 2021, *Benchmarking Simulation-Based Inference*, AISTATS;
https://github.com/sbi-benchmark/sbibm) publishes for each task ten observations, the parameters
that generated them and 10 000 samples from each reference posterior. They ship as CSV files in
its wheel and are read from there as data: sbibm is never imported, so neither it nor torch is
needed. The files are MIT-licensed, copyright 2020 Jan-Matthis Lueckmann, Jan Boelts,
David S. Greenberg, Pedro J. Gonçalves and Jakob H. Macke.

The wheel is fetched once with pip (or copied from the path in ``GENSBI_EQX_SBIBM_WHEEL``),
checked against a pinned sha256 and kept in a cache directory: ``cache_dir`` when given, else
``GENSBI_EQX_CACHE``, else ``~/.cache/gensbi_eqx``. Each observation parsed from it is kept next
to it as a small ``.npz``, so later loads do not touch the wheel.
"""

import bz2
import dataclasses
import hashlib
import io
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .._atomic import atomic_writer
from .._custom_types import Float


SBIBM_VERSION = "1.1.0"
SBIBM_WHEEL = f"sbibm-{SBIBM_VERSION}-py2.py3-none-any.whl"
SBIBM_WHEEL_SHA256 = "12ecc6b4d327b92f9225f08faa6405e4274fb8e75943d86a53157d1b1bcfaf74"
NUM_OBSERVATIONS = 10
# (dim_theta, dim_x) of every task whose references can be loaded.
TASK_DIMS = {
    "gaussian_linear": (10, 10),
    "gaussian_mixture": (2, 2),
    "slcp": (5, 8),
    "two_moons": (2, 2),
}
_FIELDS = ("observation", "true_parameters", "samples")


@dataclasses.dataclass(frozen=True, eq=False)
class Reference:
    """One of sbibm's reference problems, as float32 NumPy arrays.

    - ``task``, ``num_observation``: which problem (sbibm's task name; 1-10).
    - ``observation``: the observed data, ``(dim_x,)``.
    - ``true_parameters``: the parameters that generated it, ``(dim_theta,)``.
    - ``samples``: reference posterior samples, ``(num_samples, dim_theta)`` (10 000 in sbibm).
    """

    task: str
    num_observation: int
    observation: Float[np.ndarray, " dim_x"]
    true_parameters: Float[np.ndarray, " dim_theta"]
    samples: Float[np.ndarray, "num_samples dim_theta"]


def load_reference(
    task: str, num_observation: int, *, cache_dir: str | os.PathLike | None = None
) -> Reference:
    """sbibm's observation ``num_observation`` (1-10) of ``task`` with its reference posterior.

    ``task``: one of ``"gaussian_linear"``, ``"gaussian_mixture"``, ``"slcp"``, ``"two_moons"``.
    ``cache_dir``: where the sbibm wheel and the parsed arrays are kept (see the module
    docstring for the default). The first call downloads the wheel (about 18 MB) with pip.
    """
    if task not in TASK_DIMS:
        choices = ", ".join(repr(name) for name in TASK_DIMS)
        raise ValueError(f"`task` must be one of {choices}, got {task!r}.")
    if (
        isinstance(num_observation, bool)
        or not isinstance(num_observation, int)
        or not 1 <= num_observation <= NUM_OBSERVATIONS
    ):
        raise ValueError(
            f"`num_observation` must be an int in 1..{NUM_OBSERVATIONS}, got {num_observation!r}."
        )
    cache = _cache_dir(cache_dir)
    npz = cache / f"sbibm-{SBIBM_VERSION}-{task}-{num_observation}.npz"
    arrays = _read_npz(npz, task)
    if arrays is None:
        wheel = _wheel(cache)
        arrays = _read_wheel(wheel, task, num_observation)
        _check_shapes(arrays, task, f"{wheel} ({task}, observation {num_observation})")
        with atomic_writer(npz) as f:
            np.savez(f, **arrays)
    return Reference(task, num_observation, **arrays)


def _cache_dir(cache_dir: str | os.PathLike | None) -> Path:
    if cache_dir is None:
        cache_dir = os.environ.get("GENSBI_EQX_CACHE") or Path.home() / ".cache" / "gensbi_eqx"
    path = Path(cache_dir).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _check_shapes(arrays: dict[str, np.ndarray], task: str, source: str) -> None:
    dim_theta, dim_x = TASK_DIMS[task]
    expected = {"observation": (dim_x,), "true_parameters": (dim_theta,)}
    for name, shape in expected.items():
        if arrays[name].shape != shape:
            raise RuntimeError(
                f"{name} in {source} should have shape {shape}, got {arrays[name].shape}."
            )
    samples = arrays["samples"].shape
    if len(samples) != 2 or samples[0] == 0 or samples[1] != dim_theta:
        raise RuntimeError(
            f"samples in {source} should have shape (num_samples, {dim_theta}), got {samples}."
        )


def _read_npz(path: Path, task: str) -> dict[str, np.ndarray] | None:
    """The arrays cached at ``path``, or ``None`` if there is no usable cache entry."""
    try:
        with np.load(path) as data:
            arrays = {name: data[name] for name in _FIELDS}
        _check_shapes(arrays, task, str(path))
    # A damaged entry is rebuilt from the wheel rather than trusted or fatal.
    except (OSError, EOFError, ValueError, KeyError, RuntimeError, zipfile.BadZipFile):
        return None
    return arrays


def _read_wheel(wheel: Path, task: str, num_observation: int) -> dict[str, np.ndarray]:
    folder = f"sbibm/tasks/{task}/files/num_observation_{num_observation}/"
    with zipfile.ZipFile(wheel) as zf:
        observation = _parse_csv(zf.read(folder + "observation.csv"))
        true_parameters = _parse_csv(zf.read(folder + "true_parameters.csv"))
        samples_bz2 = zf.read(folder + "reference_posterior_samples.csv.bz2")
    samples = _parse_csv(bz2.decompress(samples_bz2))
    # sbibm writes a single observation as a one-row table.
    return {
        "observation": observation[0] if len(observation) == 1 else observation,
        "true_parameters": true_parameters[0] if len(true_parameters) == 1 else true_parameters,
        "samples": samples,
    }


def _parse_csv(data: bytes) -> np.ndarray:
    """A CSV with one header line of column names, as float32 ``(rows, columns)``."""
    return np.loadtxt(io.StringIO(data.decode()), np.float32, delimiter=",", skiprows=1, ndmin=2)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _wheel(cache: Path) -> Path:
    """The sha-checked sbibm wheel in ``cache``, fetched there first if it is missing."""
    path = cache / SBIBM_WHEEL
    if path.is_file():
        digest = _sha256(path)
        if digest != SBIBM_WHEEL_SHA256:
            raise RuntimeError(
                f"{path} has sha256 {digest}, expected {SBIBM_WHEEL_SHA256} for sbibm "
                f"{SBIBM_VERSION}; delete it so it is fetched again."
            )
        return path
    local = os.environ.get("GENSBI_EQX_SBIBM_WHEEL")
    if local:
        source = Path(local).expanduser()
        if not source.is_file():
            raise FileNotFoundError(
                f"GENSBI_EQX_SBIBM_WHEEL is {local!r}, which is not a file; point it at a copy "
                f"of {SBIBM_WHEEL} or unset it to download the wheel with pip."
            )
        _install(source, path)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            _install(_download(Path(tmp)), path)
    return path


def _install(source: Path, dest: Path) -> None:
    """Copy ``source`` to ``dest`` if its sha256 is the pinned one; otherwise leave no trace."""
    digest = hashlib.sha256()
    # Hashing the bytes as they are written checks exactly what lands in the cache; raising
    # inside the writer removes its temporary file, so a bad wheel never appears at ``dest``.
    with open(source, "rb") as src, atomic_writer(dest) as dst:
        for block in iter(lambda: src.read(1 << 20), b""):
            digest.update(block)
            dst.write(block)
        if digest.hexdigest() != SBIBM_WHEEL_SHA256:
            raise RuntimeError(
                f"{source} has sha256 {digest.hexdigest()}, expected {SBIBM_WHEEL_SHA256} for "
                f"sbibm {SBIBM_VERSION}; refusing to use it."
            )


def _download(dest: Path) -> Path:
    """Download the sbibm wheel into the directory ``dest`` with pip; returns its path."""
    command = [
        sys.executable, "-m", "pip", "download", f"sbibm=={SBIBM_VERSION}",
        "--no-deps", "--only-binary=:all:", "--dest", str(dest),
    ]  # fmt: skip
    how_to = (
        f"To provide it by hand, download {SBIBM_WHEEL} (`pip download sbibm=={SBIBM_VERSION} "
        f"--no-deps` on a machine with internet access, or from "
        f"https://pypi.org/project/sbibm/{SBIBM_VERSION}/#files) and set GENSBI_EQX_SBIBM_WHEEL "
        f"to its path."
    )
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise RuntimeError(f"Could not run pip to download sbibm: {error}. {how_to}") from error
    wheel = dest / SBIBM_WHEEL
    if result.returncode != 0 or not wheel.is_file():
        output = (result.stderr or result.stdout).strip()[-2000:]
        raise RuntimeError(
            f"Downloading sbibm {SBIBM_VERSION} with pip failed (exit code {result.returncode})"
            f": {output or 'no output'}\n{how_to}"
        )
    return wheel
