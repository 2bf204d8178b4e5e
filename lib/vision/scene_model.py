"""The demo scene model (pretrain_scene_model): a small MobileNet-style network trained on
freshly rendered scenes of every category, standing in for a Places365 network.

Training images go through the same JPEG encode and :func:`~vistarank.udfs.images.decode_rgb`
path as scoring, so the model sees at training time exactly what it sees in production.
It is saved as ``<models_dir>/<name>/<version>/model.keras`` with ``labels.txt`` and
``metrics.json``; the scoring job loads it like any other Keras file.
"""
from __future__ import annotations

import json
import logging
import os
import time

import numpy as np

from vistarank.config import Config
from vistarank.udfs.images import decode_rgb, to_model_input
from vistarank.udfs.render import degrade, encode_jpeg, render_scene
from vistarank.vision.models import demo_model_dir
from vistarank.world.catalog import CATEGORY_NAMES

log = logging.getLogger(__name__)


def render_dataset(n_per_class: int, size: int, seed: int, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n_per_class`` rendered, degraded, JPEG-round-tripped images per category (uint8)."""
    xs = np.zeros((n_per_class * len(CATEGORY_NAMES), size, size, 3), np.uint8)
    ys = np.zeros(len(xs), np.int32)
    i = 0
    for c, cat in enumerate(CATEGORY_NAMES):
        for j in range(n_per_class):
            rng = np.random.default_rng([seed, c, offset + j])
            w = int(rng.integers(140, 300))
            h = int(w / rng.uniform(0.7, 1.6))
            img, _, _ = degrade(render_scene(cat, rng, w, h), rng, 0.35)
            dec = decode_rgb(encode_jpeg(img, int(rng.integers(70, 94))), max_pixels=1 << 30, draft_size=size)
            xs[i] = to_model_input(dec.image, size).astype(np.uint8)
            ys[i] = c
            i += 1
    return xs, ys


def build_model(n_classes: int, size: int, width: int, seed: int):
    """MobileNet-style: a strided conv, depthwise-separable blocks, global pooling, softmax.
    Preprocessing (0..255 to -1..1) is inside the model. BatchNorm momentum 0.9 (not 0.99):
    with a few hundred training steps the 0.99 moving statistics lag the weights and the
    model, right in training mode, is wrong in inference mode (held-out top-1 0.17 once)."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    inp = keras.Input((size, size, 3), name="image")
    x = layers.Rescaling(1 / 127.5, offset=-1.0)(inp)
    x = layers.Conv2D(width, 3, strides=2, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization(momentum=0.9)(x)
    x = layers.ReLU(6.0)(x)
    for filters, stride in [(width * 2, 2), (width * 2, 1), (width * 4, 2), (width * 4, 1), (width * 8, 2)]:
        x = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization(momentum=0.9)(x)
        x = layers.ReLU(6.0)(x)
        x = layers.Conv2D(filters, 1, use_bias=False)(x)
        x = layers.BatchNormalization(momentum=0.9)(x)
        x = layers.ReLU(6.0, name=f"block_{filters}_{stride}_out" if stride == 2 else None)(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dropout(0.2)(x)
    out = layers.Dense(n_classes, activation="softmax", name="scene")(x)
    return keras.Model(inp, out, name="scene_demo")


def augment(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Horizontal flips (scenes are mirror-invariant)."""
    flip = rng.random(len(x)) < 0.5
    x = x.copy()
    x[flip] = x[flip, :, ::-1]
    return x


def train(cfg: Config) -> dict:
    """Render, train, evaluate on held-out renders, save. Returns the metrics."""
    import keras

    sc, spec = cfg.scene_model, cfg.model
    size = spec.input_size
    t0 = time.perf_counter()
    x, y = render_dataset(sc.images_per_class, size, sc.seed)
    xh, yh = render_dataset(sc.holdout_per_class, size, sc.seed, offset=10_000_000)
    log.info("rendered %d training and %d held-out scenes (%d categories) in %.1fs", len(x), len(xh),
             len(CATEGORY_NAMES), time.perf_counter() - t0)
    model = build_model(len(CATEGORY_NAMES), size, sc.width, sc.seed)
    steps = sc.epochs * int(np.ceil(len(x) / sc.batch_size))
    lr = keras.optimizers.schedules.CosineDecay(sc.learning_rate, decay_steps=steps)
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    rng = np.random.default_rng(sc.seed)
    for epoch in range(sc.epochs):
        order = rng.permutation(len(x))
        hist = model.fit(augment(x[order], rng).astype(np.float32), y[order], batch_size=sc.batch_size,
                         epochs=1, verbose=0, shuffle=False)
        log.info("epoch %d/%d: loss %.3f, accuracy %.3f", epoch + 1, sc.epochs, hist.history["loss"][-1],
                 hist.history["accuracy"][-1])
    probs = model.predict(xh.astype(np.float32), batch_size=256, verbose=0)
    top5 = np.argsort(-probs, axis=1)[:, :5]
    metrics = {
        "top1": float(np.mean(top5[:, 0] == yh)),
        "top5": float(np.mean((top5 == yh[:, None]).any(axis=1))),
        "n_holdout": int(len(yh)),
        "n_train": int(len(y)),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    out = demo_model_dir(cfg)
    os.makedirs(out, exist_ok=True)
    model.save(os.path.join(out, "model.keras"))
    with open(os.path.join(out, "labels.txt"), "w") as fh:
        fh.write("\n".join(CATEGORY_NAMES) + "\n")
    with open(os.path.join(out, "metrics.json"), "w") as fh:
        json.dump(metrics, fh, indent=2)
    log.info("scene model %s: held-out top-1 %.3f, top-5 %.3f; saved to %s", spec.model_version,
             metrics["top1"], metrics["top5"], out)
    return metrics
