"""i.i.d. trials: the posterior given ``n`` independent observations, composed from a model
that saw one observation at a time (a denoiser transform).

For ``x_1 ... x_n`` i.i.d. given ``theta``, ``p(theta | x_1..n) ~ prod_j p(theta | x_j) /
p(theta)^(n - 1)``, so at ``t = 0`` the score is ``sum_j s_j - (n - 1) s_prior``. At ``t > 0``
the noised posteriors do not factorise and that naive sum is biased (too narrow). The
correction of Linhart et al. 2024 ("Diffusion posterior sampling for simulation-based
inference in tall data settings") weighs each score by the precision of its denoising
posterior, ``P_j = Cov[theta_0 | theta_t, x_j]^-1``:

    score = L^-1 (sum_j P_j s_j - (n - 1) P_prior s_prior),    L = sum_j P_j - (n - 1) P_prior,

exact at every ``t`` when the single-trial posteriors and the prior are Gaussian. Where
``P_j`` comes from:

- `GaussCorrection` (default): each trial's posterior is read as a Gaussian whose covariance
  ``S_j`` is estimated once, from single-trial draws; then ``P_j = S_j^-1 + alpha^2 / sigma^2``
  at every ``t`` with no derivative of the network (Linhart et al.'s GAUSS).
  Above a noise level (``GaussCorrection(handover=1.0)``: ``sigma / alpha`` at the widest
  single-trial posterior sd) the draws follow instead the score of the composed posterior's
  Gaussian fit (`GaussianStart`): where the noise dwarfs every posterior, the composition
  weighs ``n`` nearly equal network scores against the prior's, so a network error common to
  the trials comes back about ``n`` times; the Gaussian fit has no such error, and is all the
  draws need there (the noised posterior is close to Gaussian when the noise dominates).
- `JacobianCorrection`: Tweedie's ``(sigma^2 / alpha) d x0_hat_j / d theta_t`` at every step
  (their JAC). Exact with an exact denoiser, but a network's Jacobian at high noise, multiplied
  by ``sigma^2``, is too inaccurate: with a trained Simformer the composed draws diverged.

The prior is Gaussian (`GaussianPrior`): exact for Gaussian priors, moment-matched otherwise.
All in standardised units, for ONE example; entries where ``condition_mask`` is False are the
shared latent ones (e.g. ``theta``), the ``trial_mask`` entries hold each trial's values.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr

from .._custom_types import Array, Bool, ConditionMask, Flat, Float, Key, Scalar
from ..methods import AbstractDenoiser, AbstractMethod
from ..samplers import AbstractSampler
from ..samplers._base import data_vanishes_at_noise_end

class GaussianPrior(eqx.Module):
    """A Gaussian ``N(mean, covariance)`` over all scalars in standardised units (only the
    latent block is used): the prior whose score the composition subtracts, or the composed
    posterior's Gaussian fit (`GaussianStart`)."""

    mean: Float[Array, " num_scalars"]
    covariance: Float[Array, "num_scalars num_scalars"]

    def score_and_covariance(
        self, alpha: Scalar, sigma: Scalar, y: Flat, latent: Bool[Array, " num_scalars"]
    ) -> tuple[Flat, Float[Array, "num_scalars num_scalars"]]:
        """The noised prior's score at ``y`` and ``Cov[x0 | y]``, on the latent block (the
        identity elsewhere, so that the matrices stay invertible)."""
        block = latent[:, None] & latent[None, :]
        eye = jnp.eye(latent.shape[0])
        prior = jnp.where(block, self.covariance, eye)
        noised = alpha**2 * prior + sigma**2 * eye
        score = jnp.where(latent, -jnp.linalg.solve(noised, y - alpha * self.mean), 0.0)
        # (P^-1 + alpha^2 / sigma^2)^-1 = sigma^2 (alpha^2 P + sigma^2)^-1 P, no inverse of P.
        covariance = sigma**2 * jnp.linalg.solve(noised, prior)
        return score, jnp.where(block, 0.5 * (covariance + covariance.T), eye)


class AbstractCorrection(eqx.Module):
    """How `TrialsDenoiser` corrects the naive sum of scores."""


class GaussCorrection(AbstractCorrection):
    """Each trial's posterior read as a Gaussian, its mean and covariance estimated once from
    ``num_draws`` single-trial draws (with the query's sampler); no Jacobian per step.
    ``handover``: above ``sigma / alpha = handover`` times the widest single-trial posterior sd
    the draws follow the Gaussian fit of the composed posterior (`GaussianStart`); ``None``
    composes at every noise level."""

    num_draws: int = eqx.field(static=True, default=100)
    handover: float | None = eqx.field(static=True, default=1.0)

    def __check_init__(self):
        if isinstance(self.num_draws, bool) or not isinstance(self.num_draws, int) or self.num_draws < 3:
            raise ValueError(f"`num_draws` must be an int >= 3, got {self.num_draws!r}.")
        if self.handover is not None and not (
            isinstance(self.handover, (int, float)) and not isinstance(self.handover, bool)
            and self.handover > 0
        ):
            raise ValueError(
                f"`handover` must be a positive number or None, got {self.handover!r}."
            )


class JacobianCorrection(AbstractCorrection):
    """Tweedie's covariance from the network's Jacobian, per trial and step (exact for an
    exact denoiser; unstable with trained networks at high noise)."""


class NoCorrection(AbstractCorrection):
    """The naive sum of scores: biased at ``t > 0`` (for comparison)."""


def _whitened_clip(covariance, prior_covariance, low):
    """``covariance`` with its eigenvalues in the prior's whitened coordinates clipped to
    ``[low, 1]``: a trial can only add information, ``0 < C_j <= C_prior``."""
    values, vectors = jnp.linalg.eigh(prior_covariance)
    root = (vectors * jnp.sqrt(values)) @ vectors.T
    inverse_root = (vectors / jnp.sqrt(values)) @ vectors.T
    whitened = inverse_root @ covariance @ inverse_root
    w_values, w_vectors = jnp.linalg.eigh(0.5 * (whitened + whitened.T))
    clipped = (w_vectors * jnp.clip(w_values, low, 1.0)) @ w_vectors.T
    return root @ clipped @ root


def posterior_precisions(
    draws: Float[Array, "num_draws num_scalars"],
    latent: Bool[Array, " num_scalars"],
    prior: GaussianPrior,
) -> Float[Array, "num_scalars num_scalars"]:
    """``S^-1`` of single-trial posterior ``draws`` on the latent block (identity elsewhere),
    its covariance first clipped below the prior's (`GaussCorrection`)."""
    block = latent[:, None] & latent[None, :]
    eye = jnp.eye(latent.shape[0])
    covariance = jnp.where(block, jnp.cov(draws, rowvar=False), eye)
    prior_covariance = jnp.where(block, prior.covariance, eye)
    covariance = _whitened_clip(covariance, prior_covariance, 1e-4)
    return jnp.where(block, jnp.linalg.inv(jnp.where(block, covariance, eye)), eye)


class GaussianStart(eqx.Module):
    """Where `TrialsDenoiser` hands over: above ``sigma / alpha = noise`` its score is that of
    ``fit`` (the composed posterior's Gaussian fit, noised), below it the composed one."""

    fit: GaussianPrior
    noise: Scalar


def gaussian_start(
    means: Float[Array, "num_trials num_scalars"],
    precisions: Float[Array, "num_trials num_scalars num_scalars"],
    prior: GaussianPrior,
    latent: Bool[Array, " num_scalars"],
    handover: float,
) -> GaussianStart:
    """The product of the trials' Gaussian posteriors (``means``, ``precisions`` ``S_j^-1``)
    over the prior ``n - 1`` times, and ``noise = handover`` times the widest single-trial
    posterior sd. With ``S_j`` clipped below the prior's the composed precision is at least the
    prior's, so the fit is proper."""
    block = latent[:, None] & latent[None, :]
    eye = jnp.eye(latent.shape[0])
    n = means.shape[0]
    prior_precision = jnp.where(block, jnp.linalg.inv(jnp.where(block, prior.covariance, eye)), 0.0)
    precisions = jnp.where(block, precisions, 0.0)
    total = jnp.sum(precisions, axis=0) - (n - 1) * prior_precision
    covariance = jnp.linalg.inv(jnp.where(block, total, eye))
    weighted = jnp.einsum("jab,jb->a", precisions, means) - (n - 1) * prior_precision @ prior.mean
    mean = jnp.where(latent, covariance @ jnp.where(latent, weighted, 0.0), 0.0)
    # The largest eigenvalue of any S_j on the latent block (zeros elsewhere add none).
    covariances = jnp.linalg.inv(jnp.where(block, precisions, eye))
    widest = jnp.max(jnp.linalg.eigvalsh(jnp.where(block, covariances, 0.0)))
    fit = GaussianPrior(mean, jnp.where(block, 0.5 * (covariance + covariance.T), eye))
    return GaussianStart(fit, handover * jnp.sqrt(widest))


class TrialsDenoiser(AbstractDenoiser):
    """``denoiser`` composed over i.i.d. trials, itself a denoiser for one example.

    - `denoiser`: the single-trial denoiser (standardised units).
    - `trials`: ``(num_trials, num_scalars)``; row ``j`` holds trial ``j``'s values on the
      ``trial_mask`` entries (other entries are ignored).
    - `trial_mask`: ``(num_scalars,)``, the entries that hold a trial (e.g. ``x``); they must be
      observed in the ``condition_mask`` the samplers pass, and the latent entries are the
      ones all trials share.
    - `prior`: the `GaussianPrior` of the latent entries, in standardised units.
    - `precisions`: ``(num_trials, num_scalars, num_scalars)``, each trial's posterior
      precision ``S_j^-1`` on the latent block (`posterior_precisions`): the Gaussian
      correction. ``None``: Tweedie's Jacobian per step instead.
    - `corrected`: ``False`` gives the naive sum of scores, biased at ``t > 0`` (for
      comparison).
    - `start`: a `GaussianStart`: above its noise level the score is its Gaussian fit's.

    Cost per step: one network call per trial, and with the Jacobian correction one Jacobian
    (one JVP per scalar) per trial. Methods with ``alpha = 0`` at ``t = 1`` (flow matching) are
    refused.
    """

    denoiser: AbstractDenoiser
    trials: Float[Array, "num_trials num_scalars"]
    trial_mask: Bool[Array, " num_scalars"]
    prior: GaussianPrior
    precisions: Float[Array, "num_trials num_scalars num_scalars"] | None = None
    corrected: bool = eqx.field(static=True, default=True)
    start: GaussianStart | None = None

    def __check_init__(self):
        if data_vanishes_at_noise_end(self.method):
            raise ValueError(
                f"i.i.d. trials compose scores, which {type(self.method).__name__} does not "
                "have at t = 1 (alpha = 0); train with gs.VESDE(), gs.VPSDE() or gs.EDM()."
            )

    @property
    def method(self) -> AbstractMethod:
        return self.denoiser.method

    def __call__(self, t: Scalar, y: Flat, condition_mask: ConditionMask) -> tuple[Flat, Flat]:
        alpha, sigma = self.method.alpha_sigma(t)
        latent = ~condition_mask
        n = self.trials.shape[0]

        def one_trial(values):
            y_j = jnp.where(self.trial_mask, values, y)
            x0 = self.denoiser(t, y_j, condition_mask)[0]
            return x0, y_j

        x0s, ys = jax.vmap(one_trial)(self.trials)
        scores = jnp.where(latent, (alpha * x0s - ys) / sigma**2, 0.0)  # Tweedie, per trial
        prior_score, prior_covariance = self.prior.score_and_covariance(alpha, sigma, y, latent)
        if self.corrected and self.precisions is not None:
            score = self._gauss(alpha, sigma, latent, scores, prior_score)
        elif self.corrected:
            score = self._jacobian(t, y, condition_mask, scores, prior_score, prior_covariance)
        else:
            score = jnp.sum(scores, axis=0) - (n - 1) * prior_score
        if self.start is not None:
            fit_score, _ = self.start.fit.score_and_covariance(alpha, sigma, y, latent)
            score = jnp.where(sigma > alpha * self.start.noise, fit_score, score)
        score = jnp.where(latent, score, 0.0)
        # Tweedie's formula back: y = alpha x0 + sigma eps.
        x0 = (y + sigma**2 * score) / alpha
        return jnp.where(latent, x0, y), -sigma * score

    def _gauss(self, alpha, sigma, latent, scores, prior_score):
        # P_j(t) = S_j^-1 + alpha^2 / sigma^2, so L = sum_j S_j^-1 - (n - 1) S_prior^-1 +
        # alpha^2 / sigma^2: formed without the large terms that cancel.
        block = latent[:, None] & latent[None, :]
        eye = jnp.eye(latent.shape[0])
        ratio = jnp.where(block, alpha**2 / sigma**2 * eye, 0.0)
        prior_precision = jnp.where(block, jnp.linalg.inv(jnp.where(block, self.prior.covariance, eye)), 0.0)
        precisions = jnp.where(block, self.precisions, 0.0)
        n = self.trials.shape[0]
        total = jnp.sum(precisions, axis=0) - (n - 1) * prior_precision + ratio
        weighted = jnp.einsum("jab,jb->a", precisions + ratio, scores)
        weighted = weighted - (n - 1) * (prior_precision + ratio) @ prior_score
        return jnp.linalg.solve(jnp.where(block, total, eye), jnp.where(latent, weighted, 0.0))

    def _jacobian(self, t, y, condition_mask, scores, prior_score, prior_covariance):
        alpha, sigma = self.method.alpha_sigma(t)
        latent = ~condition_mask
        block = latent[:, None] & latent[None, :]
        eye = jnp.eye(y.shape[0])

        def precision(trial):
            # Tweedie: Cov[x0 | y, x_j] = (sigma^2 / alpha) d x0_hat / d y, on the latent block.
            # A network's Jacobian, amplified by sigma^2 / alpha at high noise, need not be a
            # covariance below the prior's: clipped there, which also keeps the composed
            # precision above the prior's.
            x0 = lambda z: self.denoiser(t, jnp.where(self.trial_mask, trial, z), condition_mask)[0]
            jacobian = jax.jacfwd(x0)(y)
            c = jnp.where(block, (sigma**2 / alpha) * 0.5 * (jacobian + jacobian.T), eye)
            return jnp.linalg.inv(_whitened_clip(c, prior_covariance, 1e-3))

        precisions = jax.vmap(precision)(self.trials)
        prior_precision = jnp.linalg.inv(prior_covariance)
        n = self.trials.shape[0]
        total = jnp.sum(precisions, axis=0) - (n - 1) * prior_precision
        weighted = jnp.einsum("jab,jb->a", precisions, scores) - (n - 1) * prior_precision @ prior_score
        return jnp.linalg.solve(jnp.where(block, total, eye), jnp.where(latent, weighted, 0.0))


@eqx.filter_jit
def sample_trials(
    key: Key,
    denoiser: AbstractDenoiser,
    trials: Float[Array, "batch num_trials num_scalars"],
    trial_mask: Bool[Array, " num_scalars"],
    prior: GaussianPrior,
    y_cond: Float[Array, "batch num_scalars"],
    condition_mask: Bool[Array, "batch num_scalars"],
    num_samples: int,
    sampler: AbstractSampler,
    corrected: bool = True,
    precisions: Float[Array, "batch num_trials num_scalars num_scalars"] | None = None,
    start: GaussianStart | None = None,
) -> Float[Array, "num_samples batch num_scalars"]:
    """``num_samples`` draws given each of ``batch`` sets of i.i.d. trials, in one compiled call:
    the sampler vmapped over draws and over conditions, each condition with its own
    `TrialsDenoiser` (its trials and, for `GaussCorrection`, their posterior ``precisions``
    and the ``start`` of each condition, batched along the leading axis).
    Trial sets of a new value but the same shapes reuse the compiled sampler."""
    keys = jr.split(key, (num_samples, y_cond.shape[0]))
    with_precisions = precisions is not None
    if not with_precisions:
        precisions = jnp.zeros((y_cond.shape[0], 0))  # a stand-in that vmap can slice

    def one(k, values, y, mask, p, s):
        p = p if with_precisions else None
        composed = TrialsDenoiser(denoiser, values, trial_mask, prior, p, corrected, s)
        return sampler(k, composed, y, mask)

    over_conditions = jax.vmap(one, in_axes=(0, 0, 0, 0, 0, 0))
    return jax.vmap(over_conditions, in_axes=(0, None, None, None, None, None))(
        keys, trials, y_cond, condition_mask, precisions, start
    )
