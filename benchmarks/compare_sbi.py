"""gensbi_eqx against sbi 0.27.0 (PyTorch, CPU) on sbibm tasks, end to end, side by side.

    python benchmarks/compare_sbi.py [--tasks two_moons gaussian_mixture slcp]
        [--simulations 10000] [--observations 1-10] [--seeds 1] [--num-samples 10000]
        [--sbi-methods npe_nsf npe_maf npse fmpe] [--skip-ours] [--budgets
        [--sbi-epoch-budgets 10 25 50 100] [--our-step-budgets 1000 2500 5000]]
        [--classifier sklearn|jax] [--small] [--out benchmarks/results/compare_sbi]

sbi needs PyTorch and cannot share our venv, so the first run creates a separate one,
``benchmarks/.venv-sbi``, with ``python3 -m venv``: torch 2.13.0 first (a CPU build where pip
finds one; nothing else is allowed to bring another torch), then the pins of
``benchmarks/sbi-requirements.txt`` (or ``sbi==0.27.0``, whose resolved versions are then written
there). sbi runs in ``benchmarks/_sbi_worker.py`` with that venv's Python, ours in this file with
``--worker``; every run (one library or sbi method, one task, one seed, one budget) gets a FRESH
worker process, so each pays its own first-call and compile costs, as a user does.

Per task and seed, ``task.simulate`` draws the simulations once here and both libraries train on
the SAME ``(theta, x)``; both sample at the SAME sbibm observations (``--observations``, 1-10).
The runs follow each other in a fixed order (ours, NPE-NSF, NPE-MAF, NPSE, FMPE) so they see the
same machine state, and each is timed by its worker:

- ours: ``run_ours`` below, the library's defaults (``gs.fit``, ``Estimator.sample``); training =
  ``Simformer.for_data`` + ``fit``; each observation's draws = one ``Estimator.sample`` call,
  brought to the host.
- sbi: ``NPE`` with ``density_estimator="nsf"`` or ``"maf"``, ``NPSE`` (its default SDE, VE) and
  ``FMPE``, each with the task's prior as a torch distribution and all of sbi's defaults
  (``append_simulations(theta, x).train()``, ``build_posterior()``; NPE rejects draws outside
  the prior support, as by default); training = trainer + ``train`` + ``build_posterior``; each
  observation's draws = one ``posterior.sample((n,), x=x_o)``.

Total time = simulation (shared, compile included) + training + the draws at every observation;
the draws are scored here by C2ST against sbibm's reference posterior (the first
``--num-samples`` of its 10,000 samples), with ``gs.diagnostics.c2st`` (scikit-learn's MLP, as
sbibm) or ``--classifier jax`` (``c2st_jax``, the same protocol, faster); C2ST time is reported
apart and not counted. ``--budgets`` adds runs of NPE-NSF with ``--sbi-epoch-budgets`` as
``max_num_epochs`` and of ours with ``--our-step-budgets`` as ``max_steps`` (each library's
default run is the largest budget), so that the time each needs to reach a C2ST can be read off
its curve by linear interpolation; the report gives the ratio of those times. (sbi 0.27.0's loop
runs epochs 0 to ``max_num_epochs`` inclusive, so it reports one epoch more than the cap.)

Wall time is what a user waits for, but on a shared machine it mostly measures the wait for a
core: every run also records its worker's CPU time (all threads) and the load average before it
started, and the report gives both, so that a loaded run can be recognised.

Writes ``OUT.json`` (every run, every number) and ``OUT.md`` (tables, date, machine, versions,
command), atomically, after every run. ``--small`` is a smoke test (two moons, 1,000
simulations, one observation, 1,000 draws, a few epochs and steps); its report says so.
"""

import argparse
import datetime
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _workers import (
    REPO, Stopwatch, Worker, WorkerError, apply_defaults, ensure_venv, max_rss_mib, serve,
    write_outputs,
)

HERE = Path(__file__).resolve().parent
SBI_VERSION = "0.27.0"
TORCH_VERSION = "2.13.0"
REQUIREMENTS = HERE / "sbi-requirements.txt"
SBI_WORKER = HERE / "_sbi_worker.py"
SBI_METHODS = ("npe_nsf", "npe_maf", "npse", "fmpe")
LABELS = {
    "ours": "gensbi_eqx: Simformer, VE SDE",
    "npe_nsf": "sbi NPE, NSF",
    "npe_maf": "sbi NPE, MAF",
    "npse": "sbi NPSE (VE SDE)",
    "fmpe": "sbi FMPE",
}
TASKS = ("two_moons", "gaussian_mixture", "slcp", "gaussian_linear")

FULL = dict(
    tasks=["two_moons", "gaussian_mixture", "slcp"], simulations=10_000, observations="1-10",
    num_samples=10_000, sbi_epochs=None, our_steps=None,
    sbi_epoch_budgets=[10, 25, 50, 100], our_step_budgets=[1_000, 2_500, 5_000],
)
# Budgets of the main runs in --small (None: the library's default); the budget runs stay below.
SMALL = dict(
    tasks=["two_moons"], simulations=1_000, observations="1", num_samples=1_000,
    sbi_epochs=3, our_steps=100, sbi_epoch_budgets=[1], our_step_budgets=[50],
)


# =============================================================================================
# gensbi_eqx's side. EVERY call into the library's fit/sample API is in `run_ours`: when that
# API changes, adapt this one function. Everything is the library's default.
# =============================================================================================


def run_ours(key, task_name: str, theta, x, observations, num_samples: int,
             max_steps: int | None = None) -> dict:
    """Train gensbi_eqx with its defaults on ``(theta, x)`` and draw ``num_samples`` posterior
    samples at each row of ``observations``.

    ``task_name`` is unused today (room for task-specific settings); ``max_steps`` caps
    training for the budget curves (``None``: the library's default). Returns the training
    seconds (model built + ``fit``), the seconds of each observation's draws (on the host),
    both as wall and CPU time, the draws, the steps trained and the parameter count."""
    import jax
    import jax.numpy as jnp
    import jax.random as jr

    import gensbi_eqx as gs

    key_model, key_fit, key_sample = jr.split(key, 3)
    training = gs.Training() if max_steps is None else gs.Training(max_steps=max_steps)
    with Stopwatch() as train:
        data = {"theta": jnp.asarray(theta), "x": jnp.asarray(x)}
        model = gs.Simformer.for_data(data, key=key_model)
        est = gs.fit(key_fit, model, data, training=training, progress=False)
        jax.block_until_ready(est)

    draws, sample_s, sample_cpu_s = [], [], []
    for i, x_o in enumerate(observations):
        with Stopwatch() as draw:
            post = est.sample(jr.fold_in(key_sample, i), {"x": jnp.asarray(x_o)},
                              num_samples=num_samples)["theta"]
            draws.append(np.asarray(jax.block_until_ready(post)))
        sample_s.append(draw.wall)
        sample_cpu_s.append(draw.cpu)
    history = est.history
    return {
        "train_s": train.wall,
        "train_cpu_s": train.cpu,
        "sample_s": sample_s,
        "sample_cpu_s": sample_cpu_s,
        "draws": draws,
        "steps": None if history is None else len(history.train_loss),
        "stopped_early": None if history is None else bool(history.stopped_early),
        "parameters": est.num_parameters,
    }


class OursWorker:
    """Our side of the worker protocol (``_workers.serve``); the sbi worker's twin."""

    def init(self) -> dict:
        import importlib.metadata
        import platform

        import jax

        import gensbi_eqx as gs

        device = jax.devices()[0]
        return {
            "versions": {"gensbi_eqx": gs.__version__,
                         **{name: importlib.metadata.version(name)
                            for name in ("jax", "jaxlib", "equinox", "optax", "numpy")}},
            "python": platform.python_version(),
            "device": f"{jax.device_count()} x {device.device_kind} ({device.platform})",
            "max_rss_mib": max_rss_mib(),
        }

    def run(self, task_name: str, data_path: str, seed: int, num_samples: int,
            save_prefix: str, max_steps: int | None = None) -> dict:
        import jax.random as jr

        data = np.load(data_path)
        # The simulation key is jr.key(seed); training and sampling take another stream.
        out = run_ours(jr.fold_in(jr.key(seed), 1), task_name, data["theta"], data["x"],
                       data["observations"], num_samples, max_steps=max_steps)
        paths = []
        for i, draws in enumerate(out.pop("draws")):
            paths.append(f"{save_prefix}-{i}.npy")
            np.save(paths[-1], draws)
        return {**out, "sample_paths": paths, "max_rss_mib": max_rss_mib()}


# =============================================================================================
# The driver
# =============================================================================================


def parse_observations(spec: str) -> list[int]:
    """``"1-3,7"`` -> ``[1, 2, 3, 7]``; sbibm numbers its observations 1 to 10."""
    numbers = []
    for part in spec.split(","):
        low, _, high = part.partition("-")
        numbers += range(int(low), int(high or low) + 1)
    if not numbers or any(not 1 <= n <= 10 for n in numbers):
        raise ValueError(f"observations are numbered 1 to 10, got {spec!r}")
    return sorted(set(numbers))


def prior_spec(prior) -> dict:
    """Our task's prior, described for the sbi worker to rebuild as a torch distribution."""
    import gensbi_eqx as gs

    if isinstance(prior, gs.tasks.Uniform):
        return {"kind": "box", "low": np.asarray(prior.low).tolist(),
                "high": np.asarray(prior.high).tolist()}
    if isinstance(prior, gs.tasks.Normal):
        return {"kind": "normal", "loc": np.asarray(prior.loc).tolist(),
                "covariance": np.asarray(prior.covariance).tolist()}
    raise TypeError(f"no torch counterpart for a prior of type {type(prior).__name__}")


def make_task(name: str):
    import gensbi_eqx as gs

    classes = {cls.name: cls for cls in (gs.tasks.TwoMoons, gs.tasks.GaussianMixture,
                                         gs.tasks.SLCP, gs.tasks.GaussianLinear)}
    return classes[name]()


def load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def mean(values):
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None


def spread(values) -> dict:
    values = [v for v in values if v is not None]
    if not values:
        return {"mean": None, "std": None, "min": None, "max": None, "n": 0}
    return {"mean": statistics.fmean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values), "n": len(values)}


class Bench:
    """One invocation: starts the workers, runs the plan, scores and records every run."""

    def __init__(self, args, results: dict, tmp: Path, sbi_python: Path | None):
        import gensbi_eqx as gs

        self.args, self.results, self.tmp, self.sbi_python = args, results, tmp, sbi_python
        self.c2st = (gs.diagnostics.c2st if args.classifier == "sklearn"
                     else gs.diagnostics.c2st_jax)

    def worker(self, library: str, tag: str) -> Worker:
        """A fresh worker process for one run."""
        if library == "ours":
            argv = [sys.executable, str(Path(__file__).resolve()), "--worker"]
            cwd = REPO
        else:
            argv = [str(self.sbi_python), str(SBI_WORKER)]
            cwd = self.tmp  # sbi's default TensorBoard logs (./sbi-logs) land here
        return Worker(library, argv, self.tmp / f"{tag}.log", dict(os.environ), cwd=cwd)

    def run(self, task_name: str, seed: int, library: str, budget: int | None, data_path: Path,
            prior: dict, references: list, simulate_s: float) -> dict:
        """One run in its own worker, its draws scored; the record goes into the results."""
        tag = f"{task_name}-{seed}-{library}-{budget or 'default'}"
        load = load_average()
        worker = self.worker(library, tag)
        try:
            init = worker.call("init")
            common = dict(data_path=str(data_path), seed=seed,
                          num_samples=self.args.num_samples, save_prefix=str(self.tmp / tag))
            if library == "ours":
                r = worker.call("run", task_name=task_name, max_steps=budget, **common)
            else:
                r = worker.call("run", method=library, prior=prior, max_num_epochs=budget,
                                **common)
        finally:
            worker.close()
        versions = self.results.setdefault("versions", {})
        versions.setdefault("gensbi_eqx" if library == "ours" else "sbi", init["versions"])
        if library != "ours":
            self.results.setdefault("sbi_worker", {k: init[k] for k in (
                "python", "torch_threads", "torch_interop_threads", "train_defaults")})
        else:
            self.results.setdefault("ours_worker", {k: init[k] for k in ("python", "device")})

        c2st, c2st_s = [], []
        for path, reference in zip(r.pop("sample_paths"), references):
            draws = np.load(path)
            start = time.perf_counter()
            try:
                c2st.append(float(self.c2st(reference, draws)))
            except ValueError as error:  # non-finite draws: no score, say why
                c2st.append(None)
                r.setdefault("c2st_errors", []).append(str(error))
            c2st_s.append(time.perf_counter() - start)
        record = {
            "task": task_name, "seed": seed, "library": library, "budget": budget,
            "simulate_s": simulate_s,
            **r,
            "sample_s_total": sum(r["sample_s"]),
            "total_s": simulate_s + r["train_s"] + sum(r["sample_s"]),
            "c2st": c2st, "c2st_s": c2st_s,
            "load_average_before": load,
        }
        self.results["runs"].append(record)
        count = r.get("steps", r.get("epochs"))
        unit = "steps" if library == "ours" else "epochs"
        print(f"  {LABELS[library]}{'' if budget is None else f' (budget {budget})'}: train "
              f"{r['train_s']:.1f} s (CPU {r['train_cpu_s']:.1f} s, {count} {unit}), draws "
              f"{', '.join(f'{s:.1f}' for s in r['sample_s'])} s, total "
              f"{record['total_s']:.1f} s, C2ST "
              f"{', '.join('-' if c is None else f'{c:.3f}' for c in c2st)} (load {load})",
              flush=True)
        return record

    def task(self, task_name: str) -> None:
        import jax
        import jax.random as jr

        args = self.args
        task = make_task(task_name)
        observations = parse_observations(args.observations)
        refs = [task.reference(i) for i in observations]
        references = [np.asarray(ref.samples)[: args.num_samples] for ref in refs]
        x_os = np.stack([np.asarray(ref.observation, np.float32).reshape(-1) for ref in refs])
        prior = prior_spec(task.prior)
        methods = [] if args.skip_ours else ["ours"]
        methods += args.sbi_methods
        for seed in range(args.seed, args.seed + args.seeds):
            print(f"\n## {task_name}, seed {seed}: {args.simulations:,} simulations, "
                  f"observations {observations}", flush=True)
            start = time.perf_counter()
            theta, x = jax.block_until_ready(task.simulate(jr.key(seed), args.simulations))
            simulate_s = time.perf_counter() - start
            data_path = self.tmp / f"{task_name}-{seed}.npz"
            np.savez(data_path, theta=np.asarray(theta, np.float32),
                     x=np.asarray(x, np.float32), observations=x_os)
            print(f"  simulated in {simulate_s:.2f} s", flush=True)
            plan = [(m, args.our_steps if m == "ours" else args.sbi_epochs) for m in methods]
            if args.budgets:
                ours = [] if args.skip_ours else [("ours", b) for b in args.our_step_budgets]
                nsf = ([("npe_nsf", b) for b in args.sbi_epoch_budgets]
                       if "npe_nsf" in args.sbi_methods else [])
                # Alternate the two libraries' budget runs, as the main runs alternate.
                for i in range(max(len(ours), len(nsf))):
                    plan += ours[i:i + 1] + nsf[i:i + 1]
            for library, budget in plan:
                self.run(task_name, seed, library, budget, data_path, prior, references,
                         simulate_s)
                self.save(echo=False)

    def save(self, echo: bool) -> None:
        self.results["summary"] = summarise(self.results)
        self.results["driver_max_rss_mib"] = max_rss_mib()
        write_outputs(self.args.out, self.results, table, echo=echo)


def curve(runs: list[dict], library: str, default_budget) -> list[dict]:
    """A library's (budget, total seconds, C2ST) points, smallest budget first; the run at the
    default budget is the last point. Means over seeds (seconds) and over observations and
    seeds (C2ST)."""
    budgets = {}
    for r in runs:
        if r["library"] == library:
            budgets.setdefault(r["budget"], []).append(r)
    points = []
    for budget, group in budgets.items():
        points.append({
            "budget": budget,
            "total_s": mean(r["total_s"] for r in group),
            "train_s": mean(r["train_s"] for r in group),
            "c2st": mean(c for r in group for c in r["c2st"]),
            "trained": mean(r.get("steps", r.get("epochs")) for r in group),
        })
    largest = float("inf")
    return sorted(points, key=lambda p: largest if p["budget"] == default_budget
                  else p["budget"])


def time_to(points: list[dict], target: float):
    """Seconds at which a curve first reaches C2ST <= ``target``, linear between its points:
    ``(seconds, bound)`` with bound ``"<="`` if its first point is already there (the time is
    then an upper bound), or ``None`` if it never gets there."""
    previous = None
    for p in points:
        if p["c2st"] is not None and p["c2st"] <= target:
            if previous is None:
                return p["total_s"], "<="
            t0, c0 = previous["total_s"], previous["c2st"]
            return t0 + (p["total_s"] - t0) * (c0 - target) / (c0 - p["c2st"]), ""
        previous = p
    return None


def summarise(results: dict) -> dict:
    """Per task: each library's main runs summarised, the ratio of total times ours / NPE-NSF,
    and (with budgets) the curves and the ratio of times to equal C2ST."""
    settings = results["settings"]
    main_budget = {"ours": settings["our_steps"]}
    main_budget.update({m: settings["sbi_epochs"] for m in SBI_METHODS})
    summary = {}
    for task_name in dict.fromkeys(r["task"] for r in results["runs"]):
        runs = [r for r in results["runs"] if r["task"] == task_name]
        per_library = {}
        for library in LABELS:
            group = [r for r in runs
                     if r["library"] == library and r["budget"] == main_budget[library]]
            if not group:
                continue
            per_library[library] = {
                "c2st": spread(c for r in group for c in r["c2st"]),
                "train_s": mean(r["train_s"] for r in group),
                "sample_s_per_observation": mean(s for r in group for s in r["sample_s"]),
                "sample_s_first": mean(r["sample_s"][0] for r in group),
                "total_s": mean(r["total_s"] for r in group),
                # CPU seconds of all the worker's threads; wall time / CPU time shows waiting.
                "train_cpu_s": mean(r.get("train_cpu_s") for r in group),
                "sample_cpu_s_per_observation": mean(
                    s for r in group for s in r.get("sample_cpu_s", [])),
                "simulate_s": mean(r["simulate_s"] for r in group),
                "c2st_s": mean(s for r in group for s in r["c2st_s"]),
                "trained": mean(r.get("steps", r.get("epochs")) for r in group),
                "parameters": group[0]["parameters"],
                "runs": len(group),
            }
        entry = {"libraries": per_library}
        if "ours" in per_library and "npe_nsf" in per_library:
            entry["total_ratio_ours_vs_npe_nsf"] = (
                per_library["ours"]["total_s"] / per_library["npe_nsf"]["total_s"])
        if settings["budgets"]:
            curves = {lib: curve(runs, lib, main_budget[lib]) for lib in ("ours", "npe_nsf")}
            entry["curves"] = curves
            if curves["ours"] and curves["npe_nsf"]:
                entry["time_to_c2st"] = equal_c2st_ratios(curves)
        summary[task_name] = entry
    return summary


def equal_c2st_ratios(curves: dict) -> list[dict]:
    """Times to reach the same C2ST on each curve and their ratio ours / NPE-NSF, at the best
    C2ST both curves reach and at the round levels above it."""
    scored = {lib: [p["c2st"] for p in pts if p["c2st"] is not None]
              for lib, pts in curves.items()}
    if not all(scored.values()):
        return []
    common = max(min(values) for values in scored.values())
    targets = [round(common, 3)] + [t for t in (0.6, 0.7, 0.8) if t > common + 0.005]
    rows = []
    for target in targets:
        ours, nsf = time_to(curves["ours"], target), time_to(curves["npe_nsf"], target)
        row = {"c2st": target, "ours_s": ours and ours[0], "npe_nsf_s": nsf and nsf[0],
               "ours_bound": ours and ours[1], "npe_nsf_bound": nsf and nsf[1]}
        if ours and nsf:
            row["ratio"] = ours[0] / nsf[0]
            # A time that is an upper bound makes the ratio one: from above if it is ours,
            # from below if it is theirs, unknown if both are.
            row["ratio_bound"] = {("", ""): "", ("<=", ""): "<=", ("", "<="): ">="}.get(
                (ours[1], nsf[1]), "~")
        rows.append(row)
    return rows


def fmt(value, spec: str, missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def table(results: dict) -> str:
    """The Markdown report."""
    s = results["settings"]
    versions = results.get("versions", {})
    ours_v, sbi_v = versions.get("gensbi_eqx", {}), versions.get("sbi", {})
    sbi_w = results.get("sbi_worker", {})
    n = s["num_samples"]
    seeds = ", ".join(str(seed) for seed in range(s["seed"], s["seed"] + s["seeds"]))
    lines = [
        "# gensbi_eqx vs sbi " + SBI_VERSION + " (PyTorch, CPU), end to end"
        + (" -- SMALL RUN: a smoke test, not a benchmark result" if s["small"] else ""),
        "",
        f"- date: {results['date']}",
        f"- machine: {results['machine']}; load average (1, 5, 15 min) at the start "
        f"{results.get('load_average_start')}, at the end {results.get('load_average_end')}",
        f"- gensbi_eqx {ours_v.get('gensbi_eqx', '?')}, jax {ours_v.get('jax', '?')} / sbi "
        f"{sbi_v.get('sbi', '?')}, torch {sbi_v.get('torch', '?')} "
        f"({sbi_w.get('torch_threads', '?')} threads)",
        f"- command: `{results['command']}`",
        f"- {s['simulations']:,} simulations per task and seed (the same for every library), "
        f"observations {s['observations']}, seeds {seeds}, "
        f"{n:,} draws per observation, C2ST: {s['classifier']} against the first {n:,} "
        "reference draws",
        f"- budgets of the main runs: ours max_steps {s['our_steps'] or 'default'}, sbi "
        f"max_num_epochs {s['sbi_epochs'] or 'default'}",
        "- total = simulation (shared) + training + the draws at every observation, wall clock; "
        "C2ST time not counted. Every run is a fresh process: compiles and first calls are "
        "included. CPU s: the worker's CPU time (all threads), for reading a loaded machine.",
        "",
    ]
    if "error" in results:
        lines += [f"**The run failed**: {results['error'].splitlines()[0]}", ""]
    for task_name, entry in results.get("summary", {}).items():
        libs = entry["libraries"]
        lines += [
            f"## {task_name}",
            "",
            f"| library / method | C2ST mean ± sd [min, max] | train s | trained | {n:,} draws s "
            "(mean; first) | total s | total / NPE-NSF | CPU s: train; draws | C2ST s | "
            "parameters |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        nsf_total = libs.get("npe_nsf", {}).get("total_s")
        for library, v in libs.items():
            c = v["c2st"]
            unit = "steps" if library == "ours" else "epochs"
            lines.append(
                f"| {LABELS[library]} | {fmt(c['mean'], '.3f')} ± {fmt(c['std'], '.3f')} "
                f"[{fmt(c['min'], '.3f')}, {fmt(c['max'], '.3f')}] (n={c['n']}) | "
                f"{v['train_s']:.1f} | {fmt(v['trained'], ',.0f')} {unit} | "
                f"{v['sample_s_per_observation']:.2f}; {v['sample_s_first']:.2f} | "
                f"{v['total_s']:.1f} | "
                f"{fmt(nsf_total and v['total_s'] / nsf_total, '.2f')} | "
                f"{fmt(v['train_cpu_s'], '.1f')}; "
                f"{fmt(v['sample_cpu_s_per_observation'], '.2f')} | "
                f"{fmt(v['c2st_s'], '.1f')} | {v['parameters']:,} |")
        if "total_ratio_ours_vs_npe_nsf" in entry:
            lines += ["", f"Total time ours / NPE-NSF: "
                      f"**{entry['total_ratio_ours_vs_npe_nsf']:.2f}**"]
        if "curves" in entry:
            lines += ["", "Budget curves (means over seeds; C2ST also over observations):", "",
                      "| library | budget | trained | train s | total s | C2ST |",
                      "|---|---|---|---|---|---|"]
            for library, points in entry["curves"].items():
                for p in points:
                    lines.append(f"| {LABELS[library]} | {p['budget'] or 'default'} | "
                                 f"{fmt(p['trained'], ',.0f')} | {p['train_s']:.1f} | "
                                 f"{p['total_s']:.1f} | {fmt(p['c2st'], '.3f')} |")
        if entry.get("time_to_c2st"):
            lines += ["", "Time to equal C2ST (linear between budget points; `<=`: reached "
                      "at the smallest budget already, an upper bound):", "",
                      "| C2ST | ours s | NPE-NSF s | ours / NPE-NSF |", "|---|---|---|---|"]
            for row in entry["time_to_c2st"]:
                lines.append(
                    f"| {row['c2st']:.3f} | {row['ours_bound'] or ''}"
                    f"{fmt(row['ours_s'], '.1f', 'not reached')} | {row['npe_nsf_bound'] or ''}"
                    f"{fmt(row['npe_nsf_s'], '.1f', 'not reached')} | "
                    f"{row.get('ratio_bound', '')}{fmt(row.get('ratio'), '.2f')} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", nargs="+", choices=TASKS,
                        help="default: two_moons gaussian_mixture slcp")
    parser.add_argument("--simulations", type=int, help="per task and seed (default 10,000)")
    parser.add_argument("--observations", help="sbibm observations, e.g. 1-3,7 (default 1-10)")
    parser.add_argument("--seeds", type=int, default=1, help="how many seeds (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="the first seed")
    parser.add_argument("--num-samples", type=int, help="draws per observation (10,000)")
    parser.add_argument("--sbi-methods", nargs="*", choices=SBI_METHODS,
                        default=list(SBI_METHODS))
    parser.add_argument("--skip-ours", action="store_true", help="run sbi alone")
    parser.add_argument("--budgets", action="store_true",
                        help="add budget runs of ours and NPE-NSF for the time to equal C2ST")
    parser.add_argument("--sbi-epoch-budgets", nargs="+", type=int,
                        help="NPE-NSF max_num_epochs values (default 10 25 50 100)")
    parser.add_argument("--our-step-budgets", nargs="+", type=int,
                        help="our max_steps values (default 1000 2500 5000)")
    parser.add_argument("--classifier", choices=("sklearn", "jax"), default="sklearn",
                        help="C2ST: scikit-learn's MLP as sbibm (default) or c2st_jax")
    parser.add_argument("--small", action="store_true", help="tiny smoke test")
    parser.add_argument("--sbi-venv", type=Path, default=HERE / ".venv-sbi")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "compare_sbi",
                        help="writes OUT.json and OUT.md")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        serve(OursWorker())
        return
    apply_defaults(args, SMALL if args.small else FULL)
    parse_observations(args.observations)
    if args.skip_ours and not args.sbi_methods:
        parser.error("nothing to run: --skip-ours and no --sbi-methods")
    command = shlex.join(["python", *sys.argv])

    sbi_python = None
    if args.sbi_methods:
        sbi_python = ensure_venv(args.sbi_venv, "sbi", SBI_VERSION, REQUIREMENTS,
                                 "benchmarks/compare_sbi.py", first=(f"torch=={TORCH_VERSION}",))

    from gensbi_eqx.benchmark._runner import machine_description

    date = datetime.datetime.now().isoformat(timespec="seconds")
    results = {
        "date": date, "command": command, "machine": machine_description(),
        "load_average_start": load_average(),
        "settings": {k: (str(v) if isinstance(v, Path) else v)
                     for k, v in vars(args).items() if k != "worker"},
        "runs": [],
    }
    print(f"{date}; {results['machine']}; settings {results['settings']}", flush=True)
    with tempfile.TemporaryDirectory(prefix="compare-sbi-") as tmp:
        bench = Bench(args, results, Path(tmp), sbi_python)
        try:
            for task_name in args.tasks:
                bench.task(task_name)
        except WorkerError as error:
            print(f"\nERROR: {error}", file=sys.stderr, flush=True)
            results["error"] = str(error)
            raise
        finally:
            results["load_average_end"] = load_average()
            bench.save(echo=True)


if __name__ == "__main__":
    main()
