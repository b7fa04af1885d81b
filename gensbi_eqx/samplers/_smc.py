"""Sequential Monte Carlo for constrained draws: the twisted diffusion sampler (Wu et al. 2023,
"Practical and asymptotically exact conditional sampling in diffusion models").

Guided diffusion alone draws from an approximation: its twist ``l_t(y) = log P(constraint | y_t)``
assumes ``x0`` given ``y_t`` is Gaussian, and with a trained network it pushes the entries
correlated with the constrained ones through the network's cross-Jacobian. Here a population
of particles follows the guided reverse SDE (the proposal ``q``), and each particle carries the
weight that turns the proposal into the model's own constrained law:

    w_0 = exp(l_1(y_1)),    w <- w * p(y' | y) exp(l_t'(y')) / (q(y' | y) exp(l_t(y)))

with ``p`` the unguided Euler-Maruyama step and ``q`` the guided one (two Gaussians with the
same covariance, whose means differ by the guidance drift). At the end the twist is replaced
by the constraint itself (1 inside, 0 outside), so no draw outside survives. Particles are
resampled (systematic resampling) whenever the effective sample size falls below
``resample_below`` of the population. As the number of particles grows the weighted
particles follow the model's law restricted to the constraints, whatever the twist's error;
the twist only decides how many particles carry the weight (the effective sample size).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr

from .._custom_types import Array, ConditionMask, Flat, Float, Int, Key, Scalar
from ..guidance import AbstractVariance, SlabGuidance, UnitVariance
from ..methods import AbstractMethod
from ._base import check_positive_int, method_time
from ._sde import check_sde_method


def effective_sample_size(log_weights: Float[Array, " num_particles"]) -> Scalar:
    """``(sum w)^2 / sum w^2``; 0 when every weight is 0."""
    top = jnp.max(log_weights)
    w = jnp.exp(log_weights - jnp.where(jnp.isfinite(top), top, 0.0))
    return jnp.sum(w) ** 2 / jnp.maximum(jnp.sum(w**2), jnp.finfo(w.dtype).tiny)


def systematic_resample(
    key: Key, log_weights: Float[Array, " num_particles"], num: int | None = None
) -> Int[Array, " num"]:
    """Indices of ``num`` (default: all) particles drawn in proportion to their weights with
    one uniform offset (systematic resampling: the lowest variance of the usual schemes)."""
    n = log_weights.shape[0]
    num = n if num is None else num
    cumulative = jnp.cumsum(jax.nn.softmax(log_weights))
    points = (jr.uniform(key) + jnp.arange(num)) / num
    return jnp.minimum(jnp.searchsorted(cumulative, points), n - 1)


class SMC(eqx.Module):
    """Constrained draws by sequential Monte Carlo over the guided reverse SDE (the module
    docstring): ``steps`` Euler-Maruyama steps, ``num_samples`` particles per condition,
    resampling when the effective sample size falls below ``resample_below`` of them.
    ``variance`` is the twist's estimate of the spread of ``x0`` (as in guidance): the unit
    variance (default) needs no derivative of the network, so a step costs one network
    evaluation; Tweedie's costs a Jacobian-vector product per constraint direction and a
    vector-Jacobian product (6-9 times the time per step, measured) for a proposal closer to
    the target. The weights correct either, and with the unit twist the effective sample size
    was as high (`benchmarks/results/interval_study.md`).

    ``oversample`` particles run per draw, and the draws are ``num_samples`` of them picked by
    systematic resampling: with one particle per draw about a third of the draws repeat
    (which alone raises a C2ST; see the results), with four nearly all are distinct.

    Pass it as ``sampler=gs.SMC()`` with ``constraints`` to `Estimator.sample`;
    ``samples.info["ess"]`` is the effective sample size of the final particles as a fraction
    of the draws. Needs a method with a reverse SDE (VE, VP, EDM).
    """

    steps: int = eqx.field(static=True, default=200)
    resample_below: float = eqx.field(static=True, default=0.5)
    variance: AbstractVariance = UnitVariance()
    oversample: int = eqx.field(static=True, default=4)

    def __check_init__(self):
        check_positive_int(self.steps, "steps")
        check_positive_int(self.oversample, "oversample")
        value = self.resample_below
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise ValueError(f"`resample_below` must be a number in [0, 1], got {value!r}.")
        if not isinstance(self.variance, AbstractVariance):
            raise TypeError(
                "`variance` must be gs.guidance.TweedieVariance() or UnitVariance(), got "
                f"{self.variance!r}."
            )

    def check_method(self, method: AbstractMethod) -> None:
        check_sde_method(method)

    @property
    def evaluations(self) -> int:
        return self.steps + 1

    def __call__(
        self,
        key: Key,
        guided: SlabGuidance,
        y_cond: Flat,
        condition_mask: ConditionMask,
        num_draws: int,
    ) -> tuple[Float[Array, "num_draws num_scalars"], dict[str, Array]]:
        """``num_draws`` draws for ONE condition, from ``oversample * num_draws`` particles,
        and what the run reports: ``ess`` (the final effective sample size of the particles
        as a fraction of ``num_draws``), ``log_probability`` (an unbiased estimate, on the exp
        scale, of the probability of the constraints under the model's conditional) and
        ``resamplings``."""
        num_particles = self.oversample * num_draws
        method = guided.method
        grid = jnp.linspace(0.0, 1.0, self.steps + 1)
        ds = 1.0 / self.steps
        k_init, k_steps, k_final = jr.split(key, 3)

        def evaluate(s, y):
            t, _ = method_time(method, s)
            _, eps, g, log_twist = guided.guidance_and_log_prob(t, y, condition_mask)
            return -eps / method.alpha_sigma(t)[1], g, log_twist

        evaluate_all = jax.vmap(evaluate, in_axes=(None, 0))
        noise = method.prior_std() * jr.normal(k_init, (num_particles,) + y_cond.shape)
        y = jnp.where(condition_mask, y_cond, noise)
        score, g, log_twist = evaluate_all(grid[0], y)
        latent = ~condition_mask

        def step(carry, inputs):
            y, score, g, log_twist, log_w, log_z, resamplings = carry
            s0, s1, step_key = inputs
            k_noise, k_resample = jr.split(step_key)
            t0, span = method_time(method, s0)
            f, g2 = method.drift_diffusion(t0)
            # Unguided mean y + ds * dy/ds, the guided one shifted by the guidance drift.
            mean = y - ds * span * (f * y - g2 * score)
            shift = ds * span * g2 * g
            std = jnp.sqrt(ds * span * g2)
            z = jr.normal(k_noise, y.shape)
            y_new = jnp.where(condition_mask, y, mean + shift + std * z)
            # log p(y'|y) - log q(y'|y) for two Gaussians of covariance std^2 I: only the
            # difference of the means enters.
            log_ratio = jnp.sum(jnp.where(latent, -z * shift / std - shift**2 / (2 * std**2), 0.0), axis=-1)
            score_new, g_new, log_twist_new = evaluate_all(s1, y_new)
            log_w = log_w + log_ratio + log_twist_new - log_twist
            state = (y_new, score_new, g_new, log_twist_new)
            # Resample when the weights have degenerated; the mean weight goes into the
            # estimate of the constraint's probability before the weights are reset.
            resample = effective_sample_size(log_w) < self.resample_below * num_particles
            index = systematic_resample(k_resample, log_w)
            log_mean = jax.nn.logsumexp(log_w) - jnp.log(num_particles)
            state = jax.tree.map(lambda a: jnp.where(resample, a[index], a), state)
            log_z = jnp.where(resample, log_z + log_mean, log_z)
            log_w = jnp.where(resample, jnp.zeros_like(log_w), log_w)
            return (*state, log_w, log_z, resamplings + resample), None

        carry = (y, score, g, log_twist, log_twist, jnp.zeros(()), jnp.zeros((), int))
        step_keys = jr.split(k_steps, self.steps)
        (y, _, _, log_twist, log_w, log_z, resamplings), _ = jax.lax.scan(
            step, carry, (grid[:-1], grid[1:], step_keys)
        )
        # The last twist gives way to the constraint itself: draws outside get weight 0.
        inside = jax.vmap(guided.satisfied)(jnp.where(condition_mask, y_cond, y))
        log_w = jnp.where(inside, log_w - log_twist, -jnp.inf)
        ess = effective_sample_size(log_w)
        log_z = log_z + jax.nn.logsumexp(log_w) - jnp.log(num_particles)
        index = systematic_resample(k_final, log_w, num_draws)
        # With no particle inside there is nothing to resample: NaN draws, ESS 0.
        draws = jnp.where(jnp.isfinite(log_z), y[index], jnp.nan)
        draws = jnp.where(condition_mask, y_cond, draws)
        info = {"ess": ess / num_draws, "log_probability": log_z, "resamplings": resamplings}
        return draws, info
