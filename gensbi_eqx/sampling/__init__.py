"""Draws and densities for many conditions at once, from any denoiser and sampler."""

from ._log_prob import AbstractTrace as AbstractTrace
from ._log_prob import ExactTrace as ExactTrace
from ._log_prob import Hutchinson as Hutchinson
from ._log_prob import log_prob as log_prob
from ._log_prob import log_prob_batch as log_prob_batch
from ._sample import sample_conditionals as sample_conditionals
from ._trials import AbstractCorrection as AbstractCorrection
from ._trials import GaussCorrection as GaussCorrection
from ._trials import GaussianPrior as GaussianPrior
from ._trials import GaussianStart as GaussianStart
from ._trials import gaussian_start as gaussian_start
from ._trials import JacobianCorrection as JacobianCorrection
from ._trials import NoCorrection as NoCorrection
from ._trials import posterior_precisions as posterior_precisions
from ._trials import TrialsDenoiser as TrialsDenoiser
from ._trials import sample_trials as sample_trials

__all__ = [
    "AbstractCorrection",
    "GaussCorrection",
    "JacobianCorrection",
    "NoCorrection",
    "posterior_precisions",
    "AbstractTrace",
    "ExactTrace",
    "GaussianPrior",
    "GaussianStart",
    "gaussian_start",
    "Hutchinson",
    "log_prob",
    "log_prob_batch",
    "TrialsDenoiser",
    "sample_conditionals",
    "sample_trials",
]
