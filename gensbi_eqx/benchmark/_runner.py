"""Train on an sbibm task, sample its reference observations, score the samples by C2ST.

The results table is a CSV with one row per (run, observation); every run appends to it and the
Markdown summary next to it is rebuilt from the whole table.
"""

import csv
import datetime
import io
import os
import platform
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import diffrax
import jax
import jax.random as jr
import numpy as np
from tqdm.auto import tqdm

from .._arguments import check_positive_ints
from .._atomic import atomic_writer
from .._custom_types import Key
from .._version import __version__
from ..api import fit
from ..diagnostics import c2st, c2st_jax
from ..methods import EDM, VESDE, VPSDE, FlowMatching
from ..models import Flux1, Flux1Joint, Simformer
from ..samplers import ODE, SDE, AbstractSampler, AdaptiveSDE, EDMSampler, default_sampler
from ..tasks import TASKS as ALL_TASKS
from ..tasks import AbstractSBIBMTask
from ..training import Training

# The tasks with sbibm references, which C2ST scores against.
TASKS = {name: cls for name, cls in ALL_TASKS.items() if issubclass(cls, AbstractSBIBMTask)}
MODELS = {
    "simformer": lambda data, key: Simformer.for_data(data, key=key),
    "flux1joint": lambda data, key: Flux1Joint.for_data(data, key=key),
    "flux1": lambda data, key: Flux1.for_data(data, condition_on=("x",), key=key),
}
METHODS = {"ve": VESDE, "vp": VPSDE, "fm": FlowMatching, "edm": EDM}
CLASSIFIERS = {"sklearn": c2st, "jax": c2st_jax}
# The diffrax ODE solvers a sampler may name on the command line, ``ode-<solver>[:steps]``.
ODE_SOLVERS = {
    "euler": diffrax.Euler,
    "heun": diffrax.Heun,
    "midpoint": diffrax.Midpoint,
    "ralston": diffrax.Ralston,
    "bosh3": diffrax.Bosh3,
    "tsit5": diffrax.Tsit5,
    "dopri5": diffrax.Dopri5,
    "dopri8": diffrax.Dopri8,
}
CLASSIFIER_NAMES = {"sklearn": "MLP (sbibm, scikit-learn)", "jax": "MLP (JAX)"}

COLUMNS = (
    "date", "task", "simulations", "model", "method", "sampler", "steps", "observation", "c2st",
    "classifier", "train_seconds", "train_steps", "sample_seconds", "num_samples",
    "num_parameters", "seed", "machine", "jax", "gensbi_eqx",
)


def machine_description() -> str:
    """CPU model and core count (or the accelerator), to say where numbers were measured."""
    device = jax.devices()[0]
    if device.platform != "cpu":
        return f"{jax.device_count()} x {device.device_kind}"
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{os.cpu_count()}-core CPU ({model})"


def _choice(value: str, choices: dict, argument: str) -> None:
    if value not in choices:
        raise ValueError(f"`{argument}` must be one of {sorted(choices)}, got {value!r}.")


def parse_sampler(text: str) -> AbstractSampler:
    """A sampler from its command-line spelling: ``"sde"`` or ``"sde:500"`` (`SDE`),
    ``"adaptive-sde"`` (`AdaptiveSDE`), ``"ode"`` (adaptive Tsit5, `ODE()`), ``"ode-heun:50"``
    (``ODE(diffrax.Heun(), steps=50)``; any solver of ``ODE_SOLVERS``, adaptive without
    ``:steps``), ``"edm"`` or ``"edm:18"`` (`EDMSampler`). Raises ValueError otherwise."""
    name, colon, count = text.strip().lower().partition(":")
    steps = None
    if colon:
        try:
            steps = int(count)
        except ValueError:
            raise ValueError(f"the steps after ':' must be an integer, got {text!r}.") from None
        if steps < 1:
            raise ValueError(f"the steps after ':' must be positive, got {text!r}.")
    at = {} if steps is None else {"steps": steps}
    if name == "sde":
        return SDE(**at)
    if name == "edm":
        return EDMSampler(**at)
    if name == "adaptive-sde" and steps is None:
        return AdaptiveSDE()
    if name == "ode" and steps is None:
        return ODE()
    solver = name.removeprefix("ode-") if name.startswith("ode-") else None
    if solver in ODE_SOLVERS:
        return ODE(ODE_SOLVERS[solver](), **at)
    raise ValueError(
        f"unknown sampler {text!r}; expected sde[:steps], adaptive-sde, ode (adaptive Tsit5), "
        f"ode-<solver>[:steps] with a solver in {sorted(ODE_SOLVERS)}, or edm[:steps]."
    )


def sampler_label(sampler: AbstractSampler) -> tuple[str, int | str]:
    """``(name, steps)`` for the results table, in the spelling of `parse_sampler`; steps are
    ``""`` where the solver chooses them."""
    steps = getattr(sampler, "steps", None)
    steps = "" if steps is None else steps
    if isinstance(sampler, SDE):
        return "sde", steps
    if isinstance(sampler, AdaptiveSDE):
        return "adaptive-sde", steps
    if isinstance(sampler, EDMSampler):
        return "edm", steps
    if isinstance(sampler, ODE):
        solver = next(
            (name for name, kind in ODE_SOLVERS.items() if type(sampler.solver) is kind), None
        )
        if solver == "tsit5" and steps == "":
            return "ode", steps
        return f"ode-{solver or type(sampler.solver).__name__.lower()}", steps
    return type(sampler).__name__.lower(), steps


def run(
    key: Key,
    task: str,
    *,
    simulations: int,
    model: str = "simformer",
    method: str = "ve",
    observations: Sequence[int] = tuple(range(1, 11)),
    num_samples: int = 10_000,
    sampler: AbstractSampler | None = None,
    max_steps: int = 10_000,
    classifier: str = "sklearn",
    seed: int = 0,
    progress: bool = True,
) -> list[dict]:
    """Train one estimator on ``simulations`` draws of ``task`` and score its posterior at each
    reference observation (sbibm numbering, 1-10) by C2ST against the reference samples.

    ``task``, ``model``, ``method`` and ``classifier`` are keys of ``TASKS``, ``MODELS``,
    ``METHODS`` and ``CLASSIFIERS``; ``sampler`` is a sampler object such as
    ``gs.SDE(steps=500)`` (default: the method's, `gensbi_eqx.samplers.default_sampler`);
    ``max_steps`` bounds the training steps.

    Returns one row (a dict with the keys of ``COLUMNS``) per observation.
    """
    _choice(task, TASKS, "task")
    _choice(model, MODELS, "model")
    _choice(method, METHODS, "method")
    _choice(classifier, CLASSIFIERS, "classifier")
    observations = tuple(observations)
    if not observations or any(not 1 <= i <= 10 for i in observations):
        raise ValueError(f"`observations` must be numbers in 1..10, got {observations}.")
    generative = METHODS[method]()
    sampler = default_sampler(generative) if sampler is None else sampler
    if not isinstance(sampler, AbstractSampler):
        raise TypeError(
            f"`sampler` must be a sampler such as gs.SDE(steps=500), got {sampler!r}; on the "
            "command line, a string such as 'sde:500' (see parse_sampler)."
        )
    sampler.check_method(generative)  # before training, not after it
    training = Training(max_steps=max_steps)
    problem = TASKS[task]()
    references = [problem.reference(i) for i in observations]
    available = min(len(r.samples) for r in references)
    check_positive_ints(num_samples=num_samples)
    if num_samples > available:
        raise ValueError(
            f"`num_samples` must be an integer in 1..{available}: C2ST compares as many "
            f"reference draws as samples, and the references hold {available}; got "
            f"{num_samples!r}."
        )

    key_data, key_model, key_fit, key_sample, key_c2st = jr.split(key, 5)
    theta, x = problem.simulate(key_data, simulations)
    data = {"theta": theta, "x": x}
    start = time.perf_counter()
    estimator = fit(
        key_fit,
        MODELS[model](data, key_model),
        data,
        method=generative,
        training=training,
        progress=progress,
    )
    jax.block_until_ready(estimator.model)
    train_seconds = time.perf_counter() - start

    sampler_name, sampler_steps = sampler_label(sampler)
    common = {
        "date": datetime.date.today().isoformat(),
        "task": task,
        "simulations": simulations,
        "model": model,
        "method": method,
        "sampler": sampler_name,
        "steps": sampler_steps,
        "classifier": classifier,
        "train_seconds": round(train_seconds, 1),
        "train_steps": len(estimator.history.train_loss),
        "num_samples": num_samples,
        "num_parameters": estimator.num_parameters,
        "seed": seed,
        "machine": machine_description(),
        "jax": jax.__version__,
        "gensbi_eqx": __version__,
    }
    rows = []
    keys = jr.split(key_sample, len(references))
    c2st_keys = jr.split(key_c2st, len(references))
    bar = tqdm(references, disable=not progress, desc="observations", unit="obs")
    for reference, k_sample, k_c2st in zip(bar, keys, c2st_keys):
        start = time.perf_counter()
        samples = estimator.sample(
            k_sample, {"x": reference.observation}, num_samples, sampler=sampler
        )["theta"]
        samples = np.asarray(jax.block_until_ready(samples))
        sample_seconds = time.perf_counter() - start
        truth = reference.samples[:num_samples]  # as many as drawn: chance is then 0.5
        if classifier == "sklearn":
            score = c2st(truth, samples)
        else:
            score = c2st_jax(truth, samples, key=k_c2st)
        bar.set_postfix(c2st=f"{score:.3f}")
        rows.append(
            {
                **common,
                "observation": reference.num_observation,
                "c2st": round(float(score), 4),
                "sample_seconds": round(sample_seconds, 2),
            }
        )
    return rows


def read_table(path: str | os.PathLike) -> list[dict]:
    """The rows of a results CSV (all values as strings); empty if it does not exist."""
    path = Path(path)
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def append_rows(path: str | os.PathLike, rows: list[dict]) -> list[dict]:
    """Append ``rows`` to the CSV at ``path`` (rewritten atomically); returns the whole table."""
    table = read_table(path) + [{k: str(row[k]) for k in COLUMNS} for row in rows]
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: row.get(k, "") for k in COLUMNS} for row in table)
    with atomic_writer(path) as f:
        f.write(text.getvalue().encode())
    return table


def summarise(table: list[dict]) -> str:
    """A Markdown table: one line per configuration, C2ST mean and spread over observations."""
    groups: dict[tuple, list[dict]] = {}
    config = ("task", "simulations", "model", "method", "sampler", "steps", "classifier", "seed")
    for row in table:
        groups.setdefault(tuple(row[k] for k in config), []).append(row)
    lines = [
        "| task | sims | model | method | sampler | C2ST mean (sd) | obs | classifier "
        "| train s | sample s / obs | machine | date |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (task, sims, model, method, sampler, steps, classifier, _), rows in groups.items():
        scores = [float(r["c2st"]) for r in rows]
        spread = statistics.stdev(scores) if len(scores) > 1 else 0.0
        # The first observation pays for compiling the sampler; the median leaves it out.
        sample_s = statistics.median(float(r["sample_seconds"]) for r in rows)
        sampler_text = f"{sampler} {steps}" if steps else sampler
        lines.append(
            f"| {task} | {int(sims):,} | {model} | {method} | {sampler_text} "
            f"| {statistics.fmean(scores):.3f} ({spread:.3f}) | {len(rows)} "
            f"| {CLASSIFIER_NAMES.get(classifier, classifier)} | {rows[0]['train_seconds']} "
            f"| {sample_s:.1f} | {rows[0]['machine']} | {rows[0]['date']} |"
        )
    return "\n".join(lines) + "\n"


def write_summary(path: str | os.PathLike, table: list[dict]) -> None:
    with atomic_writer(path) as f:
        f.write(summarise(table).encode())
