"""What the aesthetics head needs beside its few labels: a self-supervised flaw detector,
and the level above which its scores stop ranking.

**The flaw detector.** A photo's aesthetic score falls with its flaws: blur, noise, bad
exposure, lost contrast, a tilted horizon. The quality statistics (``udfs/quality.py``)
see them, but a label budget of a few hundred photos holds a few dozen of each flaw, too
few to learn what, say, an over-exposed beach looks like against a bright one. The
catalogue's unlabelled photos hold as many examples as one wants: this module distorts
copies of them with the generic distortion families of no-reference quality research
(KADID-10k, RankIQA: :data:`vistarank.udfs.quality.DISTORTIONS`), and a small Keras
network learns from their statistics which family, if any, a photo shows (softmax over
"as taken" and the six families). The aesthetics head reads the detector's log
probabilities beside the embedding and the statistics, and the detector is saved inside
the head's model file, so ``label_images`` needs nothing new.

On the demo world the photos' real flaws are of the same families (``udfs/render.degrade``):
that is the best case. On real photographs the gain depends on how much real flaws look
like these distortions; the families are the standard ones because they do, on the IQA
benchmarks.

**The score cap.** Where the best photos differ by something neither the statistics nor
the embedding show (on real photos, taste), the head's mean over them is noise, and it
orders them at random. Spearman's correlation (and a gallery) counts that random
order against it. ``training.aesthetics_cap_folds`` out-of-fold heads choose, on the label
budget alone, the share of photos above which the head cannot order them (none, when it
can: on the demo world, whose clean photos show their score in their light); the score is
then capped at that quantile of the out-of-fold scores (out of sample, as the final head's
scores on new photos are), and those photos tie
(``image_aesthetics.score``; the distribution is kept whole).
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

log = logging.getLogger(__name__)

FLAW_SCHEMA = "cls int, q array<float>"
CAP_QUANTILES = np.linspace(0.2, 1.0, 33)  # the shares of photos below the cap that the folds try; 1 = no cap


def examples_fn(quality_size: int, copies: int, seed: int, max_pixels: int):
    """mapInPandas over (image_id, content): :func:`vistarank.udfs.quality.flaw_examples`
    of each photo, seeded by its id (a rerun draws the same distortions); a photo that
    does not decode (``ImageRejected``: ingest quarantines those) is skipped, and any other
    error fails the task."""
    def run(batches):
        import zlib

        from vistarank.udfs.images import ImageRejected
        from vistarank.udfs.quality import flaw_examples

        for pdf in batches:
            cls, q = [], []
            for image_id, content in zip(pdf["image_id"], pdf["content"]):
                rng = np.random.default_rng([seed, zlib.crc32(str(image_id).encode())])
                try:
                    rows = flaw_examples(content, quality_size, copies, rng, max_pixels)
                except ImageRejected:
                    continue
                for c, v in rows:
                    cls.append(c)
                    q.append(v.astype(np.float32))
            if cls:
                yield pd.DataFrame({"cls": np.asarray(cls, np.int32), "q": q})

    return run


def examples(images: DataFrame, cfg) -> tuple[np.ndarray, np.ndarray]:
    """(statistics, class) of ``training.flaws.images`` photos (a seeded sample of
    ``images``: image_id, content) and of their distorted copies. Collected to the
    driver: at most images x (1 + copies) rows of 45 numbers."""
    fc, tc = cfg.training.flaws, cfg.training
    sample = (images.select("image_id", "content")
              .orderBy(F.xxhash64("image_id", F.lit(tc.seed + 11))).limit(fc.images))
    pdf = (sample.repartition(max(2, cfg.spark.shuffle_partitions))
           .mapInPandas(examples_fn(cfg.label.quality_size, fc.copies, tc.seed, cfg.ingest.max_pixels), FLAW_SCHEMA)
           .toPandas())  # bounded by training.flaws.images x (1 + copies)
    if pdf.empty:
        return np.zeros((0, 0), np.float32), np.zeros(0, np.int64)
    return np.stack(pdf["q"].to_numpy()).astype(np.float32), pdf["cls"].to_numpy().astype(np.int64)


def train_detector(x: np.ndarray, y: np.ndarray, epochs: int, seed: int):
    """A Keras network from raw statistics (standardised inside) to the log probability of
    "as taken" and of each distortion family; trained on the driver (small data, seeded)."""
    import keras

    from vistarank.udfs.quality import DISTORTIONS

    keras.utils.set_random_seed(seed)
    norm = keras.layers.Normalization(name="flaw_scaling")
    norm.adapt(x)
    inp = keras.Input((x.shape[1],), name="quality")
    h = keras.layers.Dense(64, activation="relu", name="flaw_hidden")(norm(inp))
    logits = keras.layers.Dense(len(DISTORTIONS) + 1, name="flaw_logits")(h)
    model = keras.Model(inp, keras.layers.Activation("log_softmax", name="flaw_log_probability")(logits),
                        name="flaw_detector")
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    hist = model.fit(x, y, batch_size=128, epochs=epochs, verbose=0, shuffle=True)
    acc = float((model.predict(x, batch_size=4096, verbose=0).argmax(axis=1) == y).mean())
    log.info("flaw detector: %d examples, loss %.3f -> %.3f, training accuracy %.3f", len(y),
             hist.history["loss"][0], hist.history["loss"][-1], acc)
    return model, {"examples": int(len(y)), "loss_first": float(hist.history["loss"][0]),
                   "loss_last": float(hist.history["loss"][-1]), "train_accuracy": acc}


def detector_features(detector, q: np.ndarray) -> np.ndarray:
    return detector.predict(q.astype(np.float32), batch_size=4096, verbose=0).astype(np.float32)


def with_inputs(path: str, emb_dim: int, mean: np.ndarray, scale: np.ndarray, detector=None) -> str:
    """The head at ``path``, trained on [embedding, standardised statistics(, the
    detector's log probabilities)], re-saved in place as one model that reads [embedding,
    raw statistics]: a fixed Normalization layer, and the detector behind a fixed layer
    that selects the statistics."""
    import keras

    head = keras.models.load_model(path, compile=False)
    nq = len(mean)
    mu = np.concatenate([np.zeros(emb_dim, np.float32), mean])
    var = np.concatenate([np.ones(emb_dim, np.float32), scale ** 2])
    inp = keras.Input((emb_dim + nq,), name="embedding_quality")
    z = keras.layers.Normalization(mean=mu, variance=var, name="quality_scaling")(inp)
    if detector is not None:
        select = keras.layers.Dense(nq, use_bias=False, trainable=False, name="quality_columns")
        select.build((None, emb_dim + nq))
        select.set_weights([np.concatenate([np.zeros((emb_dim, nq), np.float32), np.eye(nq, dtype=np.float32)])])
        z = keras.layers.Concatenate(name="with_flaws")([z, detector(select(inp))])
    keras.Model(inp, head(z), name="aesthetics_with_quality").save(path)
    return path


def choose_cap(oof_score: np.ndarray, true_score: np.ndarray, min_gain: float = 0.005) -> float:
    """The share of photos (one of :data:`CAP_QUANTILES`) below the cap that maximises
    Spearman's correlation of the capped out-of-fold scores with the labels' scores; 1.0
    (no cap) unless the best cap gains at least ``min_gain`` over none (a few hundred
    labels: a smaller gain is noise)."""
    from scipy.stats import spearmanr

    base = spearmanr(oof_score, true_score).statistic
    best_q, best = 1.0, base
    for q in CAP_QUANTILES[:-1]:
        r = spearmanr(np.minimum(oof_score, np.quantile(oof_score, q)), true_score).statistic
        if np.isfinite(r) and r > best:
            best_q, best = float(q), float(r)
    return best_q if best >= base + min_gain else 1.0

