"""Train-step time and memory of Flux1, Flux1Joint and the Simformer against the number of
data tokens.

    python benchmarks/scale_study.py [--models flux1,flux1joint,simformer]
        [--tokens 16,32,64,128,256,512,1024,2048,4096] [--batch-size 64] [--repeats 10]
        [--warmup 1] [--max-timed-tokens 1024] [--max-memory-gib 8] [--max-step-seconds 20]
        [--max-row-seconds 120] [--override [MODEL.]KEY=VALUE ...]
        [--out benchmarks/results/scale_study] [--small]

The problem: a parameter node ``theta`` of ``--theta-dim`` scalars (default 2) and a data node
``x`` of ``T`` tokens, filled with random numbers (neither time nor memory depends on the
values). ``Flux1`` conditions on ``x`` shaped ``(N, T, 1)``: ``T`` one-channel cond tokens
beside ``theta``'s obs tokens (``Flux1.for_data(..., condition_on="x")``). ``Flux1Joint`` and
the ``Simformer`` have one token per scalar, so ``x`` is ``(N, T)`` and again ``T`` data tokens.
Every model sees ``T + theta_dim`` tokens in all.

For every (model, T): the model at its default ``for_data`` size (``--override`` changes
hyperparameters, e.g. ``--override num_heads=2 --override flux1.depth=4``); the train step
exactly as ``fit`` builds it (``make_train_step`` with ``default_optimizer``, flow matching, dense
attention, float32; ``PosteriorMasks`` for Flux1, ``StructuredMasks`` for the joint models) on
``--batch-size`` examples drawn from a training set of the same size; its parameter count; its
compile time; and XLA's memory of the compiled step from ``memory_analysis`` (temporaries +
arguments + outputs, less aliased buffers), which needs no run. Attention goes through
``jax.nn.dot_product_attention``; its default implementation falls back to XLA's (jax 0.10, on
every backend), which materialises the ``batch x heads x tokens x tokens`` scores, so the
temporaries grow quadratically once attention dominates; the table gives the size of one such
score tensor beside XLA's total.

The step is then timed if its memory is below ``--max-memory-gib``, ``T <= --max-timed-tokens``
and the same model has not already exceeded ``--max-step-seconds`` at a smaller ``T``: the
first ``--warmup`` steps are run untimed (the first one is clocked as a probe), then the median
of ``--repeats`` steps with ``block_until_ready``. If the probe alone takes longer than
``--max-step-seconds``, only its time is recorded (1 timed step); if ``--repeats`` steps would
take longer than ``--max-row-seconds``, fewer (at least 3) are timed; the table says how many
were. Once a model's step exceeds ``--max-step-seconds``, its larger ``T`` are not timed. Those
rows record memory only, and a step that fails to compile is recorded as skipped.

Outputs ``OUT.csv``, ``OUT.md`` (date, machine, jax version, command line, settings, the table
with the local exponents ``d log y / d log T`` between consecutive ``T``) and ``OUT.png``
(step time and memory against ``T``, log-log, one line per model), rewritten after every row.
``--small`` is a smoke run (``T`` in {16, 64}, 2 repeats): six compilations, a minute or two on
an idle 2-core CPU.
"""

import argparse
import ast
import csv
import datetime
import gc
import io
import math
import platform
import resource
import shlex
import statistics
import sys
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr

import gensbi_eqx as gs
from gensbi_eqx._atomic import atomic_writer
from gensbi_eqx.benchmark._runner import machine_description
from gensbi_eqx.data import NodeLayout
from gensbi_eqx.training import PosteriorMasks, StructuredMasks, default_optimizer, make_train_step

MIB = 2**20
MODELS = ("flux1", "flux1joint", "simformer")
LABELS = {"flux1": "Flux1", "flux1joint": "Flux1Joint", "simformer": "Simformer"}
# Hyperparameters that follow the number of tokens rather than the model's size.
TOKEN_DEPENDENT = {
    "dim_obs", "dim_cond", "theta", "obs_grid", "cond_grid", "grid", "num_scalars", "conditioned",
    "token_ids", "has_metadata", "metadata_scale",
}
COLUMNS = (
    "date", "model", "data_tokens", "tokens", "parameters", "batch_size", "compile_s",
    "scores_mib", "temp_mib", "argument_mib", "output_mib", "xla_mib", "step_ms", "timed_steps",
    "status", "max_rss_mib", "machine", "jax",
)


def make_data(model_name: str, tokens: int, theta_dim: int, n: int, key) -> dict:
    """Random ``{"theta": (n, theta_dim), "x": ...}``: ``x`` is ``(n, tokens, 1)`` for Flux1
    (one one-channel token per time point) and ``(n, tokens)`` for the joint models."""
    k_theta, k_x = jr.split(key)
    shape = (n, tokens, 1) if model_name == "flux1" else (n, tokens)
    return {"theta": jr.normal(k_theta, (n, theta_dim)), "x": jr.normal(k_x, shape)}


def build_model(model_name: str, data: dict, key, hyperparameters: dict):
    if model_name == "flux1":
        return gs.Flux1.for_data(data, condition_on="x", key=key, **hyperparameters)
    if model_name == "flux1joint":
        return gs.Flux1Joint.for_data(data, key=key, **hyperparameters)
    if model_name == "simformer":
        return gs.Simformer.for_data(data, key=key, **hyperparameters)
    raise ValueError(f"`--models`: unknown model {model_name!r}; choose from {MODELS}.")


def mask_sampler_for(model, layout: NodeLayout):
    """What `fit` uses: the model's own conditional for Flux1, the structured mixture for the
    joint models."""
    fixed = model.fixed_condition_mask
    if fixed is not None:
        return PosteriorMasks(is_parameter=tuple(not c for c in fixed))
    return StructuredMasks().bind(layout)


def num_parameters(model) -> int:
    return sum(leaf.size for leaf in jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array)))


def size_summary(model) -> str:
    """The model's size hyperparameters (those that do not follow the number of tokens)."""
    config = {k: v for k, v in model.config.items() if k not in TOKEN_DEPENDENT}
    return ", ".join(f"{k}={v}" for k, v in config.items())


def max_rss_mib() -> float:
    # Linux reports kilobytes, macOS bytes.
    scale = 1 if platform.system() == "Darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / MIB


def memory_of(compiled) -> dict:
    """XLA's buffer sizes of an equinox ``Compiled`` in MiB (``None`` where not reported)."""
    analysis = compiled.compiled.memory_analysis()
    if analysis is None:
        return {"temp_mib": None, "argument_mib": None, "output_mib": None, "xla_mib": None}
    total = (
        analysis.temp_size_in_bytes
        + analysis.argument_size_in_bytes
        + analysis.output_size_in_bytes
        - analysis.alias_size_in_bytes
    )
    return {
        "temp_mib": analysis.temp_size_in_bytes / MIB,
        "argument_mib": analysis.argument_size_in_bytes / MIB,
        "output_mib": analysis.output_size_in_bytes / MIB,
        "xla_mib": total / MIB,
    }


def time_step(compiled, x_train, model, opt_state, args) -> tuple[float, int]:
    """(median seconds per step, number of timed steps); see the module docstring."""
    state = (model, model, opt_state)
    probe = None
    for i in range(max(args.warmup, 1)):
        start = time.perf_counter()
        state = compiled(x_train, *state, jr.key(i), jnp.asarray(i))[:3]
        jax.block_until_ready(state)
        if probe is None:
            probe = time.perf_counter() - start
    if probe > args.max_step_seconds:
        return probe, 1
    repeats = args.repeats
    if probe * repeats > args.max_row_seconds:
        repeats = min(repeats, max(3, int(args.max_row_seconds / probe)))
    times = []
    offset = max(args.warmup, 1)
    for i in range(repeats):
        start = time.perf_counter()
        out = compiled(x_train, *state, jr.key(offset + i), jnp.asarray(offset + i))
        jax.block_until_ready(out)
        times.append(time.perf_counter() - start)
        state = out[:3]
    return statistics.median(times), repeats


def run_row(model_name: str, tokens: int, args, hyperparameters: dict, too_slow: bool) -> dict:
    data = make_data(model_name, tokens, args.theta_dim, args.batch_size, jr.key(0))
    layout = NodeLayout.from_data(data)
    x_train = layout.flatten(data)
    model = build_model(model_name, data, jr.key(1), hyperparameters)
    row = {
        "model": model_name,
        "data_tokens": tokens,
        "tokens": layout.num_scalars,
        "parameters": num_parameters(model),
        "batch_size": args.batch_size,
        "size": size_summary(model),
    }
    itemsize = jnp.dtype(model.compute_dtype).itemsize
    row["scores_mib"] = args.batch_size * model.num_heads * layout.num_scalars**2 * itemsize / MIB
    optimizer = default_optimizer(10_000)
    opt_state = optimizer.init(eqx.filter(model, eqx.is_inexact_array))
    step = make_train_step(
        gs.FlowMatching(), mask_sampler_for(model, layout), optimizer, args.batch_size,
        layout.num_scalars,
    )
    start = time.perf_counter()
    try:
        compiled = step.lower(x_train, model, model, opt_state, jr.key(0), jnp.asarray(0)).compile()
    except Exception as error:  # noqa: BLE001 (XLA errors vary, e.g. out of host memory)
        row.update(status=f"skipped: compile failed ({type(error).__name__})", step_ms=None,
                   timed_steps=0, max_rss_mib=max_rss_mib())
        print(f"{model_name}, T={tokens}: compile failed: {error}", flush=True)
        return row
    row["compile_s"] = time.perf_counter() - start
    row.update(memory_of(compiled))
    memory = "n/a" if row["xla_mib"] is None else f"{row['xla_mib']:,.0f} MiB"
    print(f"{model_name}, T={tokens} ({row['tokens']} tokens, {row['parameters']:,} parameters): "
          f"compile {row['compile_s']:.1f} s, XLA memory {memory}", flush=True)

    reasons = []
    if row["xla_mib"] is not None and row["xla_mib"] >= args.max_memory_gib * 1024:
        reasons.append(f"memory >= {args.max_memory_gib:g} GiB")
    if tokens > args.max_timed_tokens:
        reasons.append(f"T > {args.max_timed_tokens}")
    if too_slow:
        reasons.append(f"step > {args.max_step_seconds:g} s at a smaller T")
    if reasons:
        row.update(status="memory only: " + "; ".join(reasons), step_ms=None, timed_steps=0)
    else:
        seconds, count = time_step(compiled, x_train, model, opt_state, args)
        row.update(step_ms=1e3 * seconds, timed_steps=count, status="timed")
        if seconds > args.max_step_seconds:
            row["status"] = f"timed; step > {args.max_step_seconds:g} s, larger T not timed"
        print(f"{model_name}, T={tokens}: step {1e3 * seconds:,.1f} ms (median of {count})",
              flush=True)
    row["max_rss_mib"] = max_rss_mib()
    return row


def exponents(rows: list[dict], key: str) -> dict[tuple[str, int], float]:
    """Local slope ``d log(key) / d log(T)`` of each row against the previous row of its model
    that has a value."""
    slopes, previous = {}, {}
    for row in rows:
        value = row.get(key)
        if value is None or value <= 0:
            continue
        last = previous.get(row["model"])
        if last is not None:
            slopes[(row["model"], row["data_tokens"])] = math.log(value / last[1]) / math.log(
                row["data_tokens"] / last[0]
            )
        previous[row["model"]] = (row["data_tokens"], value)
    return slopes


def fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def write_csv(path: Path, rows: list[dict], header: dict) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "date": header["date"], "machine": header["machine"],
                         "jax": header["jax"]})
    with atomic_writer(path) as f:
        f.write(buffer.getvalue().encode())


def markdown(rows: list[dict], header: dict, args) -> str:
    time_slopes, memory_slopes = exponents(rows, "step_ms"), exponents(rows, "xla_mib")
    temp_slopes = exponents(rows, "temp_mib")
    bullets = [
        f"date: {header['date']}",
        f"machine: {header['machine']}",
        f"jax {header['jax']}, equinox {eqx.__version__}, backend {header['backend']}",
        f"command: `{header['command']}`",
        (f"problem: theta of {args.theta_dim} scalars + x of T data tokens (random values); Flux1 "
         "conditions on x shaped (N, T, 1), Flux1Joint and the Simformer have one token per "
         f"scalar; T + {args.theta_dim} tokens in all"),
        ("train step as `fit` builds it (`make_train_step`, `default_optimizer`: clipped Adam + "
         f"EMA), flow matching, float32, batch {args.batch_size}, dense attention (no edge mask); "
         "condition masks: posterior for Flux1, structured mixture for the joint models"),
        ("attention: `jax.nn.dot_product_attention` with its default `implementation=None`, "
         "which falls back to XLA's (on CPU and GPU alike in jax 0.10) and materialises the "
         "batch x heads x tokens x tokens scores; 'one score tensor' is that size at 4 bytes per "
         "entry; blocks are scanned and rematerialised (`jax.checkpoint`), so one block's "
         "activations are live at a time"),
        ("memory: XLA `memory_analysis` of the compiled step (temporaries + arguments + outputs, "
         "less aliased buffers), without running it; arguments include the model, its EMA copy, "
         f"the Adam state and a training set of {args.batch_size} rows"),
        (f"time: the first of {max(args.warmup, 1)} warm-up step(s) is clocked as a probe, then "
         f"the median of up to {args.repeats} steps with `block_until_ready` (fewer, at least 3, "
         f"when they would take over {args.max_row_seconds:g} s; only the probe when it took over "
         f"{args.max_step_seconds:g} s); timed only below {args.max_memory_gib:g} GiB and for "
         f"T <= {args.max_timed_tokens}"),
        ("exponents: local slope d log y / d log T against the previous T of the same model "
         "(1 = linear, 2 = quadratic)"),
    ]
    lines = ["# Train-step time and memory against the number of data tokens", ""]
    lines += [f"- {bullet}" for bullet in bullets]
    sizes = {}
    for row in rows:
        sizes.setdefault(row["model"], row["size"])
    lines += [f"- {LABELS[m]} size: {s}" for m, s in sizes.items()]
    lines += [
        "",
        "| model | T | tokens | parameters | compile (s) | one score tensor (MiB) | XLA temp "
        + "(MiB) | XLA total (MiB) | memory exponent | step (ms) | timed steps | time exponent "
        + "| status |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        key = (row["model"], row["data_tokens"])
        memory_slope = fmt(memory_slopes.get(key), ".2f")
        temp_slope = temp_slopes.get(key)
        if temp_slope is not None:
            memory_slope += f" (temp {temp_slope:.2f})"
        lines.append(
            f"| {LABELS[row['model']]} | {row['data_tokens']} | {row['tokens']} | "
            f"{row['parameters']:,} | {fmt(row.get('compile_s'), '.1f')} | "
            f"{fmt(row.get('scores_mib'), ',.1f')} | {fmt(row.get('temp_mib'), ',.1f')} | "
            f"{fmt(row.get('xla_mib'), ',.1f')} | "
            f"{memory_slope} | {fmt(row.get('step_ms'), ',.1f')} | {row['timed_steps']} | "
            f"{fmt(time_slopes.get(key), '.2f')} | {row['status']} |"
        )
    return "\n".join(lines) + "\n"


def plot(path: Path, rows: list[dict], args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_time, ax_memory) = plt.subplots(1, 2, figsize=(11, 4.5))
    all_tokens = sorted({row["data_tokens"] for row in rows})
    for ax, key, scale, label in (
        (ax_time, "step_ms", 1e-3, f"train step (s), batch {args.batch_size}"),
        (ax_memory, "xla_mib", 1.0, "XLA memory of the step (MiB)"),
    ):
        ends = []
        for model_name in dict.fromkeys(row["model"] for row in rows):
            points = [(r["data_tokens"], scale * r[key]) for r in rows
                      if r["model"] == model_name and r.get(key) is not None]
            if not points:
                continue
            xs, ys = zip(*points)
            ax.plot(xs, ys, "o-", label=LABELS[model_name])
            ends.append((xs[-1], ys[-1]))
        if ends:
            # Guides of slope 1 and 2 through the last point of the longest (then lowest) curve.
            t1 = max(t for t, _ in ends)
            y1 = min(y for t, y in ends if t == t1)
            guide = [t for t in all_tokens if t <= t1]
            ax.plot(guide, [y1 * t / t1 for t in guide], ":", color="grey", label="~ T")
            ax.plot(guide, [y1 * (t / t1) ** 2 for t in guide], "--", color="grey", label="~ T²")
        largest = max((r[key] for r in rows if r.get(key) is not None), default=0.0)
        if key == "xla_mib" and largest > 0.1 * args.max_memory_gib * 1024:
            ax.axhline(args.max_memory_gib * 1024, color="red", lw=0.8,
                       label=f"timing limit {args.max_memory_gib:g} GiB")
        ax.set_xscale("log", base=2)
        ax.set_xticks(all_tokens, [str(t) for t in all_tokens])
        ax.minorticks_off()
        ax.set_yscale("log")
        ax.set_xlabel("data tokens T")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Train step against data tokens ({machine_description()})", fontsize=10)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    with atomic_writer(path) as f:
        f.write(buffer.getvalue())


def write_outputs(out: Path, rows: list[dict], header: dict, args) -> None:
    write_csv(out.with_suffix(".csv"), rows, header)
    with atomic_writer(out.with_suffix(".md")) as f:
        f.write(markdown(rows, header, args).encode())
    plot(out.with_suffix(".png"), rows, args)


def parse_overrides(items: list[str]) -> dict[str, dict]:
    """``[MODEL.]KEY=VALUE`` -> ``{model: {key: value}}`` (``"*"`` for every model); values are
    Python literals, else strings."""
    overrides = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise ValueError(f"`--override` must look like [MODEL.]KEY=VALUE, got {item!r}.")
        model_name, dot, key = name.rpartition(".")
        if dot and model_name not in MODELS:
            raise ValueError(
                f"`--override {item}`: unknown model {model_name!r}; choose from {MODELS}."
            )
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        overrides.setdefault(model_name if dot else "*", {})[key] = value
    return overrides


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--tokens", default="16,32,64,128,256,512,1024,2048,4096",
                        help="comma-separated numbers of data tokens T")
    parser.add_argument("--theta-dim", type=int, default=2, help="scalars in theta")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=10, help="timed steps (median)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (>= 1)")
    parser.add_argument("--max-timed-tokens", type=int, default=1024)
    parser.add_argument("--max-memory-gib", type=float, default=8.0,
                        help="time only steps whose XLA memory is below this")
    parser.add_argument("--max-step-seconds", type=float, default=20.0,
                        help="stop timing a model once one step takes longer")
    parser.add_argument("--max-row-seconds", type=float, default=120.0,
                        help="time fewer steps (at least 3) when --repeats would take longer")
    parser.add_argument("--override", action="append", default=[], metavar="[MODEL.]KEY=VALUE",
                        help="model hyperparameter, e.g. num_heads=2 or flux1.depth=4")
    parser.add_argument("--out", default="benchmarks/results/scale_study",
                        help="output path without suffix (.csv, .md, .png are written)")
    parser.add_argument("--small", action="store_true", help="smoke run: T in {16, 64}, 2 repeats")
    args = parser.parse_args()
    if args.small:
        args.tokens, args.repeats = "16,64", 2
    try:
        models = [m.strip() for m in args.models.split(",") if m.strip()]
        unknown = [m for m in models if m not in MODELS]
        if unknown or not models:
            raise ValueError(f"`--models`: choose from {MODELS}, got {args.models!r}.")
        tokens = sorted({int(t) for t in args.tokens.split(",") if t.strip()})
        if not tokens or tokens[0] < 1:
            raise ValueError(f"`--tokens` must be positive ints, got {args.tokens!r}.")
        overrides = parse_overrides(args.override)
    except ValueError as error:
        parser.error(str(error))
    if args.batch_size < 1 or args.repeats < 1 or args.theta_dim < 1:
        parser.error("`--batch-size`, `--repeats` and `--theta-dim` must be positive.")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    header = {
        "date": datetime.date.today().isoformat(),
        "machine": machine_description(),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "command": "python " + shlex.join(sys.argv),
    }
    print(f"{header['machine']}, jax {header['jax']} ({header['backend']}); "
          f"models {models}, T {tokens}, batch {args.batch_size}", flush=True)

    rows = []
    for model_name in models:
        hyperparameters = {**overrides.get("*", {}), **overrides.get(model_name, {})}
        too_slow = False
        for t in tokens:
            row = run_row(model_name, t, args, hyperparameters, too_slow)
            too_slow = too_slow or (
                row["step_ms"] is not None and row["step_ms"] > 1e3 * args.max_step_seconds
            )
            rows.append(row)
            write_outputs(out, rows, header, args)
            jax.clear_caches()
            gc.collect()
    print()
    print(markdown(rows, header, args))
    print(f"wrote {out.with_suffix('.csv')}, {out.with_suffix('.md')}, {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
