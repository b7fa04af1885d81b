"""Benchmark tasks (priors, simulators, reference posteriors) and the distributions they use."""

from ._distributions import Normal as Normal
from ._distributions import Uniform as Uniform
from ._gaussian_linear import GaussianLinear as GaussianLinear
from ._two_moons import TwoMoons as TwoMoons

__all__ = ["GaussianLinear", "Normal", "TwoMoons", "Uniform"]
