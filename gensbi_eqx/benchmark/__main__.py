"""Command line: train, sample the reference observations, append C2ST rows to a table.

    python -m gensbi_eqx.benchmark --task two_moons --simulations 10000 --model simformer \\
        --method ve --observations 1-10

Writes ``results.csv`` (one row per observation, appended) and ``results.md`` (a summary of
every configuration in the CSV) under ``--out``.
"""

import argparse
import sys
from pathlib import Path

import jax.random as jr

from ._runner import (
    CLASSIFIERS,
    METHODS,
    MODELS,
    TASKS,
    append_rows,
    parse_sampler,
    run,
    write_summary,
)


def parse_observations(text: str) -> tuple[int, ...]:
    """``"1-10"``, ``"3"`` or ``"1,4,7-9"`` -> the observation numbers."""
    numbers: list[int] = []
    try:
        for part in text.split(","):
            low, _, high = part.partition("-")
            numbers.extend(range(int(low), int(high or low) + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected numbers and ranges like 1-10 or 1,3,5, got {text!r}"
        ) from None
    if not numbers or any(not 1 <= n <= 10 for n in numbers):
        raise argparse.ArgumentTypeError(f"observations must lie in 1..10, got {text!r}")
    return tuple(numbers)


def sampler_argument(text: str):
    """``--sampler``: ``"sde:500"``, ``"ode-heun:50"``, ``"edm:18"``, ``"ode"``, ... -> a sampler
    object (`gensbi_eqx.benchmark._runner.parse_sampler`)."""
    try:
        return parse_sampler(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gensbi_eqx.benchmark", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", required=True, choices=sorted(TASKS))
    parser.add_argument("--simulations", type=int, default=10_000)
    parser.add_argument("--model", default="simformer", choices=sorted(MODELS))
    parser.add_argument("--method", default="ve", choices=sorted(METHODS))
    parser.add_argument("--observations", type=parse_observations, default=tuple(range(1, 11)),
                        help="sbibm observation numbers, e.g. 1-10 or 1,3,5 (default 1-10)")
    parser.add_argument("--num-samples", type=int, default=10_000)
    parser.add_argument("--sampler", type=sampler_argument, default=None,
                        help="sde[:steps], adaptive-sde, ode (adaptive Tsit5), "
                             "ode-<solver>[:steps] (e.g. ode-heun:50), edm[:steps]; "
                             "default: the method's own")
    parser.add_argument("--max-steps", type=int, default=10_000, help="training steps at most")
    parser.add_argument("--classifier", choices=sorted(CLASSIFIERS), default="sklearn",
                        help="C2ST classifier: sbibm's scikit-learn MLP or the JAX one")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    rows = run(
        jr.key(args.seed),
        args.task,
        simulations=args.simulations,
        model=args.model,
        method=args.method,
        observations=args.observations,
        num_samples=args.num_samples,
        sampler=args.sampler,
        max_steps=args.max_steps,
        classifier=args.classifier,
        seed=args.seed,
        progress=not args.no_progress,
    )
    table = append_rows(args.out / "results.csv", rows)
    write_summary(args.out / "results.md", table)
    scores = ", ".join(f"{r['observation']}: {r['c2st']:.3f}" for r in rows)
    print(f"C2ST by observation: {scores}")
    print(f"appended {len(rows)} rows to {args.out / 'results.csv'}; summary in "
          f"{args.out / 'results.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
