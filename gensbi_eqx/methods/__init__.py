"""Probability paths, their training targets and times, and the denoisers read from them."""

from ._base import AbstractMethod as AbstractMethod
from ._denoiser import AbstractDenoiser as AbstractDenoiser
from ._denoiser import ModelDenoiser as ModelDenoiser
from ._edm import EDM as EDM
from ._flow_matching import FlowMatching as FlowMatching
from ._sde import VESDE as VESDE
from ._sde import VPSDE as VPSDE
from ._times import AbstractTimes as AbstractTimes
from ._times import LogitNormalTimes as LogitNormalTimes
from ._times import LogNormalNoise as LogNormalNoise
from ._times import UniformTimes as UniformTimes

__all__ = [
    "AbstractDenoiser",
    "AbstractMethod",
    "AbstractTimes",
    "EDM",
    "FlowMatching",
    "LogNormalNoise",
    "LogitNormalTimes",
    "ModelDenoiser",
    "UniformTimes",
    "VESDE",
    "VPSDE",
]
