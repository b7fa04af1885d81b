"""Probability paths, their training targets and their sampling vector fields."""

from ._base import AbstractMethod as AbstractMethod
from ._base import network_output as network_output
from ._flow_matching import FlowMatching as FlowMatching
from ._sde import VESDE as VESDE
from ._sde import VPSDE as VPSDE

METHODS = {cls.__name__: cls for cls in (VESDE, VPSDE, FlowMatching)}

__all__ = ["AbstractMethod", "FlowMatching", "METHODS", "VESDE", "VPSDE", "network_output"]
