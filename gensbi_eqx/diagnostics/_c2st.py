"""Classifier two-sample tests (C2ST): how well can a classifier tell two sample sets apart?

0.5 means indistinguishable, 1.0 means disjoint. Two implementations of one protocol (z-score
both sets by the first, an MLP with two hidden layers of ``10 * dim`` ReLU units trained with
Adam, k-fold shuffled cross-validation, mean held-out accuracy):

- :func:`c2st` is scikit-learn's, exactly as the sbibm benchmark defines it, so numbers compare
  with published tables;
- :func:`c2st_jax` trains all folds at once in one compiled JAX program, for speed.
"""

import functools

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax

from .._custom_types import Array, ArrayLike, Bool, Float, Key, Scalar
from ._checks import as_float_array, check_finite, check_positive_int


# sbibm's C2ST is trusted from a few hundred samples upwards; below this the held-out accuracy
# of a 5-fold split moves by several points from one seed to the next.
MIN_SAMPLES = 100


def _z_scored(
    samples_p: ArrayLike, samples_q: ArrayLike, folds: int
) -> tuple[np.ndarray, np.ndarray]:
    """Both sets as float32 ``(n, d)``, standardised with the mean and std of ``samples_p``."""
    arrays = []
    for value, argument in ((samples_p, "samples_p"), (samples_q, "samples_q")):
        array = as_float_array(value, argument)
        if array.ndim != 2 or array.shape[1] == 0:
            raise ValueError(
                f"`{argument}` must have shape (n, d) (use x[:, None] for 1-D samples), got "
                f"{array.shape}."
            )
        if array.shape[0] < MIN_SAMPLES:
            raise ValueError(
                f"`{argument}` must hold at least {MIN_SAMPLES} samples for a C2ST, got shape "
                f"{array.shape}."
            )
        check_finite(array, argument)
        arrays.append(array.astype(np.float32))
    p, q = arrays
    if q.shape[1] != p.shape[1]:
        raise ValueError(
            f"`samples_q` must have shape (n, {p.shape[1]}) to match `samples_p` of shape "
            f"{p.shape}, got {q.shape}."
        )
    if q.shape[0] != p.shape[0]:
        raise ValueError(
            f"`samples_q` must hold as many samples as `samples_p` ({p.shape[0]}): with sets of "
            f"unequal size, always guessing the larger one scores above 0.5; got {q.shape[0]}."
        )
    check_positive_int(folds, "folds", minimum=2)
    if folds > p.shape[0] + q.shape[0]:
        raise ValueError(
            f"`folds` must be at most the number of samples, {p.shape[0] + q.shape[0]}, got "
            f"{folds}."
        )
    # Unbiased std, as torch.std in sbibm.
    mean, std = p.mean(axis=0), p.std(axis=0, ddof=1)
    if not np.all(std > 0):
        raise ValueError(
            f"`samples_p` (shape {p.shape}) must vary in every dimension to be z-scored, got "
            f"zero standard deviation in dimensions {np.flatnonzero(std <= 0).tolist()}."
        )
    return (p - mean) / std, (q - mean) / std


def c2st(
    samples_p: ArrayLike, samples_q: ArrayLike, *, seed: int = 1, folds: int = 5
) -> float:
    """Classifier two-sample test accuracy, exactly as sbibm computes it (scikit-learn MLP).

    **Arguments:**
    - `samples_p`: ``(n, d)``, e.g. reference posterior samples; both sets are z-scored with
      its mean and standard deviation.
    - `samples_q`: ``(n, d)``, e.g. samples of the estimator under test: as many as
      ``samples_p`` (only then is chance 0.5).
    - `seed`: ``random_state`` of the classifier and of the fold split.
    - `folds`: number of cross-validation folds.

    **Returns:** the mean held-out accuracy over the folds, in ``[0, 1]``; about 0.5 when the
    sets come from one distribution.

    Needs scikit-learn (``pip install gensbi_eqx[c2st]``); :func:`c2st_jax` does not.
    """
    try:
        from sklearn.model_selection import KFold, cross_val_score
        from sklearn.neural_network import MLPClassifier
    except ImportError as error:
        raise ImportError(
            "c2st needs scikit-learn: `pip install gensbi_eqx[c2st]`, or use "
            "gensbi_eqx.diagnostics.c2st_jax, which needs only JAX."
        ) from error
    p, q = _z_scored(samples_p, samples_q, folds)
    dim = p.shape[1]
    classifier = MLPClassifier(
        activation="relu",
        hidden_layer_sizes=(10 * dim, 10 * dim),
        max_iter=10000,
        solver="adam",
        random_state=seed,
    )
    data = np.concatenate([p, q])
    target = np.concatenate([np.zeros(p.shape[0]), np.ones(q.shape[0])])
    split = KFold(n_splits=folds, shuffle=True, random_state=seed)
    scores = cross_val_score(classifier, data, target, cv=split, scoring="accuracy")
    return float(np.mean(scores))


Params = tuple[Float[Array, "..."], ...]


def _init_mlp(key: Key, dim: int) -> Params:
    """Weights and biases ``(W1, b1, W2, b2, w3, b3)`` of a ``dim -> 10 dim -> 10 dim -> 1``
    MLP, Glorot-uniform like scikit-learn's (gain 2 on the logistic output)."""
    width = 10 * dim
    shapes = [(dim, width), (width,), (width, width), (width,), (width,), ()]
    fans = [(dim, width), (dim, width), (width, width), (width, width), (width, 1), (width, 1)]
    # One draw for every parameter: each separate random call adds to the compile time.
    sizes = [int(np.prod(shape)) for shape in shapes]
    flat = jr.uniform(key, (sum(sizes),), minval=-1.0, maxval=1.0)
    pieces = jnp.split(flat, np.cumsum(sizes)[:-1])
    params = []
    for i, (piece, shape, (fan_in, fan_out)) in enumerate(zip(pieces, shapes, fans)):
        gain = 2.0 if i >= 4 else 6.0
        params.append(piece.reshape(shape) * np.sqrt(gain / (fan_in + fan_out)))
    return tuple(params)


def _logits(params: Params, data: Float[Array, "n dim"]) -> Float[Array, " n"]:
    w1, b1, w2, b2, w3, b3 = params
    hidden = jax.nn.relu(data @ w1 + b1)
    hidden = jax.nn.relu(hidden @ w2 + b2)
    return hidden @ w3 + b3


def _fold_accuracy(
    key: Key,
    data: Float[Array, "n dim"],
    labels: Float[Array, " n"],
    is_test: Bool[Array, " n"],
    learning_rate: Scalar,
    steps: int,
    batch_size: int | None,
) -> Scalar:
    """Train one classifier on the rows outside ``is_test``; its accuracy on the rows inside."""
    key_init, key_train = jr.split(key)
    params = _init_mlp(key_init, data.shape[1])
    optimizer = optax.adam(optax.cosine_decay_schedule(learning_rate, steps))
    num_train = jnp.sum(~is_test)
    # A stable sort puts the training rows first, so minibatches index into ``order[:num_train]``.
    order = jnp.argsort(is_test, stable=True)

    def loss_fn(params, rows, weights):
        losses = optax.sigmoid_binary_cross_entropy(_logits(params, data[rows]), labels[rows])
        return jnp.sum(weights * losses) / jnp.sum(weights)

    def step(carry, key):
        params, opt_state = carry
        if batch_size is None:
            rows, weights = jnp.arange(data.shape[0]), (~is_test).astype(data.dtype)
        else:
            # Drawn with replacement: every step has the same shape, whatever the fold's size.
            rows = order[jr.randint(key, (batch_size,), 0, num_train)]
            weights = jnp.ones(batch_size, data.dtype)
        grads = jax.grad(loss_fn)(params, rows, weights)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), None

    carry = (params, optimizer.init(params))
    (params, _), _ = jax.lax.scan(step, carry, jr.split(key_train, steps))
    correct = (_logits(params, data) > 0) == (labels > 0.5)
    return jnp.sum(correct & is_test) / jnp.sum(is_test)


@functools.partial(jax.jit, static_argnames=("folds", "steps", "batch_size"))
def _cross_validated_accuracy(
    key: Key,
    data: Float[Array, "n dim"],
    labels: Float[Array, " n"],
    learning_rate: Scalar,
    folds: int,
    steps: int,
    batch_size: int | None,
) -> Scalar:
    n = data.shape[0]
    key_split, key_folds = jr.split(key)
    # Fold sizes as scikit-learn's KFold: the first n % folds folds hold one extra row.
    sizes = [n // folds + (1 if i < n % folds else 0) for i in range(folds)]
    fold_at_position = jnp.asarray(np.repeat(np.arange(folds), sizes))
    fold_of_row = jnp.zeros(n, jnp.int32).at[jr.permutation(key_split, n)].set(fold_at_position)
    is_test = fold_of_row[None, :] == jnp.arange(folds)[:, None]
    train = functools.partial(_fold_accuracy, steps=steps, batch_size=batch_size)
    accuracy = jax.vmap(train, in_axes=(0, None, None, 0, None))(
        jr.split(key_folds, folds), data, labels, is_test, learning_rate
    )
    return jnp.mean(accuracy)


def c2st_jax(
    samples_p: ArrayLike,
    samples_q: ArrayLike,
    *,
    key: Key | None = None,
    folds: int = 5,
    steps: int = 2000,
    batch_size: int | None = 256,
    learning_rate: float = 3e-3,
) -> float:
    """Classifier two-sample test accuracy, in JAX: the protocol of :func:`c2st`, all folds
    trained at once.

    The classifier is an MLP with two hidden layers of ``10 * d`` ReLU units and one logit,
    trained on the binary cross-entropy with Adam for a fixed number of ``steps`` (cosine decay
    of the learning rate to zero) instead of scikit-learn's stop-on-plateau; it has no L2 penalty
    (scikit-learn's default ``alpha=1e-4`` is negligible at these sample sizes). Folds are
    shuffled at random with ``key``; the result is the mean over folds of the held-out accuracy.

    **Arguments:**
    - `samples_p`: ``(n, d)``; both sets are z-scored with its mean and standard deviation.
    - `samples_q`: ``(n, d)``, as many as ``samples_p``.
    - `key`: a `jax.random` key for the split, the initial weights and the minibatches;
      ``None`` means ``jax.random.key(1)`` (the default seed of :func:`c2st`).
    - `folds`: number of cross-validation folds.
    - `steps`: Adam steps per fold.
    - `batch_size`: rows per step, drawn with replacement from the fold's training rows;
      ``None`` trains on the full training set every step (best on an accelerator).
    - `learning_rate`: Adam's initial learning rate.

    **Returns:** the mean held-out accuracy, in ``[0, 1]``.
    """
    p, q = _z_scored(samples_p, samples_q, folds)
    steps = check_positive_int(steps, "steps")
    if batch_size is not None:
        batch_size = check_positive_int(batch_size, "batch_size")
    if not learning_rate > 0:
        raise ValueError(f"`learning_rate` must be positive, got {learning_rate!r}.")
    key = jr.key(1) if key is None else key
    data = jnp.asarray(np.concatenate([p, q]))
    labels = jnp.concatenate([jnp.zeros(p.shape[0]), jnp.ones(q.shape[0])])
    accuracy = _cross_validated_accuracy(
        key, data, labels, jnp.float32(learning_rate), folds, steps, batch_size
    )
    return float(accuracy)
