"""Transfer-learning heads on a backbone's features, and the Earth Mover's Distance loss.

The seeds' head: two dense layers with dropout on frozen features, then
- ``softmax`` for single-label classes (hotel property areas),
- ``sigmoid`` for multi-label tags,
- ``distribution``: a softmax over score bins (aesthetics, 10 bins) trained with the EMD
  loss; the predicted score is the distribution's mean (1..bins).
"""
from __future__ import annotations

from typing import Literal

import numpy as np

Kind = Literal["softmax", "sigmoid", "distribution"]


def emd_loss(y_true, y_pred, r: int = 2):
    """Earth Mover's Distance between score distributions over ordered bins (NIMA, idealo):
    (mean over bins of |CDF_true - CDF_pred|^r)^(1/r), per example."""
    import tensorflow as tf  # TF ops: the same code under Keras 3 (tf backend) and tf.keras 2.15 (horovod)

    y_true = tf.cast(y_true, y_pred.dtype)
    d = tf.abs(tf.math.cumsum(y_true, axis=-1) - tf.math.cumsum(y_pred, axis=-1))
    return tf.pow(tf.reduce_mean(tf.pow(d, r), axis=-1), 1.0 / r)


def emd_numpy(y_true: np.ndarray, y_pred: np.ndarray, r: int = 2) -> np.ndarray:
    """The same in numpy (for evaluation and as the tests' reference)."""
    d = np.abs(np.cumsum(y_true, axis=-1) - np.cumsum(y_pred, axis=-1))
    return np.mean(d ** r, axis=-1) ** (1.0 / r)


def mean_score(dist: np.ndarray) -> np.ndarray:
    """The mean of a distribution over bins 1..n."""
    return dist @ np.arange(1, dist.shape[-1] + 1, dtype=dist.dtype)


def build_head(input_dim: int, n_out: int, kind: Kind, hidden: tuple[int, int] = (256, 128),
               dropout: float = 0.5, seed: int = 0):
    """Dense(hidden[0]) -> Dropout -> Dense(hidden[1]) -> Dropout -> output layer."""
    import keras

    act = {"softmax": "softmax", "sigmoid": "sigmoid", "distribution": "softmax"}[kind]
    init = keras.initializers.GlorotUniform(seed=seed)
    inp = keras.Input((input_dim,), name="features")
    x = keras.layers.Dense(hidden[0], activation="relu", kernel_initializer=init)(inp)
    x = keras.layers.Dropout(dropout, seed=seed)(x)
    x = keras.layers.Dense(hidden[1], activation="relu", kernel_initializer=init)(x)
    x = keras.layers.Dropout(dropout, seed=seed + 1)(x)
    out = keras.layers.Dense(n_out, activation=act, kernel_initializer=init, name="output")(x)
    return keras.Model(inp, out, name=f"head_{kind}")


def loss_for(kind: Kind):
    """Per-example loss (reduction is done by the training loop over the global batch).
    ``reduction="none"`` is understood by Keras 3 and by tf.keras 2.15 (the horovod env)."""
    import keras

    if kind == "softmax":
        return keras.losses.SparseCategoricalCrossentropy(reduction="none")
    if kind == "sigmoid":
        return keras.losses.BinaryCrossentropy(reduction="none")
    return emd_loss
