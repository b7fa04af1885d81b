"""What a training run leaves behind besides the weights."""

import dataclasses
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class History:
    """Losses of a run. ``train_loss (steps,)`` per step; ``validation_loss`` at the steps in
    ``validation_steps``; ``best_step`` is the step whose (EMA) weights were kept;
    ``dropped_rows`` are the indices, in the data given to `gensbi_eqx.fit`, of the simulations
    left out for NaN or inf (``theta[history.dropped_rows]``: where the simulator failed)."""

    train_loss: np.ndarray
    validation_steps: np.ndarray
    validation_loss: np.ndarray
    best_step: int
    stopped_early: bool
    seconds: float
    dropped_rows: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def config(self) -> dict[str, Any]:
        """A JSON-able description; `from_config` rebuilds the history."""
        return {
            "train_loss": self.train_loss.tolist(),
            "validation_steps": self.validation_steps.tolist(),
            "validation_loss": self.validation_loss.tolist(),
            "best_step": self.best_step,
            "stopped_early": self.stopped_early,
            "seconds": self.seconds,
            "dropped_rows": self.dropped_rows.tolist(),
        }

    @classmethod
    def from_config(cls, d: dict[str, Any]) -> "History":
        return cls(
            np.asarray(d["train_loss"], dtype=np.float32),
            np.asarray(d["validation_steps"], dtype=np.int64),
            np.asarray(d["validation_loss"], dtype=np.float32),
            int(d["best_step"]),
            bool(d["stopped_early"]),
            float(d["seconds"]),
            np.asarray(d.get("dropped_rows", []), dtype=np.int64),
        )
