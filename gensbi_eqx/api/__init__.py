"""The user-facing entry points: fit, Estimator, save and load."""

from ._estimator import Estimator as Estimator
from ._fit import fit as fit
from ._serialise import load as load
from ._serialise import save as save

__all__ = ["Estimator", "fit", "load", "save"]
