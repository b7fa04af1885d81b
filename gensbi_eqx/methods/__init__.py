"""Probability paths, their training targets and their sampling vector fields."""

from ._base import AbstractMethod as AbstractMethod
from ._base import network_output as network_output
from ._edm import EDM as EDM
from ._flow_matching import FlowMatching as FlowMatching
from ._sde import VESDE as VESDE
from ._sde import VPSDE as VPSDE

METHODS = {cls.__name__: cls for cls in (VESDE, VPSDE, FlowMatching, EDM)}

__all__ = ["AbstractMethod", "EDM", "FlowMatching", "METHODS", "VESDE", "VPSDE", "network_output"]
