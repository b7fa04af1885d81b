"""How models are trained: the run's settings, condition-mask samplers, the loss and the loop."""

from ._checkpoint import Checkpoint as Checkpoint
from ._history import History as History
from ._loop import make_fused_train_steps as make_fused_train_steps
from ._loop import make_train_step as make_train_step
from ._loop import train as train
from ._loss import batch_loss as batch_loss
from ._masks import AbstractConditionMasks as AbstractConditionMasks
from ._masks import BernoulliMasks as BernoulliMasks
from ._masks import ObservedAlways as ObservedAlways
from ._masks import PosteriorMasks as PosteriorMasks
from ._masks import StructuredMasks as StructuredMasks
from ._optimizer import default_optimizer as default_optimizer
from ._settings import Training as Training
from ._stopping import AbstractStopping as AbstractStopping
from ._stopping import EarlyStopping as EarlyStopping
from ._stopping import PlateauStopping as PlateauStopping

__all__ = [
    "AbstractConditionMasks",
    "AbstractStopping",
    "BernoulliMasks",
    "Checkpoint",
    "EarlyStopping",
    "History",
    "ObservedAlways",
    "PlateauStopping",
    "PosteriorMasks",
    "StructuredMasks",
    "Training",
    "batch_loss",
    "default_optimizer",
    "make_fused_train_steps",
    "make_train_step",
    "train",
]
