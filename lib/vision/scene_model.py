"""The demo scene model (pretrain_scene_model): a small MobileNet-style network trained on
freshly rendered scenes of every category, standing in for a Places365 network.

Its tags (:data:`vistarank.world.catalog.TAG_NAMES`) are the 24 scene categories and the
92 elements that photos of them show (parasol, chalet, gondola, chandelier...): every
rendered photo is one scene with 1 to 3 of its category's elements drawn over it, and the
network is multi-label (a sigmoid per tag, binary cross-entropy), so a photo's labels are
its scene and its elements with probabilities that do not compete. That is what gives
NMF co-occurring tags to fold into themes.

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
from vistarank.world.catalog import CATEGORY_NAMES, TAG_NAMES, sample_elements

log = logging.getLogger(__name__)


def render_dataset(n_per_class: int, size: int, seed: int, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n_per_class`` rendered, degraded, JPEG-round-tripped images per category (uint8)
    and their tags as 0/1 rows over :data:`TAG_NAMES` (the category and the elements drawn)."""
    xs = np.zeros((n_per_class * len(CATEGORY_NAMES), size, size, 3), np.uint8)
    ys = np.zeros((len(xs), len(TAG_NAMES)), np.float32)
    index = {t: i for i, t in enumerate(TAG_NAMES)}
    i = 0
    for c, cat in enumerate(CATEGORY_NAMES):
        for j in range(n_per_class):
            rng = np.random.default_rng([seed, c, offset + j])
            w = int(rng.integers(140, 300))
            h = int(w / rng.uniform(0.7, 1.6))
            elements = sample_elements(cat, rng)
            img, _, _ = degrade(render_scene(cat, rng, w, h, elements), rng, 0.35)
            dec = decode_rgb(encode_jpeg(img, int(rng.integers(70, 94))), max_pixels=1 << 30, draft_size=size)
            xs[i] = to_model_input(dec.image, size).astype(np.uint8)
            ys[i, [index[cat]] + [index[e] for e in elements]] = 1.0
            i += 1
    return xs, ys


def tag_metrics(probs: np.ndarray, ys: np.ndarray) -> dict:
    """Held-out figures of a multi-label scene model: ``top1``/``top5`` of the scene (its
    category among the category tags), ``tags_recall_at_5`` (share of an image's true tags
    among its 5 most probable), ``element_ap`` (mean average precision over element tags
    with a positive), and how spread the labels are (mean top-1 probability share)."""
    from sklearn.metrics import average_precision_score

    n_cat = len(CATEGORY_NAMES)
    cats = np.argmax(ys[:, :n_cat], axis=1)
    top5 = np.argsort(-probs[:, :n_cat], axis=1)[:, :5]
    best5 = np.argsort(-probs, axis=1)[:, :5]
    hits = np.take_along_axis(ys, best5, axis=1).sum(axis=1)
    aps = [average_precision_score(ys[:, j], probs[:, j]) for j in range(n_cat, ys.shape[1]) if ys[:, j].any()]
    share = probs.max(axis=1) / np.maximum(probs.sum(axis=1), 1e-12)
    return {
        "top1": float(np.mean(top5[:, 0] == cats)),
        "top5": float(np.mean((top5 == cats[:, None]).any(axis=1))),
        "tags_recall_at_5": float(np.mean(hits / np.maximum(ys.sum(axis=1), 1))),
        "element_ap": float(np.mean(aps)) if aps else 0.0,
        "top1_share": float(np.mean(share)),
    }


def build_model(n_classes: int, size: int, width: int, seed: int):
    """MobileNet-style: a strided conv, depthwise-separable blocks, global pooling, a
    sigmoid per tag (multi-label).
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
    out = layers.Dense(n_classes, activation="sigmoid", name="scene")(x)
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
    log.info("rendered %d training and %d held-out scenes (%d categories, %d tags) in %.1fs", len(x), len(xh),
             len(CATEGORY_NAMES), len(TAG_NAMES), time.perf_counter() - t0)
    model = build_model(len(TAG_NAMES), size, sc.width, sc.seed)
    steps = sc.epochs * int(np.ceil(len(x) / sc.batch_size))
    lr = keras.optimizers.schedules.CosineDecay(sc.learning_rate, decay_steps=steps)
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="binary_crossentropy")
    rng = np.random.default_rng(sc.seed)
    for epoch in range(sc.epochs):
        order = rng.permutation(len(x))
        hist = model.fit(augment(x[order], rng).astype(np.float32), y[order], batch_size=sc.batch_size,
                         epochs=1, verbose=0, shuffle=False)
        log.info("epoch %d/%d: loss %.4f", epoch + 1, sc.epochs, hist.history["loss"][-1])
    probs = model.predict(xh.astype(np.float32), batch_size=256, verbose=0)
    metrics = {
        **tag_metrics(probs, yh),
        "n_tags": len(TAG_NAMES),
        "n_holdout": int(len(yh)),
        "n_train": int(len(y)),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    out = demo_model_dir(cfg)
    os.makedirs(out, exist_ok=True)
    model.save(os.path.join(out, "model.keras"))
    with open(os.path.join(out, "labels.txt"), "w") as fh:
        fh.write("\n".join(TAG_NAMES) + "\n")
    with open(os.path.join(out, "metrics.json"), "w") as fh:
        json.dump(metrics, fh, indent=2)
    log.info("scene model %s: held-out scene top-1 %.3f, top-5 %.3f, tags recall@5 %.3f, element mAP %.3f; "
             "saved to %s", spec.model_version, metrics["top1"], metrics["top5"], metrics["tags_recall_at_5"],
             metrics["element_ap"], out)
    return metrics
