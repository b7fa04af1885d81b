"""The user-facing entry points: fit, Estimator (sample, log_prob), constraints, trials, save
and load."""

from ._constraints import AbstractConstraint as AbstractConstraint
from ._constraints import Box as Box
from ._constraints import LinearInequality as LinearInequality
from ._estimator import Estimator as Estimator
from ._fit import fit as fit
from ._samples import Samples as Samples
from ._serialise import load as load
from ._serialise import save as save
from ._trials import Trials as Trials

__all__ = [
    "AbstractConstraint",
    "Box",
    "Estimator",
    "LinearInequality",
    "Samples",
    "Trials",
    "fit",
    "load",
    "save",
]
