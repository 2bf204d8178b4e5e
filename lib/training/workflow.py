"""The head-training workflow of ``train_head``: the label budget, label noise and its
cleaning by out-of-fold predictions, the property-area and aesthetics heads (trained
data-parallel through :mod:`vistarank.training.launcher`), fine-tuning against the same
network from scratch, their held-out evaluation, and each sale's gallery order. The job
only orchestrates these (jobs/train_head.py).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import Window
from pyspark.sql import functions as F

from vistarank import io
from vistarank import tables as T
from vistarank.config import Config, join
from vistarank.training import head_task as H
from vistarank.training.launcher import launch, write_snapshot
from vistarank.udfs.heads import GALLERY_SCHEMA, PREDICT_SCHEMA, gallery_order, predict_images_fn, quality_matrix
from vistarank.vision import models
from vistarank.world.catalog import AREAS

log = logging.getLogger(__name__)

CLASSES = AREAS + ["other"]  # "other": an image that shows no property area (a beach, a skyline)
OTHER = CLASSES.index("other")


def head_spec(cfg: Config, data: str, kind: str, n_out: int, artifact: str) -> dict:
    tc = cfg.training
    spec = {"backend": tc.backend, "data": data, "kind": kind, "n_out": n_out, "hidden": list(tc.hidden),
            "dropout": tc.dropout, "seed": tc.seed, "learning_rate": tc.learning_rate, "lr_schedule": tc.lr_schedule,
            "batch_size": tc.batch_size,
            "epochs": tc.epochs, "timeout_s": tc.timeout_s, "artifact": artifact}
    if tc.backend == "horovod":
        spec["python"] = tc.horovod_python
    return spec


def fine_tune_spec(cfg: Config, data: str, artifact: str, from_scratch: bool) -> dict:
    """Backbone + area head on the images (tf backend): idealo's two phases, or the same
    network from scratch for as many epochs with every layer training."""
    ft = cfg.training.fine_tune
    if from_scratch:
        phases = [{"train": "all", "epochs": ft.head_epochs + ft.top_epochs, "learning_rate": ft.scratch_learning_rate}]
    else:
        phases = [{"train": "head", "epochs": ft.head_epochs, "learning_rate": ft.head_learning_rate}]
        if ft.top_epochs:
            phases.append({"train": "top", "epochs": ft.top_epochs, "learning_rate": ft.top_learning_rate})
    spec = head_spec(cfg, data, "softmax", len(CLASSES), artifact)
    spec.pop("python", None)  # the tf backend's workers run in this environment
    return {**spec, "backend": "tf", "input": "images", "lr_schedule": ft.lr_schedule,
            "backbone": models.resolve(cfg).to_json(), "from_scratch": from_scratch, "phases": phases,
            "unfreeze_from": ft.unfreeze_from, "batch_size": ft.batch_size,
            "augment": {"crop": ft.crop, "rotation": ft.rotation}}


def fine_tune(spark: SparkSession, cfg: Config, labels: pd.DataFrame, held: pd.DataFrame, p_head: np.ndarray,
              folder: str) -> dict:
    """Fine-tune (and train from scratch) on the images of ``labels`` (image_id, y, weight);
    evaluate both, and the frozen-feature head (``p_head``, on ``held``'s order), on the same
    held-out images (the first ``fine_tune.eval_max_rows`` of ``held``)."""
    ft = cfg.training.fine_tune
    rm = models.resolve(cfg)
    images = io.read(spark, cfg, T.IMAGES).select("image_id", "content")
    lab = spark.createDataFrame(labels[["image_id", "y", "weight"]].astype({"y": "int64", "weight": "float32"}),
                                "image_id string, y long, weight float")  # the label budget: small
    data = write_snapshot(images.join(lab, "image_id"), join(folder, "data", "areas_images"),
                          max(2, cfg.training.workers * 2), ("content", "y", "weight"))
    sub = held.head(ft.eval_max_rows)
    sub_ids = spark.createDataFrame(sub[["image_id"]], "image_id string")
    held_images = images.join(sub_ids, "image_id")
    y_of = dict(zip(sub["image_id"], sub["y"]))
    out = {"eval_images": int(len(sub)),
           "transfer_head": H.classification_report(sub["y"].to_numpy(), p_head[:len(sub)], CLASSES)}
    arms = [("fine_tuned", False)] + ([("from_scratch", True)] if ft.scratch else [])
    for arm, scratch in arms:
        res = launch(spark, fine_tune_spec(cfg, data, join(folder, f"areas_{arm}.keras"), scratch),
                     cfg.training.workers)
        if len({round(r["digest"], 6) for r in res}) != 1:
            raise RuntimeError(f"areas_{arm}: workers ended with different weights")
        pred = (held_images.mapInPandas(predict_images_fn(res[0]["artifact"], rm.input_size, rm.preprocessing),
                                        PREDICT_SCHEMA).toPandas())  # fine_tune.eval_max_rows rows
        p = np.stack([np.asarray(v, np.float32) for v in pred["probabilities"]])
        out[arm] = {**H.classification_report(pred["image_id"].map(y_of).to_numpy(), p, CLASSES),
                    "phases": [{k: ph[k] for k in ("train", "epochs", "learning_rate", "trainable_weights")}
                               for ph in res[0]["phases"]],
                    "loss_first": res[0]["losses"][0], "loss_last": res[0]["losses"][-1]}
        log.info("areas %s: held-out top-1 %.3f (frozen-feature head %.3f)", arm, out[arm]["top1"],
                 out["transfer_head"]["top1"])
    return out


def train(spark: SparkSession, cfg: Config, rows: pd.DataFrame, kind: str, n_out: int, folder: str, tag: str,
           workers: int) -> str:
    """Train one head on ``rows`` (x, y, weight) through the barrier launcher; returns its path."""
    schema = "x array<float>, y long, weight float" if kind == "softmax" else "x array<float>, y array<float>, weight float"
    def plain(v):
        return [float(a) for a in v] if isinstance(v, (list, np.ndarray)) else int(v)

    records = [(plain(x), plain(y), float(w)) for x, y, w in zip(rows["x"], rows["y"], rows["weight"])]
    df = spark.createDataFrame(records, schema)  # the label budget: small
    data = write_snapshot(df, join(folder, "data", tag), max(2, workers * 2))
    res = launch(spark, head_spec(cfg, data, kind, n_out, join(folder, f"{tag}.keras")), workers)
    if len({round(r["digest"], 6) for r in res}) != 1:
        raise RuntimeError(f"{tag}: workers ended with different weights: {[r['digest'] for r in res]}")
    log.info("%s: %d worker(s), loss %.4f -> %.4f", tag, len(res), res[0]["losses"][0], res[0]["losses"][-1])
    return res[0]["artifact"]


def predict(path: str, x: np.ndarray) -> np.ndarray:
    import keras

    return keras.models.load_model(path, compile=False).predict(x.astype(np.float32), batch_size=1024, verbose=0)


def features(pdf: pd.DataFrame) -> np.ndarray:
    return np.stack([np.asarray(v, np.float32) for v in pdf["x"]])


@dataclass
class Labels:
    """The property-area label budget (``lab``: image_id, x, y, true_y, noisy, weight) and
    the held-out images (``held``: image_id, x, q, y, aesthetic; at most ``training.eval_max_rows``)."""
    lab: pd.DataFrame
    held: pd.DataFrame


def embeddings(spark: SparkSession, cfg: Config, features: str) -> DataFrame:
    """(image_id, x, q): model version ``features``' embeddings and quality statistics
    (null where an image has none) from image_labels."""
    from vistarank.vision.label import quality_column

    labels = io.read(spark, cfg, T.IMAGE_LABELS).where(F.col("model_version") == features)
    return labels.select("image_id", F.col("embedding").alias("x"), quality_column(labels).alias("q"))


def area_data(emb: DataFrame, truth: DataFrame) -> DataFrame:
    """(image_id, x, q, area, aesthetic, y): the embeddings and quality statistics with their
    hidden area (``other`` when none) as a class index of :data:`CLASSES`."""
    data = truth.join(emb, "image_id").withColumn("area", F.coalesce("area", F.lit("other")))
    classes = F.array(*[F.lit(c) for c in CLASSES])
    return data.withColumn("y", (F.array_position(classes, F.col("area")) - 1).cast("long"))


def balanced_weights(y: np.ndarray) -> np.ndarray:
    """Each label's balanced class weight over :data:`CLASSES` (:func:`head_task.class_weights`)."""
    return H.class_weights(y, len(CLASSES))[y].astype(np.float32)


def area_labels(data: DataFrame, tc) -> Labels:
    """``training.labels_per_class`` labels per class, ``training.label_noise`` of them
    flipped (seeded), class-weighted; and the held-out images (the others)."""
    lab = H.add_noise(H.budget(data, "area", tc.labels_per_class, tc.seed), CLASSES, tc.label_noise, tc.seed)
    lab_pdf = lab.select("image_id", "x", "y", "true_y", "noisy").toPandas()  # the label budget
    held = (data.join(lab.select("image_id"), "image_id", "left_anti")
            .orderBy(F.xxhash64("image_id", F.lit(tc.seed + 7))).limit(tc.eval_max_rows)
            .select("image_id", "x", "q", "y", "aesthetic").toPandas())  # bounded by training.eval_max_rows
    lab_pdf["weight"] = balanced_weights(lab_pdf["y"].to_numpy())
    return Labels(lab_pdf, held)


def true_labels(lab_pdf: pd.DataFrame) -> pd.DataFrame:
    """The label budget with every label right (``true_y``), re-weighted: the arm that
    shows what ``training.label_noise`` costs, against which cleaning is judged."""
    out = lab_pdf.copy()
    out["y"] = out["true_y"].to_numpy()
    out["noisy"] = False
    out["weight"] = balanced_weights(out["y"].to_numpy())
    return out


def fold_of(image_ids: pd.Series, folds: int) -> np.ndarray:
    """Each label's cleaning fold (0..folds-1), by a hash of its image id: stable across runs."""
    return (pd.util.hash_pandas_object(image_ids, index=False).to_numpy() % folds).astype(int)


def kept(lab_pdf: pd.DataFrame, keep: np.ndarray) -> pd.DataFrame:
    """The labels where ``keep`` is true, class-weighted again on what is left."""
    out = lab_pdf[keep].copy()
    out["weight"] = balanced_weights(out["y"].to_numpy())
    return out


def cleaning_flags(y: np.ndarray, oof: np.ndarray, confidence: float, class_cap: float = 0.0,
                   votes: np.ndarray | None = None, near: np.ndarray | None = None,
                   outlier: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(contradicted, backed, flagged) per label of class ``y``: the out-of-fold predictions
    contradict it, the neighbours back that (all contradicted ones without ``votes``), and
    it is acted on (backed and within the predicted class's spread given ``near``, or, given
    ``outlier``, an outlier of its own class, then capped per class at ``class_cap``).
    :func:`clean_labels` documents each step."""
    contradicted = H.suspicious(oof, y, confidence)
    backed = contradicted & H.backed(oof, votes) if votes is not None else contradicted
    flag = backed & near if near is not None else backed
    if outlier is not None:
        flag = flag | (contradicted & outlier)
    return contradicted, backed, H.cap_per_class(oof, y, flag, class_cap)


def outliers(y: np.ndarray, dist: np.ndarray, quantile: float) -> np.ndarray:
    """The labels outside their own class's spread (:func:`head_task.within_own_spread` at
    ``quantile``), for every class but ``other``: a property area is one kind of scene, so
    a label unlike every label of its area is suspect; ``other`` is many scenes under one
    label, where a scene labelled once is unlike the rest and right."""
    return ~H.within_own_spread(y, dist, quantile) & (np.asarray(y) != OTHER)


def clean_labels(lab_pdf: pd.DataFrame, oof: np.ndarray, confidence: float, class_cap: float = 0.0,
                 votes: np.ndarray | None = None, action: str = "drop",
                 near: np.ndarray | None = None, outlier: np.ndarray | None = None) -> tuple[pd.DataFrame, dict]:
    """The label budget after cleaning, re-weighted, and the cleaning's report.

    A label is flagged when the out-of-fold predictions ``oof`` contradict it
    (:func:`head_task.suspicious` at ``confidence``), and, given the neighbours' ``votes``
    (:func:`head_task.neighbour_votes`), only when they back the contradiction
    (:func:`head_task.backed`), and, given ``near`` (:func:`head_task.near_predicted`), only
    when the label lies within the predicted class's spread. Given ``outlier``
    (:func:`outliers`), a contradicted label that is an outlier of its own class is flagged
    too, without the neighbours or the predicted class's spread: a flip of an outdoor scene
    into a property area sits among no label of either. With ``class_cap``, at most that
    many times the flagged share of each class is acted on (:func:`head_task.cap_per_class`).
    ``action`` "relabel" gives each flagged label the predicted class; "drop" removes it;
    "other_or_drop" gives ``other`` to each flagged label the heads call ``other`` (a
    flipped outdoor scene may be the budget's only example of it: dropping it drops the
    scene) and removes the rest.
    The report: the labels, the injected noise, the flagged ones and how many of them were
    noise (precision, recall), the contradictions the neighbours did not back (kept unless
    outliers), the backed ones outside the predicted class's spread (``not_near``), the
    flags only the outlier rule gave (``outliers``), the flagged labels now right
    (relabelled to their true class) and the flagged clean labels per class."""
    if action not in ("drop", "relabel", "other_or_drop"):
        raise ValueError(f"cleaning action {action!r}: expected 'drop', 'relabel' or 'other_or_drop'")
    y = lab_pdf["y"].to_numpy()
    contradicted, backed, flag = cleaning_flags(y, oof, confidence, class_cap, votes, near, outlier)
    noisy = lab_pdf["noisy"].to_numpy().astype(bool)
    pred = oof.argmax(axis=1)
    report = {"labels": int(len(y)), "noisy": int(noisy.sum()), "flagged": int(flag.sum()),
              "flagged_and_noisy": int((flag & noisy).sum()),
              "precision": float((flag & noisy).sum() / max(flag.sum(), 1)),
              "recall": float((flag & noisy).sum() / max(noisy.sum(), 1)),
              "not_backed": int((contradicted & ~backed).sum()), "action": action,
              "flagged_clean_by_class": {CLASSES[c]: int(n) for c, n in
                                         zip(*np.unique(y[flag & ~noisy], return_counts=True))}}
    if near is not None:
        report["not_near"] = int((backed & ~near).sum())
    if outlier is not None:
        gated = backed & near if near is not None else backed
        report["outliers"] = int((flag & ~gated).sum())
    if action == "drop":
        return kept(lab_pdf, ~flag), report
    relabel = flag if action == "relabel" else flag & (pred == OTHER)
    out = lab_pdf.copy()
    out["y"] = np.where(relabel, pred, y)
    report["relabelled"] = int(relabel.sum())
    if "true_y" in out.columns:
        report["relabelled_right"] = int((relabel & (pred == out["true_y"].to_numpy())).sum())
    return kept(out, ~(flag & ~relabel)), report


def clean(spark: SparkSession, cfg: Config, lab_pdf: pd.DataFrame, folder: str) -> tuple[pd.DataFrame, dict]:
    """Out-of-fold predictions (``training.folds`` heads, each trained on the other folds),
    the neighbours' votes (``training.clean_neighbours``; 0: none), the predicted classes'
    spread (``training.clean_spread``; 0: no gate), the outliers of their own class
    (``training.clean_outliers``; 0: none), then :func:`clean_labels` at
    ``training.clean_confidence``, ``training.clean_class_cap`` and ``training.clean_action``."""
    tc = cfg.training
    fold = fold_of(lab_pdf["image_id"], tc.folds)
    oof = np.zeros((len(lab_pdf), len(CLASSES)), np.float32)
    for f in range(tc.folds):
        path = train(spark, cfg, lab_pdf[fold != f], "softmax", len(CLASSES), folder, f"areas_fold{f}", 1)
        oof[fold == f] = predict(path, features(lab_pdf[fold == f]))
    votes, near, outlier = cleaning_evidence(tc, features(lab_pdf), lab_pdf["y"].to_numpy(), oof)
    return clean_labels(lab_pdf, oof, tc.clean_confidence, tc.clean_class_cap, votes, tc.clean_action, near, outlier)


def cleaning_evidence(tc, x: np.ndarray, y: np.ndarray,
                      oof: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """(votes, near, outlier) for :func:`clean_labels` at the config's settings
    (``training.clean_neighbours``, ``clean_spread``, ``clean_outliers``; None where 0)."""
    votes = H.neighbour_votes(x, y, tc.clean_neighbours, len(CLASSES)) if tc.clean_neighbours > 0 else None
    dist = H.class_distances(x, y, len(CLASSES)) if tc.clean_spread > 0 or tc.clean_outliers > 0 else None
    near = H.near_predicted(oof, y, dist, tc.clean_spread) if tc.clean_spread > 0 else None
    outlier = outliers(y, dist, tc.clean_outliers) if tc.clean_outliers > 0 else None
    return votes, near, outlier


def quality_scaler(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mean and the scale (standard deviation; 1 for a constant statistic) of the label
    budget's quality statistics."""
    mean, std = q.mean(axis=0), q.std(axis=0)
    return mean.astype(np.float32), np.where(std > 1e-6, std, 1.0).astype(np.float32)


@dataclass
class Aesthetics:
    """The trained aesthetics head: its path, its report on held-out images, the quality
    statistics' mean when it reads them (else None) and its score cap (None: no cap)."""
    path: str
    report: dict
    quality_mean: list | None
    score_cap: float | None


def _oof_scores(spark: SparkSession, cfg: Config, rows: pd.DataFrame, folder: str) -> np.ndarray:
    """Each label's mean score from a head trained without its fold (``training.aesthetics_cap_folds``)."""
    from vistarank.training.heads import mean_score

    folds = cfg.training.aesthetics_cap_folds
    fold = fold_of(rows["image_id"], folds)
    out = np.zeros(len(rows), np.float32)
    for f in range(folds):
        path = train(spark, cfg, rows[fold != f], "distribution", H.BINS, folder, f"aesthetics_fold{f}", 1)
        out[fold == f] = mean_score(predict(path, features(rows[fold == f])))
    return out


def aesthetics(spark: SparkSession, cfg: Config, data: DataFrame, held: pd.DataFrame, folder: str) -> Aesthetics:
    """The aesthetics head (EMD over 10 score bins) on ``training.aesthetic_labels`` images
    and its report on the held-out images it was not trained on. It reads the quality
    statistics too when ``training.aesthetics_quality`` and every image of the budget has
    ``image_labels.quality`` (else the embedding alone), and then, with
    ``training.flaws.images``, the log probabilities of a self-supervised flaw detector;
    with ``training.aesthetics_cap_folds``, its score is capped where out-of-fold heads show it
    stops ranking (:mod:`vistarank.training.flaws`)."""
    from vistarank.training import flaws as FL
    from vistarank.training.heads import mean_score

    tc = cfg.training
    aes = (data.orderBy(F.xxhash64("image_id", F.lit(tc.seed + 3))).limit(tc.aesthetic_labels)
           .select("image_id", "x", "q", H.score_distribution(F.col("aesthetic")).alias("y")))
    aes_pdf = aes.toPandas()  # training.aesthetic_labels rows
    aes_pdf["weight"] = np.float32(1.0)
    use_q = tc.aesthetics_quality and len(aes_pdf) > 0 and aes_pdf["q"].notna().all()
    if tc.aesthetics_quality and not use_q:
        log.warning("aesthetics: some of the label budget's images have no quality statistics (labelled with "
                    "label.quality_size 0, or before image_labels had them): the head reads the embedding alone")
    quality_mean, detector, report_extra = None, None, {}
    x_held = features(held)
    if use_q:
        q = np.stack([np.asarray(v, np.float32) for v in aes_pdf["q"]])
        mean, scale = quality_scaler(q)
        emb_dim = len(aes_pdf["x"].iloc[0])
        parts = [features(aes_pdf), (q - mean) / scale]
        q_held = quality_matrix(list(held["q"]), mean)
        if tc.flaws.images > 0:
            images = io.read(spark, cfg, T.IMAGES).where(F.col("near_duplicate_of").isNull())
            fx, fy = FL.examples(images, cfg)
            if len(fy):
                detector, report_extra["flaw_detector"] = FL.train_detector(fx, fy, tc.flaws.epochs, tc.seed)
                parts.append(FL.detector_features(detector, q))
            else:
                log.warning("aesthetics: no photo to teach the flaw detector; the head reads the statistics alone")
        aes_pdf["x"] = list(np.concatenate(parts, axis=1))
        quality_mean = [float(v) for v in mean]
    rows = aes_pdf.drop(columns="q")
    q_share, score_cap = 1.0, None
    if tc.aesthetics_cap_folds >= 2 and len(rows) >= 2 * tc.aesthetics_cap_folds:
        oof = _oof_scores(spark, cfg, rows, folder)
        q_share = FL.choose_cap(oof, mean_score(np.stack(rows["y"].to_numpy())))
        if q_share < 1.0:  # on the out-of-fold scale: the final head's scores on new photos are out of sample too
            score_cap = float(np.quantile(oof, q_share))
    path = train(spark, cfg, rows, "distribution", H.BINS, folder, "aesthetics", tc.workers)
    if use_q:
        path = FL.with_inputs(path, emb_dim, mean, scale, detector)
        x_held = np.concatenate([x_held, q_held], axis=1)
    held_aes = ~held["image_id"].isin(set(aes_pdf["image_id"])).to_numpy()
    dist_true = np.stack([H.score_distribution_np(s) for s in held["aesthetic"][held_aes]])
    report = H.aesthetics_report(dist_true, predict(path, x_held[held_aes]), held["aesthetic"][held_aes].to_numpy(),
                                 score_cap)
    report["inputs"] = ("embedding+quality" + ("+flaws" if detector is not None else "")) if use_q else "embedding"
    report["score_cap"], report["cap_share"] = score_cap, q_share
    return Aesthetics(path, report | report_extra, quality_mean, score_cap)


def metrics(report: dict) -> dict[str, float]:
    """The report's headline figures (model_metrics)."""
    r = report
    out = {"areas_top1_noisy": r["areas_noisy"]["top1"], "areas_top1_cleaned": r["areas_cleaned"]["top1"],
           "areas_top5_cleaned": r["areas_cleaned"]["top5"], "labels_flagged": r["cleaning"]["flagged"],
           "flag_precision": r["cleaning"]["precision"], "flag_recall": r["cleaning"]["recall"],
           "aesthetics_emd": r["aesthetics"]["emd"], "aesthetics_spearman": r["aesthetics"]["spearman"]}
    if "spearman_mean" in r["aesthetics"]:
        out["aesthetics_spearman_mean"] = r["aesthetics"]["spearman_mean"]
    if "areas_true_labels" in r:
        out["areas_top1_true_labels"] = r["areas_true_labels"]["top1"]
    if "gallery" in r:
        out["gallery_first_in_hidden_top3"] = r["gallery"]["first_in_hidden_top3"]
    for arm in ("transfer_head", "fine_tuned", "from_scratch"):
        if arm in r.get("areas_images", {}):
            out[f"areas_top1_{arm}"] = r["areas_images"][arm]["top1"]
    return out


def _acted(c: dict) -> str:
    """What became of the flagged labels, in words."""
    if c.get("action") == "relabel":
        return "relabelled"
    if c.get("action") == "other_or_drop":
        return f"{c['relabelled']} made other, {c['flagged'] - c['relabelled']} dropped"
    return "dropped"


def notes(report: dict, n_held: int) -> list[str]:
    """The stage's summary lines."""
    r, m = report, metrics(report)
    out = [f"areas top-1 on {n_held:,} held-out images: noisy labels {m['areas_top1_noisy']:.3f}, "
           f"cleaned {m['areas_top1_cleaned']:.3f} ({r['cleaning']['flagged']} of {r['cleaning']['labels']} labels "
           f"flagged, {_acted(r['cleaning'])}, "
           f"precision {r['cleaning']['precision']:.2f}, recall {r['cleaning']['recall']:.2f})"
           + (f"; the same labels all true {m['areas_top1_true_labels']:.3f}" if "areas_top1_true_labels" in m
              else "")]
    if "areas_images" in r:
        ai = r["areas_images"]
        out.append(f"areas top-1 on {ai['eval_images']:,} held-out images: frozen-feature head "
                   f"{ai['transfer_head']['top1']:.3f}, fine-tuned {ai['fine_tuned']['top1']:.3f}"
                   + (f", same network from scratch {ai['from_scratch']['top1']:.3f}" if "from_scratch" in ai else ""))
    out.append(f"aesthetics ({r['aesthetics'].get('inputs', 'embedding')}): EMD {m['aesthetics_emd']:.3f}, "
               f"Spearman {m['aesthetics_spearman']:.3f}"
               + (f" ({r['aesthetics']['tied_at_cap']:.0%} tied at the cap {r['aesthetics']['score_cap']:.2f}; "
                  f"the uncapped mean {r['aesthetics']['spearman_mean']:.3f})"
                  if r["aesthetics"].get("score_cap") is not None else "")
               + (f"; galleries: first image among the hidden best three in {r['gallery']['first_in_hidden_top3']:.0%}"
                  f" of {r['gallery']['n']} sales with {r['gallery']['min_photos']}+ photos" if "gallery" in r else ""))
    return out


def _mean(dist: F.Column) -> F.Column:
    """The mean of a score distribution over 1..n (the uncapped score)."""
    return F.aggregate(F.transform(dist, lambda p, i: p * (i + 1)), F.lit(0.0), lambda a, v: a + v).alias("mean")


def gallery(spark: SparkSession, cfg: Config) -> DataFrame:
    """Each sale's images in gallery order (greedy diversity over areas, then by score)."""
    tc = cfg.training
    imgs = (io.read(spark, cfg, T.IMAGE_SOURCES).select("sale_id", "image_id").where(F.col("sale_id").isNotNull())
            .distinct().join(io.read(spark, cfg, T.IMAGE_AREAS).select("image_id", "area"), "image_id")
            .join(io.read(spark, cfg, T.IMAGE_AESTHETICS).select("image_id", "score", _mean(F.col("distribution"))),
                  "image_id"))
    diverse = tc.gallery_diverse
    return imgs.groupBy("sale_id").applyInPandas(lambda pdf: gallery_order(pdf, diverse), GALLERY_SCHEMA)


def gallery_report(gallery_df: DataFrame, sources: DataFrame, truth: DataFrame, min_photos: int = 6) -> dict:
    """How well the galleries put the best picture first, against the hidden aesthetic
    score (the demo world's truth): the share of sales with at least ``min_photos`` images
    whose first gallery image is among their hidden best three (ties by image_id). Computed
    in Spark; one row comes back."""
    hidden = (gallery_df.select("sale_id", "image_id", "rank")
              .join(sources.select("image_id", "uri").distinct(), "image_id")
              .join(truth.select("uri", "aesthetic"), "uri")
              .groupBy("sale_id", "image_id", "rank").agg(F.max("aesthetic").alias("aesthetic")))
    sale = Window.partitionBy("sale_id")
    firsts = (hidden.withColumn("photos", F.count("*").over(sale))
              .withColumn("hidden_rank", F.row_number().over(sale.orderBy(F.desc("aesthetic"), "image_id")))
              .withColumn("position", F.row_number().over(sale.orderBy("rank", "image_id")))
              .where((F.col("position") == 1) & (F.col("photos") >= min_photos)))
    row = firsts.agg(F.count("*").alias("n"), F.sum((F.col("hidden_rank") <= 3).cast("int")).alias("hits")).first()
    n = int(row["n"])
    return {"first_in_hidden_top3": float(row["hits"] / n) if n else float("nan"), "n": n,
            "min_photos": int(min_photos)}
