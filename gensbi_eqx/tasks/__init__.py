"""Benchmark tasks (priors, simulators, reference posteriors) and the distributions they use."""

from ._base import AbstractJointDensityTask as AbstractJointDensityTask
from ._base import AbstractSBIBMTask as AbstractSBIBMTask
from ._base import AbstractTask as AbstractTask
from ._base import AbstractTimeSeriesTask as AbstractTimeSeriesTask
from ._distributions import AbstractDistribution as AbstractDistribution
from ._distributions import LogitNormal as LogitNormal
from ._distributions import Normal as Normal
from ._distributions import Uniform as Uniform
from ._gaussian_linear import GaussianLinear as GaussianLinear
from ._gaussian_mixture import GaussianMixture as GaussianMixture
from ._hmm import HMM as HMM
from ._hodgkin_huxley import HodgkinHuxley as HodgkinHuxley
from ._lotka_volterra import LotkaVolterra as LotkaVolterra
from ._mcmc import conditional_reference as conditional_reference
from ._mcmc import random_conditionals as random_conditionals
from ._references import Reference as Reference
from ._references import load_reference as load_reference
from ._sird import SIRD as SIRD
from ._sird import SIRDPrior as SIRDPrior
from ._slcp import SLCP as SLCP
from ._tree import Tree as Tree
from ._two_moons import TwoMoons as TwoMoons

TASKS: dict[str, type[AbstractTask]] = {
    cls.name: cls
    for cls in (
        TwoMoons,
        GaussianLinear,
        GaussianMixture,
        SLCP,
        Tree,
        HMM,
        LotkaVolterra,
        SIRD,
        HodgkinHuxley,
    )
}
"""Every task class by its ``name``; each builds with its defaults, ``TASKS["slcp"]()``."""

__all__ = [
    "AbstractDistribution",
    "AbstractJointDensityTask",
    "AbstractSBIBMTask",
    "AbstractTask",
    "AbstractTimeSeriesTask",
    "GaussianLinear",
    "GaussianMixture",
    "HMM",
    "HodgkinHuxley",
    "LogitNormal",
    "LotkaVolterra",
    "Normal",
    "Reference",
    "SIRD",
    "SIRDPrior",
    "SLCP",
    "TASKS",
    "Tree",
    "TwoMoons",
    "Uniform",
    "conditional_reference",
    "load_reference",
    "random_conditionals",
]
