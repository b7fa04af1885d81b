"""Loss curves of a training run: is it still learning, did it overfit, which weights were kept."""

import os

import numpy as np

from ..training import History
from ._save import _save_png_atomically


_TRAIN_COLOUR = "tab:blue"
_VALIDATION_COLOUR = "tab:orange"
_BEST_COLOUR = "tab:red"


def _as_history(history: object) -> History:
    if isinstance(history, History):
        return history
    inner = getattr(history, "history", None)
    if isinstance(inner, History):
        return inner
    if hasattr(history, "history") and inner is None:
        raise ValueError(
            f"`history` must carry a training History, got a {type(history).__name__} whose "
            "`.history` is None (it was not trained in this session or was saved without one)."
        )
    raise ValueError(
        "`history` must be a History or have a `.history` attribute that is one (an "
        f"Estimator), got {type(history).__name__}."
    )


def _running_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Means of every ``window`` consecutive values, ``(len(values) - window + 1,)``."""
    cumulative = np.concatenate([[0.0], np.cumsum(values, dtype=float)])
    return (cumulative[window:] - cumulative[:-window]) / window


def plot_loss(
    history: object,
    *,
    log_scale: bool | None = None,
    window: int | None = None,
    path: str | os.PathLike | None = None,
):
    """Training loss per step and validation loss, with the step whose weights were kept.

    The per-step training loss is drawn faintly with a running mean over it, so the trend is
    visible through the minibatch noise; the validation loss is drawn at its
    ``validation_steps``; ``best_step`` (the kept weights) is marked when there was validation.

    Args:
        history: a ``gensbi_eqx.training.History``, or anything whose ``.history`` is one (an
            ``Estimator``).
        log_scale: logarithmic loss axis. ``None`` (default): logarithmic when every loss is
            positive. ``True`` requires every loss to be positive.
        window: steps in the running mean, ``1 <= window <= steps``; by default about 2% of
            the steps (no running mean below 100 steps).
        path: if given, the figure is also written there as a PNG (atomically).

    Returns:
        The ``matplotlib.figure.Figure`` (no pyplot state is touched, so nothing needs closing).
    """
    from matplotlib.figure import Figure

    history = _as_history(history)
    train = np.asarray(history.train_loss, dtype=float)
    if train.ndim != 1 or train.size == 0:
        raise ValueError(
            f"`history.train_loss` must have shape (steps,) with steps >= 1, got shape "
            f"{train.shape}."
        )
    if not np.all(np.isfinite(train)):
        raise ValueError(
            "`history.train_loss` must be finite, got a non-finite value at step "
            f"{int(np.argmin(np.isfinite(train))) + 1}."
        )
    val_steps = np.asarray(history.validation_steps)
    val_loss = np.asarray(history.validation_loss, dtype=float)
    if val_steps.ndim != 1 or val_loss.shape != val_steps.shape:
        raise ValueError(
            "`history.validation_steps` and `history.validation_loss` must both have shape "
            f"(num_validations,), got shapes {val_steps.shape} and {val_loss.shape}."
        )
    if not np.all(np.isfinite(val_loss)):
        raise ValueError("`history.validation_loss` must be finite.")
    num_steps = train.size

    if window is None:
        window = max(1, num_steps // 50)
    elif isinstance(window, bool) or not 1 <= window <= num_steps:
        raise ValueError(
            f"`window` must be an int in [1, {num_steps}] (the number of steps), got {window!r}."
        )

    positive = bool(np.all(train > 0) and np.all(val_loss > 0))
    if log_scale is None:
        log_scale = positive
    elif log_scale and not positive:
        raise ValueError(
            "`log_scale=True` needs every loss to be positive, got a minimum of "
            f"{min(train.min(), val_loss.min(initial=np.inf)):.4g}."
        )

    fig = Figure(figsize=(7.0, 4.0), layout="constrained")
    ax = fig.add_subplot()
    # Step i + 1 is the loss of the (i + 1)-th update, matching `validation_steps`.
    steps = np.arange(1, num_steps + 1)
    smoothed = window > 1
    ax.plot(
        steps, train, color=_TRAIN_COLOUR, linewidth=0.8, alpha=0.3 if smoothed else 1.0,
        label="training (per step)" if smoothed else "training",
    )
    if smoothed:
        centres = steps[: num_steps - window + 1] + (window - 1) / 2
        ax.plot(
            centres, _running_mean(train, window), color=_TRAIN_COLOUR, linewidth=1.5,
            label=f"training (mean of {window} steps)",
        )
    if val_loss.size:
        ax.plot(
            val_steps, val_loss, "o-", color=_VALIDATION_COLOUR, linewidth=1.5, markersize=3,
            label="validation",
        )
        if history.best_step > 0:
            ax.axvline(
                history.best_step, color=_BEST_COLOUR, linestyle="--", linewidth=1.0,
                label=f"best (step {history.best_step})",
            )
            at_best = val_steps == history.best_step
            if np.any(at_best):
                ax.plot(
                    history.best_step, val_loss[at_best][0], "*", color=_BEST_COLOUR,
                    markersize=12,
                )
    if log_scale:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    title = f"{num_steps} steps in {history.seconds:.1f} s"
    if history.stopped_early:
        title += ", stopped early"
    ax.set_title(title)
    ax.legend()

    if path is not None:
        _save_png_atomically(fig, path)
    return fig
