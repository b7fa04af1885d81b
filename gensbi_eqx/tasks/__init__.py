"""Benchmark tasks (priors, simulators, reference posteriors) and the distributions they use."""

from ._distributions import Normal as Normal
from ._distributions import Uniform as Uniform
from ._gaussian_linear import GaussianLinear as GaussianLinear
from ._gaussian_mixture import GaussianMixture as GaussianMixture
from ._hodgkin_huxley import HodgkinHuxley as HodgkinHuxley
from ._lotka_volterra import LogitNormal as LogitNormal
from ._lotka_volterra import LotkaVolterra as LotkaVolterra
from ._references import Reference as Reference
from ._references import load_reference as load_reference
from ._sird import SIRD as SIRD
from ._sird import SIRDPrior as SIRDPrior
from ._slcp import SLCP as SLCP
from ._two_moons import TwoMoons as TwoMoons

__all__ = [
    "GaussianLinear",
    "GaussianMixture",
    "HodgkinHuxley",
    "LogitNormal",
    "LotkaVolterra",
    "Normal",
    "Reference",
    "SIRD",
    "SIRDPrior",
    "SLCP",
    "TwoMoons",
    "Uniform",
    "load_reference",
]
