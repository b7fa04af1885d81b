"""Reference samples of arbitrary conditionals of a task's joint, by MCMC on its exact density.

A Simformer answers any conditional of ``p(theta, x)``. To score that, each conditional needs
reference samples: ``conditional_reference`` runs numpyro's NUTS on ``task.log_joint`` with the
observed entries held fixed, and ``random_conditionals`` draws conditionals to test on.

The flat vector is ``[theta, x]`` (``dim_theta + dim_x`` entries, ``theta`` first), and
``condition_mask[i] == True`` means entry ``i`` is observed, as everywhere in the library.

numpyro is an optional dependency (``pip install gensbi_eqx[mcmc]``), imported on first use.
"""

import math
import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import scipy.linalg
import scipy.special

from .._custom_types import Array, ArrayLike, Bool, Float, Key
from ._base import AbstractJointDensityTask
from ._checks import check_num_samples, jit_checking_counts


def _import_numpyro():
    try:
        import numpyro  # noqa: F401
        import numpyro.diagnostics
        import numpyro.infer
    except ImportError as error:
        raise ImportError(
            "`conditional_reference` needs numpyro, an optional dependency; install it with "
            "`pip install gensbi_eqx[mcmc]`."
        ) from error
    return numpyro


def _check_task(task: AbstractJointDensityTask) -> int:
    """The flat dimension ``dim_theta + dim_x`` of a task that has an exact ``log_joint``."""
    # Type annotations are not checked at run time outside the test suite.
    if not isinstance(task, AbstractJointDensityTask):
        raise TypeError(
            f"`task` must be an AbstractJointDensityTask, a task with an exact `log_joint` (like "
            f"`Tree` or `HMM`), got {type(task).__name__}."
        )
    return task.dim_theta + task.dim_x


def _concrete(value: Any, name: str) -> np.ndarray:
    try:
        return np.asarray(value)
    except jax.errors.TracerArrayConversionError as error:
        raise TypeError(
            f"`{name}` must be a concrete array: `conditional_reference` runs its own compiled "
            "MCMC and cannot itself be traced by jit or vmap."
        ) from error


def _check_inputs(values: Any, condition_mask: Any, dim: int) -> tuple[np.ndarray, np.ndarray]:
    values = _concrete(values, "values")
    condition_mask = _concrete(condition_mask, "condition_mask")
    if condition_mask.shape != (dim,):
        raise ValueError(
            f"`condition_mask` must have shape ({dim},) (dim_theta + dim_x), got shape "
            f"{condition_mask.shape}."
        )
    if condition_mask.dtype != np.bool_:
        raise TypeError(f"`condition_mask` must be a bool array, got dtype {condition_mask.dtype}.")
    if values.shape != (dim,):
        raise ValueError(
            f"`values` must have shape ({dim},) (dim_theta + dim_x), got shape {values.shape}."
        )
    if not (np.issubdtype(values.dtype, np.floating) or np.issubdtype(values.dtype, np.integer)):
        raise TypeError(f"`values` must hold real numbers, got dtype {values.dtype}.")
    if condition_mask.all():
        raise ValueError("`condition_mask` observes every entry: there is nothing to sample.")
    values = values.astype(np.float32)
    bad = np.flatnonzero(condition_mask & ~np.isfinite(values))
    if bad.size:
        raise ValueError(f"`values` must be finite at the observed entries; entries {bad} are not.")
    return values, condition_mask


_MIN_DRAWS = 200  # draws per chain in the first run: enough to fit each chain's proposal
# Importance-sampling proposals in all, split between the chains' components: with a latent
# dimension near 20 the efficiency can fall to a few percent, which still leaves thousands.
_NUM_PROPOSALS = 65_536
_STUDENT_DF = 5.0


def _chain_weights(
    key: Key, samples: np.ndarray, log_density: Callable[[Array], Array]
) -> tuple[np.ndarray, float]:
    """The share of the target's mass that belongs to each chain, and the importance-sampling
    effective sample size behind those shares.

    ``samples`` ``(chains, draws, latent)``. Each chain gets a Student-t component (its draws'
    mean and covariance); the equal-weight mixture ``q`` of the components is sampled in equal
    parts (deterministic-mixture importance sampling) and weighed against the target ``p``.
    Chain ``c``'s share is ``E_p[q_c / sum_k q_k]``: the mass near where it sampled, split
    evenly between chains that sampled the same region. Chains that mixed agree and get equal
    shares; chains stuck in different modes get their modes' masses.
    """
    num_chains, _, dim = samples.shape
    x = samples.astype(np.float64)
    means = x.mean(axis=1)
    centred = x - means[:, None]
    covariances = np.einsum("cti,ctj->cij", centred, centred) / (x.shape[1] - 1)
    ridge = 1e-8 + 1e-6 * np.trace(covariances, axis1=1, axis2=2) / dim
    covariances += ridge[:, None, None] * np.eye(dim)
    cholesky = np.linalg.cholesky(covariances)

    per_chain = math.ceil(_NUM_PROPOSALS / num_chains)
    # numpy draws (seeded by the key) rather than jax ones: nothing to compile for a one-off.
    typed = jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
    rng = np.random.default_rng(np.asarray(jr.key_data(key) if typed else key).ravel().tolist())
    normal = rng.standard_normal((num_chains, per_chain, dim))
    chi2 = rng.chisquare(_STUDENT_DF, (num_chains, per_chain))
    steps = np.einsum("cij,cnj->cni", cholesky, normal) / np.sqrt(chi2 / _STUDENT_DF)[..., None]
    proposals = (means[:, None] + steps).reshape(-1, dim)

    # log q_c(z) for every component c and proposal z: multivariate Student-t densities.
    log_norm = (
        math.lgamma((_STUDENT_DF + dim) / 2)
        - math.lgamma(_STUDENT_DF / 2)
        - 0.5 * dim * math.log(_STUDENT_DF * math.pi)
        - np.log(np.diagonal(cholesky, axis1=1, axis2=2)).sum(axis=1)
    )
    log_q = np.empty((num_chains, proposals.shape[0]))
    for c in range(num_chains):
        whitened = scipy.linalg.solve_triangular(cholesky[c], (proposals - means[c]).T, lower=True)
        mahalanobis = np.sum(whitened**2, axis=0)
        log_q[c] = log_norm[c] - 0.5 * (_STUDENT_DF + dim) * np.log1p(mahalanobis / _STUDENT_DF)
    log_mixture = scipy.special.logsumexp(log_q, axis=0) - math.log(num_chains)
    log_p = np.asarray(log_density(jnp.asarray(proposals, jnp.float32)), np.float64)
    log_w = np.where(np.isfinite(log_p), log_p - log_mixture, -np.inf)
    if not np.isfinite(log_w).any():
        return np.full(num_chains, 1.0 / num_chains), 0.0
    w = np.exp(log_w - log_w.max())
    w /= w.sum()
    responsibilities = np.exp(log_q - log_mixture - math.log(num_chains))
    shares = responsibilities @ w
    return shares / shares.sum(), float(1.0 / np.sum(w**2))


def _allocate(shares: np.ndarray, total: int) -> np.ndarray:
    """Integer counts summing to ``total``, proportional to ``shares`` (largest remainder)."""
    exact = shares * total
    counts = np.floor(exact).astype(int)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: total - counts.sum()]] += 1
    return counts


def _spread(count: int, num_draws: int) -> np.ndarray:
    """``count`` indices spread evenly over ``range(num_draws)`` (thinning rather than keeping
    the first ``count``, which are the most correlated with each other)."""
    return (np.arange(count) * num_draws) // max(count, 1)


def _mixing_problems(
    samples: np.ndarray,
    counts: np.ndarray,
    diverging: np.ndarray,
    importance_ess: float,
    max_rhat: float,
    min_ess: float,
    numpyro: Any,
) -> list[str]:
    """Readable reasons to distrust pooled draws: ``samples`` ``(chains, draws, latent)``,
    of which ``counts[c]`` evenly spaced draws of chain ``c`` are kept (``_spread``);
    ``diverging`` ``(chains, draws)``."""
    problems = []
    used = np.flatnonzero(counts > 0)
    rhat = np.stack([numpyro.diagnostics.split_gelman_rubin(samples[c : c + 1]) for c in used])
    unsettled = used[~np.all(rhat <= max_rhat, axis=1)]  # also catches NaN
    if unsettled.size:
        problems.append(
            f"chains {unsettled} did not settle (split R-hat within a chain up to "
            f"{np.nanmax(rhat):.3f} > {max_rhat})"
        )
    # Pooled with weights n_c / N, chain c's mean has variance ~ sigma^2 / ESS_c', where the
    # n_c draws kept, evenly spaced over the chain, are worth about min(n_c, ESS_c) draws.
    ess = np.stack([numpyro.diagnostics.effective_sample_size(samples[c : c + 1]) for c in used])
    fraction = counts[used, None] / counts.sum()
    kept_ess = np.minimum(ess, counts[used, None])
    pooled_ess = 1.0 / np.sum(fraction**2 / kept_ess, axis=0)
    if not np.all(pooled_ess >= min_ess):
        problems.append(
            f"effective sample size down to {np.nanmin(pooled_ess):.0f} (< {min_ess:g})"
        )
    if importance_ess < min_ess:
        problems.append(
            f"the weights of the chains rest on an importance-sampling effective sample size of "
            f"{importance_ess:.0f} (< {min_ess:g})"
        )
    num_divergent = int(diverging.sum())
    if num_divergent > 0.01 * diverging.size:
        problems.append(f"{num_divergent} of {diverging.size} transitions diverged")
    return problems


def _report(problems: list[str], setting: str, on_poor_mixing: str) -> None:
    if not problems or on_poor_mixing == "ignore":
        return
    message = (
        f"NUTS reference looks unreliable for this conditional ({setting}): "
        + "; ".join(problems)
        + ". Try more chains, draws or warm-up."
    )
    if on_poor_mixing == "raise":
        raise RuntimeError(message)
    warnings.warn(message, RuntimeWarning, stacklevel=3)


def conditional_reference(
    key: Key,
    task: AbstractJointDensityTask,
    values: ArrayLike,
    condition_mask: ArrayLike,
    num_samples: int,
    *,
    num_warmup: int = 1000,
    num_chains: int = 32,
    target_accept_prob: float = 0.9,
    max_rhat: float = 1.1,
    min_ess: float = 100.0,
    on_poor_mixing: str = "warn",
) -> Float[Array, "num_samples dim"]:
    """Reference samples of every latent entry of ``[theta, x]`` given the observed ones.

    Runs numpyro's NUTS (dense mass matrix; ``num_chains`` chains vectorised on one device) on
    the potential ``-task.log_joint`` over the latent entries, the observed ones held at
    ``values``. Each chain starts from the latent entries of its own draw from the joint. With no
    entry observed, the conditional is the joint and is sampled exactly with ``task.simulate``.
    Same key and inputs give the same samples.

    NUTS does not cross between well separated modes, and these conditionals have many
    (``Tree`` and ``HMM`` are symmetric under ``theta -> -theta``; ``Tree``'s ``sin^2`` and
    ``cos^2`` are periodic), so pooling the chains equally would weigh each mode by how many
    chains happened to start near it. When the chains agree (split R-hat across chains at most
    ``max_rhat`` for every latent entry) they are pooled equally, as usual. Otherwise each
    chain's share of the output is estimated by importance sampling from a Student-t mixture
    fitted to the chains (see ``_chain_weights``), so that chains stuck in different modes get
    their modes' masses; chains whose share needs more draws than the first run gave are
    continued. Modes that no chain found are missed, so use many chains. The returned rows are
    shuffled.

    Then what is kept is checked: split R-hat within each chain that contributes, the effective
    sample size of the weighted pool (numpyro's per-chain estimates), the importance-sampling
    effective sample size behind unequal shares, and the fraction of divergent transitions.

    Args:
        key: PRNG key.
        task: a task with an exact, smooth ``log_joint(theta, x)`` that is finite on all of
            R^d (``Tree``, ``HMM``).
        values: ``(dim_theta + dim_x,)``; the observed entries (others are ignored, may be NaN).
        condition_mask: bool ``(dim_theta + dim_x,)``, True where observed; at least one entry
            must be latent.
        num_samples: number of samples to return.
        num_warmup: NUTS adaptation steps per chain (discarded).
        num_chains: chains; each first draws ``max(2 ceil(num_samples / num_chains), 200)``.
        target_accept_prob: NUTS's step-size target; above numpyro's 0.8 because the curvature
            of ``x ~ N(theta^2, .)`` grows with ``|theta|`` and causes divergences in the tails.
        max_rhat: largest split R-hat accepted per latent entry.
        min_ess: smallest effective sample size accepted per latent entry, of the pooled output.
        on_poor_mixing: ``"warn"`` (RuntimeWarning), ``"raise"`` (RuntimeError) or ``"ignore"``
            when a check fails or over 1% of transitions diverged.

    Returns:
        ``(num_samples, dim_theta + dim_x)`` float32 samples whose observed entries equal
        ``values``.
    """
    dim = _check_task(task)
    check_num_samples(num_samples, "num_samples")
    check_num_samples(num_warmup, "num_warmup")
    check_num_samples(num_chains, "num_chains")
    if not 0.0 < target_accept_prob < 1.0:
        raise ValueError(f"`target_accept_prob` must be in (0, 1), got {target_accept_prob!r}.")
    if on_poor_mixing not in ("warn", "raise", "ignore"):
        raise ValueError(
            f"`on_poor_mixing` must be 'warn', 'raise' or 'ignore', got {on_poor_mixing!r}."
        )
    values, observed = _check_inputs(values, condition_mask, dim)
    dim_theta = task.dim_theta
    key_init, key_mcmc, key_weights, key_order = jr.split(key, 4)

    if not observed.any():
        theta, x = task.simulate(key_init, num_samples)
        return jnp.concatenate([theta, x], axis=-1).astype(jnp.float32)

    numpyro = _import_numpyro()
    latent = np.flatnonzero(~observed)
    fixed = jnp.asarray(np.where(observed, values, 0.0), jnp.float32)

    def log_density(z: Float[Array, "*batch num_latent"]) -> Float[Array, "*batch"]:
        full = jnp.broadcast_to(fixed, (*z.shape[:-1], dim)).at[..., latent].set(z)
        return task.log_joint(full[..., :dim_theta], full[..., dim_theta:])

    theta, x = task.simulate(key_init, num_chains)
    init = jnp.concatenate([theta, x], axis=-1)[:, latent].astype(jnp.float32)
    if not np.all(np.isfinite(np.asarray(log_density(init)))):
        raise ValueError(
            "`task.log_joint` is not finite at the given observed `values` (with latent entries "
            "from the joint): the conditional is not defined there, or the density is not "
            "positive everywhere, which NUTS needs."
        )

    kernel = numpyro.infer.NUTS(
        potential_fn=lambda z: -log_density(z),
        dense_mass=True,
        target_accept_prob=target_accept_prob,
    )

    def run(num_draws: int, previous: Any = None) -> tuple[np.ndarray, np.ndarray, Any]:
        mcmc = numpyro.infer.MCMC(
            kernel,
            num_warmup=num_warmup,
            num_samples=num_draws,
            num_chains=num_chains,
            chain_method="vectorized",
            progress_bar=False,
        )
        if previous is None:
            start = init if num_chains > 1 else init[0]
            mcmc.run(key_mcmc, init_params=start, extra_fields=("diverging",))
        else:  # continue after the first run, keeping its adaptation
            mcmc.post_warmup_state = previous
            mcmc.run(previous.rng_key, extra_fields=("diverging",))
        draws = np.asarray(mcmc.get_samples(group_by_chain=True))
        diverging = np.asarray(mcmc.get_extra_fields(group_by_chain=True)["diverging"])
        return (
            draws.reshape(num_chains, num_draws, latent.size),
            diverging.reshape(num_chains, num_draws),
            mcmc.last_state,
        )

    # Twice the even split, so that a chain whose share is up to twice the average is not
    # continued (continuing compiles the sampler again).
    samples, diverging, state = run(max(2 * math.ceil(num_samples / num_chains), _MIN_DRAWS))
    between = np.asarray(numpyro.diagnostics.split_gelman_rubin(samples))
    if num_chains == 1 or np.all(between <= max_rhat):
        # The chains agree: pool them equally, as usual.
        shares, importance_ess = np.full(num_chains, 1.0 / num_chains), math.inf
    else:
        shares, importance_ess = _chain_weights(key_weights, samples, log_density)
    counts = _allocate(shares, num_samples)
    missing = int(counts.max()) - samples.shape[1]
    if missing > 0:
        more, more_diverging, _ = run(missing, state)
        samples = np.concatenate([samples, more], axis=1)
        diverging = np.concatenate([diverging, more_diverging], axis=1)

    if on_poor_mixing != "ignore":
        problems = _mixing_problems(
            samples, counts, diverging, importance_ess, max_rhat, min_ess, numpyro
        )
        setting = f"{num_chains} chains x {samples.shape[1]} draws after {num_warmup} warm-up steps"
        _report(problems, setting, on_poor_mixing)

    pooled = np.concatenate(
        [samples[c, _spread(int(counts[c]), samples.shape[1])] for c in range(num_chains)]
    )
    pooled = pooled[np.asarray(jr.permutation(key_order, num_samples))]
    out = np.broadcast_to(np.where(observed, values, 0.0), (num_samples, dim)).copy()
    out[:, latent] = pooled
    return jnp.asarray(out, jnp.float32)


@jit_checking_counts("num")
def random_conditionals(
    key: Key, task: AbstractJointDensityTask, num: int
) -> tuple[Float[Array, "num dim"], Bool[Array, "num dim"]]:
    """``num`` random conditionals of ``task``'s joint, to benchmark all-conditional accuracy.

    Each row's values are one joint draw ``[theta, x]`` (``task.simulate``); its condition mask
    observes ``k`` entries, ``k`` uniform on ``1 .. dim - 1`` and the entries a uniform subset of
    that size, so there is always at least one observed and one latent entry. Latent entries keep
    the joint draw's values, the ground truth behind the observation.

    Returns:
        ``(values, condition_mask)``: float ``(num, dim)`` and bool ``(num, dim)``, with
        ``dim = dim_theta + dim_x``; row ``i`` is the ``values`` / ``condition_mask`` pair for
        ``conditional_reference``.
    """
    dim = _check_task(task)
    if dim < 2:
        raise ValueError(f"A conditional needs at least two entries; the task has {dim}.")
    key_values, key_count, key_order = jr.split(key, 3)
    theta, x = task.simulate(key_values, num)
    values = jnp.concatenate([theta, x], axis=-1)
    num_observed = jr.randint(key_count, (num, 1), 1, dim)
    # Ranks of iid uniforms are a uniform random permutation of each row.
    ranks = jnp.argsort(jnp.argsort(jr.uniform(key_order, (num, dim)), axis=-1), axis=-1)
    return values, ranks < num_observed
