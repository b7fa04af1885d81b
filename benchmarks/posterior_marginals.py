"""Where a trained posterior misses: per-parameter C2ST, means and sds against sbibm's reference,
and the full C2ST by both classifiers (scikit-learn's and the JAX one) on the same draws.

    python benchmarks/posterior_marginals.py --estimator benchmarks/.cache/slcp_ve_10000_4000_1.eqx \\
        --task slcp --observations 1 2

(the estimator cached by `benchmarks/sampler_study.py trained`). On SLCP it also prints the
weight of the four sign modes of ``(theta_3, theta_4)``, which the likelihood cannot tell apart.
"""

import argparse
import time

import jax.numpy as jnp
import jax.random as jr
import numpy as np

import gensbi_eqx as gs


def rounded(values) -> list[float]:
    return [round(float(v), 3) for v in values]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--estimator", required=True, help="a file saved by gs.save")
    parser.add_argument("--task", required=True, help="an sbibm task name, e.g. slcp")
    parser.add_argument("--observations", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--num-samples", type=int, default=10_000)
    args = parser.parse_args()
    est = gs.load(args.estimator)
    for i in args.observations:
        reference = gs.tasks.load_reference(args.task, i)
        truth = np.asarray(reference.samples)[: args.num_samples]
        start = time.perf_counter()
        draws = np.asarray(est.sample(jr.key(10 + i), {"x": jnp.asarray(reference.observation)},
                                      args.num_samples)["theta"])
        seconds = time.perf_counter() - start
        jax_c2st = float(gs.diagnostics.c2st_jax(draws, truth))
        sklearn_c2st = float(gs.diagnostics.c2st(draws, truth))
        print(f"obs {i}: {seconds:.0f} s to sample; C2ST jax {jax_c2st:.3f}, "
              f"scikit-learn {sklearn_c2st:.3f}")
        marginal = [float(gs.diagnostics.c2st_jax(draws[:, [k]], truth[:, [k]]))
                    for k in range(draws.shape[1])]
        print("  C2ST per parameter", rounded(marginal))
        print("  mean", rounded(draws.mean(0)), "reference", rounded(truth.mean(0)))
        print("  sd  ", rounded(draws.std(0)), "reference", rounded(truth.std(0)))
        if args.task == "slcp":
            for name, a in (("model", draws), ("reference", truth)):
                modes = [np.mean((np.sign(a[:, 2]) == s3) & (np.sign(a[:, 3]) == s4))
                         for s3 in (-1, 1) for s4 in (-1, 1)]
                print(f"  sign modes of (theta_3, theta_4), {name}:", rounded(modes))


if __name__ == "__main__":
    main()
