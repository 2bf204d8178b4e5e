"""Aesthetics from earlier layers (issue #15 item 3): can the hidden aesthetic score be
ranked from the scene model's early layers, where blur, noise, exposure and contrast are
still visible, better than from the pooled embedding the aesthetics head reads today? At
three label budgets, on a finished demo lakehouse:

    .venv/bin/python benchmarks/aesthetics_features.py --lakehouse ./lakehouse

- A seeded sample of the lakehouse's images (``images``: the stored bytes), each with its
  hidden score (``truth_images`` through ``image_sources``).
- Decoded and resized as label_images does (``udfs.images.decode_rgb`` with the draft size,
  ``to_model_input``), then one forward pass of the demo scene model (``model.path``: the
  configured model) that returns, per image, its embedding (the ``pool`` layer, what
  ``image_labels.embedding`` holds) and the per-channel mean and standard deviation of the
  stem's and of each stride-2 block's output (the "early" statistics).
- A ridge regression (scikit-learn ``RidgeCV`` on standardised features; a probe of what
  each feature set carries, not the pipeline's EMD head) predicts the hidden score from the
  embedding, from the early statistics, and from both; trained on the first 100, 400 and
  1,600 images of the sample, scored by Spearman on the last ``--holdout``.
- The degradations are drawn on the full-size photos (160 to 360 pixels a side) and the
  model sees them shrunk to its input (96 on the demo), which averages noise and blur away:
  the same weights built for a larger input (``--larger``, default 192) give the early
  statistics at that size too.

- ``--fine-tune SIZE``: idealo's two phases on the images themselves, at SIZE pixels (the
  same weights rebuilt for it): the pipeline's aesthetics head (``training.heads``: two
  dense layers, 10 bins, EMD loss) on the frozen backbone's pooled features for
  ``--phase1-epochs`` (Adam 1e-3), then every layer for ``--phase2-epochs`` (Adam 3e-4),
  batch 32, on each budget's images; Spearman of the predicted mean score on the same
  held-out images. Slow on a CPU (about 15 minutes at 192 pixels on 2 cores).

- ``--pixel-stats``: also classic no-reference quality statistics of each full-size photo,
  no network (:func:`pixel_stats`: exposure, sharpness, noise, BRISQUE's natural-scene
  statistics, colourfulness, gradient orientations; 45 numbers), alone and with the
  network's features. About 1 minute for 3,600 photos on 2 cores. With it,
  ``pixel_diagnostics`` in the JSON: a random forest in place of the ridge, each
  degradation's detection AUC, and the forest with its top 60% of predictions tied.

Writes benchmarks/results/aesthetics_features.json (``goal_spearman_0_8``: some feature
set reaches 0.8 at the 400-label budget, the pipeline's default ``training.aesthetic_labels``).
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

import _results  # benchmarks/_results.py (scripts run from this folder's path)

HERE = os.path.dirname(os.path.abspath(__file__))
BUDGETS = (100, 400, 1600)


def sample(spark, cfg, n: int, seed: int):
    """``n`` images (bytes and hidden score), in a seeded order: a pandas frame."""
    from pyspark.sql import functions as F

    from vistarank import io
    from vistarank import tables as T

    truth = io.read(spark, cfg, T.TRUTH_IMAGES, allow_truth=True).select("uri", "aesthetic", "degradation")
    hidden = (io.read(spark, cfg, T.IMAGE_SOURCES).select("image_id", "uri").join(truth, "uri")
              .groupBy("image_id").agg(F.max("aesthetic").alias("aesthetic"),
                                       F.first("degradation").alias("degradation")))
    return (io.read(spark, cfg, T.IMAGES).where(F.col("near_duplicate_of").isNull()).select("image_id", "content")
            .join(hidden, "image_id").orderBy(F.xxhash64("image_id", F.lit(seed))).limit(n).toPandas())


def scene_net(cfg, size: int):
    """The configured scene model, or the same weights in the same network built for
    ``size`` x ``size`` inputs (the demo scene model is fully convolutional up to its pooling)."""
    import keras

    from vistarank.vision import models, scene_model

    model = keras.models.load_model(models.resolve(cfg).path, compile=False, safe_mode=True)
    if size != cfg.model.input_size:
        resized = scene_model.build_model(model.output_shape[-1], size, cfg.scene_model.width, 0)
        resized.set_weights(model.get_weights())
        model = resized
    return model


def features(cfg, contents, size: int, batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(embedding, early statistics) per image, from one forward pass of the scene model at
    ``size`` x ``size`` pixels (:func:`scene_net`)."""
    import keras

    model = scene_net(cfg, size)
    relus = [layer for layer in model.layers if isinstance(layer, keras.layers.ReLU)]
    early = [relus[0]] + [layer for layer in relus if layer.name.startswith("block_")]
    probe = keras.Model(model.inputs, [model.get_layer("pool").output] + [layer.output for layer in early])
    emb, stats = [], []
    for i in range(0, len(contents), batch):
        x = model_inputs(cfg, contents[i:i + batch], size)
        out = probe.predict(x, verbose=0)
        emb.append(out[0])
        stats.append(np.concatenate([np.concatenate([a.mean(axis=(1, 2)), a.std(axis=(1, 2))], axis=1)
                                     for a in out[1:]], axis=1))
    print(f"early layers: {[layer.name for layer in early]}")
    return np.concatenate(emb), np.concatenate(stats)


def model_inputs(cfg, contents, size: int) -> np.ndarray:
    from vistarank.udfs.images import decode_rgb, to_model_input

    return np.stack([to_model_input(decode_rgb(c, max_pixels=cfg.ingest.max_pixels, draft_size=size).image, size)
                     for c in contents])


def pixel_stats(contents, max_pixels: int) -> np.ndarray:
    """:func:`vistarank.udfs.quality.pixel_stats` of each photo at its full size (the
    pipeline's labelling computes the same at ``label.quality_size``)."""
    from vistarank.udfs.images import decode_rgb
    from vistarank.udfs.quality import pixel_stats as stats

    rows = [stats(np.asarray(decode_rgb(c, max_pixels=max_pixels).image)) for c in contents]
    return np.stack(rows).astype(np.float64)


def pixel_diagnostics(px: np.ndarray, y: np.ndarray, degradation, holdout: int) -> dict:
    """What limits the pixel statistics: a random forest in place of the ridge at each budget;
    how well each degradation is detected from them (AUC on the held-out images of a forest
    classifier trained on the largest budget, with the degradation names the pipeline does
    not have); and the forest's Spearman when its top 60% of predictions are tied (the clean
    photos' score was invisible before render version 3, and the ceiling then tied them)."""
    from scipy.stats import spearmanr
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
    from sklearn.metrics import roc_auc_score

    names = [str(d or "") for d in degradation]
    n, test = max(BUDGETS), slice(-holdout, None)
    out: dict = {"forest_spearman": {}}
    for b in BUDGETS:
        forest = RandomForestRegressor(500, min_samples_leaf=5, random_state=0, n_jobs=-1).fit(px[:b], y[:b])
        pred = forest.predict(px[test])
        out["forest_spearman"][str(b)] = round(float(spearmanr(pred, y[test]).correlation), 4)
    cut = np.quantile(pred, 0.4)  # the largest budget's forest
    out["forest_top60_tied_spearman"] = round(float(spearmanr(np.minimum(pred, cut), y[test]).correlation), 4)
    out["degradation_auc"] = {}
    for d in sorted({t for s in names for t in s.split("+") if t}):
        lab = np.array([d in s.split("+") for s in names])
        clf = RandomForestClassifier(300, random_state=0, n_jobs=-1).fit(px[:n], lab[:n])
        out["degradation_auc"][d] = round(float(roc_auc_score(lab[test], clf.predict_proba(px[test])[:, 1])), 3)
    print(f"pixel statistics: {out}", flush=True)
    return out


def fine_tune(cfg, x: np.ndarray, y: np.ndarray, n_train: int, holdout: int, phase1: int, phase2: int,
              seed: int = 0) -> dict:
    """idealo's two phases on the first ``n_train`` images: the EMD head on the frozen
    backbone, then every layer at a low learning rate; Spearman on the last ``holdout``."""
    import keras
    from scipy.stats import spearmanr

    from vistarank.training import head_task as H
    from vistarank.training import heads

    keras.utils.set_random_seed(seed)
    size = x.shape[1]
    net = scene_net(cfg, size)
    backbone = keras.Model(net.inputs, net.get_layer("pool").output)
    inp = keras.Input((size, size, 3))
    feats = backbone(inp)
    model = keras.Model(inp, heads.build_head(feats.shape[-1], H.BINS, "distribution", seed=seed)(feats))
    dist = np.stack([H.score_distribution_np(s) for s in y[:n_train]])

    def spearman() -> float:
        pred = heads.mean_score(model.predict(x[-holdout:], batch_size=128, verbose=0))
        return float(spearmanr(pred, y[-holdout:]).correlation)

    t0 = time.perf_counter()
    out = {}
    for phase, epochs, lr, trainable in (("head", phase1, 1e-3, False), ("all", phase2, 3e-4, True)):
        backbone.trainable = trainable
        model.compile(keras.optimizers.Adam(lr), heads.emd_loss)
        model.fit(x[:n_train], dist, batch_size=32, epochs=epochs, verbose=0)
        out[f"spearman_after_{phase}"] = round(spearman(), 4)
    print(f"fine-tuned at {size}px on {n_train} labels: {out} ({time.perf_counter() - t0:.0f}s)", flush=True)
    return {**out, "seconds": round(time.perf_counter() - t0, 1)}


def probe(x: np.ndarray, y: np.ndarray, n_train: int, holdout: int) -> float:
    from scipy.stats import spearmanr
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    fit = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 4, 13))).fit(x[:n_train], y[:n_train])
    return float(spearmanr(fit.predict(x[-holdout:]), y[-holdout:]).correlation)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lakehouse", default="./lakehouse")
    p.add_argument("--holdout", type=int, default=2000)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--larger", type=int, nargs="*", default=[192],
                   help="also the early statistics of the same weights at these input sizes (demo scene model)")
    p.add_argument("--fine-tune", type=int, nargs="*", default=[], metavar="SIZE",
                   help="also fine-tune the backbone for aesthetics at these input sizes (idealo's two phases; slow)")
    p.add_argument("--pixel-stats", action="store_true",
                   help="also classic no-reference quality statistics of the full-size photos (no network)")
    p.add_argument("--phase1-epochs", type=int, default=20)
    p.add_argument("--phase2-epochs", type=int, default=40)
    p.add_argument("--out", default=os.path.join(HERE, "results", "aesthetics_features.json"))
    args = p.parse_args()
    from vistarank.config import load_config
    from vistarank.session import get_spark

    cfg = load_config("local", [f"lakehouse.root={os.path.abspath(args.lakehouse)}", "spark.show_progress=false"])
    spark = get_spark(cfg)
    pdf = sample(spark, cfg, max(BUDGETS) + args.holdout, args.seed)  # a few thousand rows of bytes
    spark.stop()
    if len(pdf) < max(BUDGETS) + args.holdout:
        raise SystemExit(f"error: {len(pdf)} images with a hidden score; {max(BUDGETS) + args.holdout} needed "
                         "(a demo lakehouse, or a smaller --holdout)")
    t0 = time.perf_counter()
    emb, early = features(cfg, list(pdf["content"]), cfg.model.input_size)
    sets = {"embedding": emb, "early": early, "early+embedding": np.concatenate([early, emb], axis=1)}
    for size in args.larger:  # blur and noise are applied at full size; the model sees them shrunk
        _, early_big = features(cfg, list(pdf["content"]), size)
        sets[f"early@{size}px"] = early_big
        sets[f"early@{size}px+embedding"] = np.concatenate([early_big, emb], axis=1)
    if args.pixel_stats:
        px = pixel_stats(list(pdf["content"]), cfg.ingest.max_pixels)
        sets["pixel statistics"] = px
        sets["pixel statistics+embedding"] = np.concatenate([px, emb], axis=1)
        for size in args.larger:
            sets[f"pixel statistics+early@{size}px"] = np.concatenate([px, sets[f"early@{size}px"]], axis=1)
    seconds = time.perf_counter() - t0
    y = pdf["aesthetic"].to_numpy()
    rows = [{"features": name, "dims": int(x.shape[1]), "labels": n, "holdout": args.holdout,
             "spearman": round(probe(x, y, n, args.holdout), 4)} for name, x in sets.items() for n in BUDGETS]
    diagnostics = (pixel_diagnostics(sets["pixel statistics"], y, pdf["degradation"], args.holdout)
                   if args.pixel_stats else None)
    for size in args.fine_tune:
        x = model_inputs(cfg, list(pdf["content"]), size)
        for n in BUDGETS:
            ft = fine_tune(cfg, x, y, n, args.holdout, args.phase1_epochs, args.phase2_epochs)
            rows.append({"features": f"fine-tuned@{size}px", "dims": None, "labels": n, "holdout": args.holdout,
                         "spearman": ft["spearman_after_all"], **ft})
    for r in rows:
        print(r)
    best_400 = max(r["spearman"] for r in rows if r["labels"] == 400)
    _results.write("aesthetics_features", rows, args.out, lakehouse=os.path.abspath(args.lakehouse),
                   model_version=cfg.model.model_version, input_size=cfg.model.input_size, larger=args.larger,
                   fine_tune=args.fine_tune, pixel_stats=args.pixel_stats,
                   pixel_diagnostics=diagnostics,
                   phase_epochs=[args.phase1_epochs, args.phase2_epochs], feature_seconds=round(seconds, 1),
                   images=int(len(pdf)), goal_spearman_0_8=bool(best_400 >= 0.8))


if __name__ == "__main__":
    main()
