"""Each method's default sampler, written in one place."""

import diffrax

from ..methods import EDM, VESDE, VPSDE, AbstractMethod, FlowMatching
from ._base import AbstractSampler
from ._edm import EDMSampler
from ._ode import ODE
from ._sde import SDE

_DEFAULTS: dict[type, AbstractSampler] = {
    # 200 Euler-Maruyama steps, 2.5x cheaper than the paper's 500: the same law on an exact
    # Gaussian denoiser (variance within 2%) and the same C2ST on trained two moons, and, on
    # tasks not tuned on, SLCP, Tree and HMM, within 0.003 of 500's; on the Gaussian mixture's
    # narrow component 0.006 higher on both seeds (100 steps: 0.014 higher).
    # benchmarks/results/sampler_study.md, recipe_study.md.
    VESDE: SDE(steps=200),
    # The Simformer paper's 500 steps: at 100, VP's variance was 3% high on the exact Gaussian,
    # and at 200 the trained Gaussian mixture's C2ST rose by 0.031.
    VPSDE: SDE(steps=500),
    # 20 Heun steps scored the C2ST of adaptive Tsit5 at rtol 1e-5 on two moons with a tenth
    # of the evaluations (benchmarks/fm_ode_steps.py).
    FlowMatching: ODE(diffrax.Heun(), steps=20),
    # Karras' 18 steps, although 15-17% too wide on a narrow exact Gaussian: with trained EDM
    # networks more steps, or the reverse SDE, scored worse C2ST on the Gaussian mixture
    # (0.57-0.64 against 0.556), better only on two moons. benchmarks/results/sampler_study.md.
    EDM: EDMSampler(steps=18),
}


def default_sampler(method: AbstractMethod) -> AbstractSampler:
    """The sampler used for ``method`` when none is given; a method this table does not know
    gets the adaptive probability-flow ODE, ``ODE()``."""
    return _DEFAULTS.get(type(method), ODE())
